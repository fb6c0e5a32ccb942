"""Claims: sentence offsets, what is (not) a claim, categories, quality, claim grouping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.claims_quality import evaluate, load_gold, main, spans_match
from ingest.articles import read_path
from ingest.claims import (
    CATEGORIES,
    CATEGORY_DESCRIPTIONS,
    MIN_CHECKWORTHINESS,
    extract_claims,
    score_sentence,
    score_sentences,
    split_sentences,
)

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "data" / "articles"
ANNOTATIONS = ROOT / "tests" / "data" / "annotations"
SEEDS = sorted(ARTICLES.glob("*.txt"))


def seed_text(prefix: str) -> str:
    [path] = ARTICLES.glob(f"{prefix}_*.txt")
    return read_path(path).text


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


# --- sentence splitting -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Lee treats patients in the U.S. with ketamine. It works.",
            ["Dr. Lee treats patients in the U.S. with ketamine.", "It works."],
        ),
        (
            "The dose is 0.5 mg/kg, e.g. 35 mg. Sessions last 40 min.",
            ["The dose is 0.5 mg/kg, e.g. 35 mg.", "Sessions last 40 min."],
        ),
        (
            "Side effects (e.g. nausea) pass. Then rest.",
            ["Side effects (e.g. nausea) pass.", "Then rest."],
        ),
        ("J. Smith et al. found it. Good.", ["J. Smith et al. found it.", "Good."]),
        ("He said, “It works fast.” Then he left.", ["He said, “It works fast.”", "Then he left."]),
        ("Is it safe? Yes! Mostly.", ["Is it safe?", "Yes!", "Mostly."]),
        ("Heading Without Stop\nBody text here.", ["Heading Without Stop", "Body text here."]),
        ("- Relief within hours\n- Mild nausea.", ["Relief within hours", "Mild nausea."]),
        ("1. First step. Second part.\n2) Next", ["First step.", "Second part.", "Next"]),
        ("● Bullet one\n  • Bullet two  ", ["Bullet one", "Bullet two"]),
        ("-\n- \nText", ["Text"]),
        ("Costs $400 (approx. half) per visit.", ["Costs $400 (approx. half) per visit."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_sentence_spans_are_exact_and_trimmed(path: Path) -> None:
    text = read_path(path).text
    spans = split_sentences(text)
    assert len(spans) > 40
    previous_end = 0
    for start, end in spans:
        piece = text[start:end]
        assert piece == piece.strip() and piece
        assert not re.match(r"[-*\u2022\u25cf] ", piece)
        assert start >= previous_end
        previous_end = end


# --- extraction: offsets, scores, drops ---------------------------------------------


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_every_extracted_claim_has_exact_offsets(path: Path) -> None:
    text = read_path(path).text
    claims = extract_claims(text)
    assert len(claims) >= 15
    for claim in claims:
        assert text[claim.start : claim.end] == claim.text
        assert claim.text == claim.text.strip()
        assert not claim.text.startswith(("- ", "● ", "• "))
        assert claim.category in CATEGORIES
        assert MIN_CHECKWORTHINESS <= claim.checkworthiness <= 1.0
        assert claim.cues
    assert [c.start for c in claims] == sorted(c.start for c in claims)


def test_extraction_is_deterministic() -> None:
    text = seed_text("002")
    assert extract_claims(text) == extract_claims(text)


NOT_CLAIMS = [
    # headings
    "What Is Ketamine Therapy?",
    "NMDA Receptor Blockade",
    "Rapid Relief from Symptoms",
    "Effective for Treatment-Resistant Conditions",
    "Side Effects of Ketamine Therapy",
    "7 Remarkable Ketamine Therapy Benefits for Mental Health",
    "Comments (0)",
    "Book a consultation today:",
    # questions
    "But how does it work, and what makes it so effective?",
    "Conclusion: Is Ketamine Therapy Right for You?",
    # calls to action and contact details
    "Start your journey to wellness today!",
    "Click here to find a convenient time on our calendar and book your consultation today!",
    "Call us at 415-249-2580 if you have any questions or need any assistance.",
    # generic advice
    "Consult with your healthcare provider to learn more about whether this innovative "
    "treatment is right for you.",
    "If you’re considering ketamine therapy, consult with a licensed healthcare provider to "
    "determine if it’s the right fit for your mental health needs.",
    # about the article, citation lines
    "This article will explore the science behind mental health infusions, including how "
    "ketamine works in the brain, its benefits, and what you can expect from this innovative "
    "treatment.",
    "https://pubmed.ncbi.nlm.nih.gov/35326338/",
    "This content was written by AI and reviewed by a human for quality and compliance.",
    # promotion without a checkable fact
    "Ketamine Infusion Therapy represents a beacon of hope for individuals suffering from "
    "debilitating mental health conditions.",
    "The journey to mental wellness is deeply personal, and having access to innovative "
    "treatments like ketamine can make all the difference.",
]


@pytest.mark.parametrize("sentence", NOT_CLAIMS)
def test_non_claims_are_not_extracted(sentence: str) -> None:
    scored = score_sentence(sentence)
    assert scored is None or scored[1] < MIN_CHECKWORTHINESS
    assert extract_claims(sentence) == []


def test_seed_004_drops_headings_ctas_and_reference_lines() -> None:
    text = seed_text("004")
    extracted = {c.text for c in extract_claims(text)}
    for sentence in sentences(text):
        if sentence.startswith(("http", "Book", "Start your", "Click", "Call us")):
            assert sentence not in extracted
        if sentence.endswith("?"):
            assert sentence not in extracted
    assert (
        "FDA Approval: In 2019, the FDA approved esketamine, a derivative of ketamine, for "
        "treatment-resistant depression." in extracted
    )


def test_list_items_inherit_their_introduction() -> None:
    text = "It’s also being used for:\n- Bipolar Disorder: For managing depressive episodes.\n"
    [claim] = extract_claims(text)
    assert claim.text == "Bipolar Disorder: For managing depressive episodes."
    assert "indication:(context)" in claim.cues


@pytest.mark.parametrize(
    ("heading", "item", "category"),
    [
        ("Benefits", "Sharpens memory", "efficacy"),
        ("Possible Side Effects", "Itching", "safety"),
        ("Conditions We Treat", "Plantar fasciitis", "indication"),
        ("How It Works", "Tightens loose connective fibres", "mechanism"),
        ("Is It Safe?", "Mild tingling at the pad site", "safety"),
    ],
)
def test_bare_list_items_take_their_section_heading_category(
    heading: str, item: str, category: str
) -> None:
    text = f"{heading}\n- {item}\n"
    [claim] = extract_claims(text)
    assert claim.text == item
    assert claim.category == category
    assert f"{category}:(context)" in claim.cues


def test_section_heading_names_the_kind_before_a_list_introduction() -> None:
    text = "Conditions We Treat\nOur team uses skin cells for:\n- Vitiligo patches\n"
    [claim] = extract_claims(text)
    assert claim.category == "indication"


def test_section_heading_outweighs_a_side_effect_word_in_its_items() -> None:
    [claim] = extract_claims("Symptoms of Iron Deficiency\n- Headaches and fatigue\n")
    assert claim.category == "indication"


def test_bare_list_items_under_other_headings_are_not_claims() -> None:
    assert extract_claims("Our Team\n- Sharpens memory\n- Itching\n") == []


def test_section_heading_does_not_reach_prose_or_title_case_items() -> None:
    text = "Benefits\n- Deeper Sleep\nSome clients sleep longer. Sharpens memory\n"
    assert extract_claims(text) == []


# Claims of other therapy areas, recognised by their form, not by topic words.
FORM_CASES = [
    ("Most clients notice firmer skin after five to eight weeks.", "onset"),
    ("Hair density usually plateaus after the first year.", "onset"),
    ("For full results, allow at least three months of regular use.", "onset"),
    ("Each cryotherapy session lasts three minutes.", "protocol"),
    ("Apply the cream twice a day to clean skin.", "protocol"),
    ("We check your iron levels with blood tests every three months.", "protocol"),
    ("The patch is not recommended while breastfeeding.", "safety"),
    ("This supplement can interact with blood thinners.", "safety"),
    ("Vitamin K2 activates a protein that moves calcium into bone tissue.", "mechanism"),
    ("Collagen peptides signal fibroblasts to make new skin tissue.", "mechanism"),
    ("A cold plunge burns stubborn fat and lifts your spirits.", "efficacy"),
    ("Users lost an average of 4 kg over the study.", "statistic"),
    ("Treated knees had twice the joint space of untreated knees.", "statistic"),
    ("Our serum absorbs more deeply into the skin than ordinary creams.", "comparison"),
    ("Compounded tirzepatide is sold by some online pharmacies.", "regulatory"),
    ("Hypothyroidism is diagnosed when TSH stays above the reference range.", "indication"),
]


@pytest.mark.parametrize(("sentence", "category"), FORM_CASES)
def test_claims_of_other_therapies_are_found_by_their_form(sentence: str, category: str) -> None:
    [claim] = extract_claims(sentence)
    assert claim.category == category


@pytest.mark.parametrize(
    "sentence",
    [
        "Rivera K, Osei M. Cold water immersion reduces muscle soreness: a randomised trial.",
        "Lindqvist A et al. Ketamine relieves treatment-resistant depression within hours.",
        "These statements have not been evaluated by the Food and Drug Administration.",
        "This supplement is not intended to diagnose, treat, cure or prevent depression.",
        "Members save 15% on every cryotherapy session.",
        "A three-month package costs $600, and financing is available.",
        "One jar (60 capsules) costs $39.",
        "Our founder is a nurse with over 12 years of experience in aesthetics.",
        "Ten minutes in our cold plunge could make a real difference.",
        "Integrating the benefits of breathwork into daily life is crucial.",
    ],
)
def test_citations_disclaimers_and_prices_are_not_claims(sentence: str) -> None:
    assert extract_claims(sentence) == []


def test_insurance_statements_with_a_price_stay_claims() -> None:
    [claim] = extract_claims("Insurance rarely covers it, so patients pay about $400 per session.")
    assert claim.category == "access"


def test_anaphora_carries_the_previous_claim() -> None:
    text = (
        "Many patients report a sense of dissociation during the infusion. "
        "This sensation is usually mild and temporary."
    )
    alone = score_sentence("This sensation is usually mild and temporary.")
    assert alone is not None and alone[1] < MIN_CHECKWORTHINESS
    claims = extract_claims(text)
    assert [c.text for c in claims][-1] == "This sensation is usually mild and temporary."
    assert claims[-1].category == "safety"


def test_score_sentences_keeps_near_misses() -> None:
    text = seed_text("004")
    everything = score_sentences(text)
    kept = extract_claims(text)
    assert set(kept) < set(everything)
    assert any(c.checkworthiness < MIN_CHECKWORTHINESS for c in everything)


# --- categories ---------------------------------------------------------------------

CATEGORY_CASES = [
    (
        "Unlike traditional antidepressants that take weeks to show effects, ketamine can "
        "provide rapid relief.",
        "comparison",
    ),
    ("Ketamine can alleviate symptoms of depression and anxiety within hours.", "onset"),
    ("In 2019, the FDA approved esketamine for treatment-resistant depression.", "regulatory"),
    ("Some applications remain off-label.", "regulatory"),
    ("Up to 70% of patients respond to a single infusion.", "statistic"),
    (
        "Side effects may include dissociation, dizziness, nausea, and increased blood pressure.",
        "safety",
    ),
    ("Long-term recreational use has been linked to bladder problems and addiction.", "safety"),
    ("Typically, patients undergo a series of 6 to 12 infusions over several weeks.", "protocol"),
    (
        "It can be delivered as an intramuscular injection, nasal spray, or oral lozenges.",
        "protocol",
    ),
    ("Ketamine primarily works by blocking NMDA receptors in the brain.", "mechanism"),
    ("Ketamine stimulates the production of BDNF, which supports neuroplasticity.", "mechanism"),
    (
        "Ketamine therapy has shown significant promise for treatment-resistant depression.",
        "efficacy",
    ),
    ("Bipolar Depression: Offers a treatment option during depressive episodes.", "indication"),
    ("Insurance coverage for ketamine therapy varies widely.", "access"),
    ("A randomized, placebo-controlled trial has demonstrated this.", "efficacy"),
]


@pytest.mark.parametrize(("sentence", "category"), CATEGORY_CASES)
def test_category_of_clear_examples(sentence: str, category: str) -> None:
    [claim] = extract_claims(sentence)
    assert claim.category == category


def test_categories_are_documented() -> None:
    assert set(CATEGORIES) == set(CATEGORY_DESCRIPTIONS)
    assert {"efficacy", "onset", "safety", "mechanism", "regulatory", "comparison"} <= set(
        CATEGORIES
    )


def test_cues_explain_the_score() -> None:
    [claim] = extract_claims(
        "Ketamine can alleviate symptoms of depression and anxiety within hours."
    )
    assert "onset:within hours" in claim.cues
    [advice] = score_sentences(
        "It’s important to work with an experienced healthcare provider to ensure that "
        "ketamine therapy is safe."
    )
    assert any(cue.startswith("-advice:") for cue in advice.cues)
    assert advice.checkworthiness < MIN_CHECKWORTHINESS


def test_checkable_claims_outscore_hedged_promotion() -> None:
    strong = score_sentence(
        "In 2019, the FDA approved esketamine for treatment-resistant depression."
    )
    weak = score_sentence(
        "Ketamine therapy has emerged as a promising treatment option for mental health."
    )
    assert strong is not None and weak is not None
    assert strong[1] >= MIN_CHECKWORTHINESS > weak[1]


# --- quality against the gold annotations -------------------------------------------


def test_gold_annotations_match_their_articles() -> None:
    files = sorted(ANNOTATIONS.glob("*.json"))
    assert len(files) >= 2
    for path in files:
        text = read_path(ARTICLES / f"{path.stem}.txt").text
        gold = load_gold(path, text)
        assert gold
        assert all(g.category in CATEGORIES for g in gold)
        spans = [(g.start, g.end) for g in gold]
        assert spans == sorted(spans) and len(set(spans)) == len(spans)


def test_load_gold_rejects_a_shifted_span(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps([{"start": 1, "end": 5, "text": "abcd", "category": "onset"}]))
    with pytest.raises(ValueError, match="does not match"):
        load_gold(bad, "xabcX")


def test_span_matching_rule() -> None:
    assert spans_match((0, 10), (5, 10))  # half of the shorter span overlaps
    assert spans_match((0, 100), (40, 50))
    assert not spans_match((0, 10), (6, 20))
    assert not spans_match((0, 10), (10, 20))


def test_extractor_quality_on_annotated_articles() -> None:
    result = evaluate(ANNOTATIONS, ARTICLES)
    overall = result["overall"]
    assert isinstance(overall, dict)
    assert overall["recall"] >= 0.9, result
    assert overall["precision"] >= 0.75, result
    articles = result["articles"]
    assert isinstance(articles, dict) and len(articles) >= 2
    for stem, scores in articles.items():
        assert scores["recall"] >= 0.8, stem
        assert scores["precision"] >= 0.7, stem


def test_benchmark_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["benchmark"] == "claims_quality"
    assert set(printed["overall"]) >= {"precision", "recall", "f1"}
