"""The domain vocabulary: one place for every term list, extended by entries, not code."""

from __future__ import annotations

import re

import pytest

from evidence import grading, library, match, models, vocabulary
from evidence.grading import ClaimContext, assess_indirectness, regulatory_statement
from ingest import citations
from ingest.claims import extract_claims

ACUPUNCTURE = (
    vocabulary.Concept("acupuncture", "acupuncture", (r"\bacupuncture\b",),
                       ("Acupuncture Therapy",), kind="intervention", area="ear"),
    vocabulary.Concept("hearing_aids", "hearing aids", (r"\bhearing\s+aids?\b",),
                       ("Hearing Aids",), kind="intervention", area="ear"),
    vocabulary.Concept("tinnitus", "tinnitus", (r"\btinnitus\b",), ("Tinnitus",),
                       kind="condition", area="ear"),
)
CLAIM = "Acupuncture helps adults with tinnitus sleep better."


def test_a_new_therapy_area_is_entries_not_code() -> None:
    # Before: the extractor sees no claim, the query has no concept block, nothing is
    # compared.
    assert [c.text for c in extract_claims(CLAIM)] == []
    assert '"Tinnitus"[mh]' not in match.build_pubmed_query(CLAIM)
    before = assess_indirectness(CLAIM, study_title="Hearing aids for tinnitus")
    assert before.mismatches == ()
    with vocabulary.extended(*ACUPUNCTURE):
        # Claims: a therapy and a condition make the sentence an efficacy claim.
        [claim] = extract_claims(CLAIM)
        assert (claim.text, claim.category) == (CLAIM, "efficacy")
        # Queries: the new entries become PubMed blocks with their MeSH headings.
        query = match.build_pubmed_query(CLAIM, category="efficacy")
        assert query.startswith('(acupuncture[tiab] OR "Acupuncture Therapy"[mh]) AND '
                                '(tinnitus[tiab] OR "Tinnitus"[mh])')
        # Indirectness and fit: another therapy does not fit; the same one does.
        other = assess_indirectness(CLAIM, study_title="Hearing aids for tinnitus")
        assert not other.on_topic
        assert [(m.dimension, m.blocking) for m in other.mismatches] == [
            ("intervention", True)]
        same = assess_indirectness(CLAIM, study_title="Acupuncture in adults with chronic "
                                                      "tinnitus")
        assert same.on_topic and not same.mismatches
        # The claim library: claims about different therapies never group.
        assert library.claim_similarity("Acupuncture quiets tinnitus within weeks.",
                                        "Hearing aids quiet tinnitus within weeks.") == 0.0
    # Leaving the block restores the vocabulary.
    assert vocabulary.get("intervention", "acupuncture") is None
    assert [c.text for c in extract_claims(CLAIM)] == []


def test_shipped_weight_loss_entries_keep_therapies_apart() -> None:
    assert library.claim_similarity("Semaglutide lowers blood glucose within hours.",
                                    "Ketamine lowers blood glucose within hours.") == 0.0
    got = assess_indirectness("Semaglutide helps adults with obesity lose weight.",
                              study_title="Liraglutide for weight loss in obesity")
    assert not got.on_topic


def test_register_refuses_a_duplicate_key_or_a_bad_pattern() -> None:
    with pytest.raises(ValueError, match="already in the vocabulary"):
        vocabulary.register(vocabulary.Concept("ketamine", "k", (r"\bk\b",),
                                               kind="intervention"))
    with pytest.raises(re.error):
        vocabulary.register(vocabulary.Concept("broken", "b", (r"(",), kind="condition"))
    with pytest.raises(ValueError, match="unknown kind"):
        vocabulary.register(vocabulary.Concept("x", "x", (r"\bx\b",), kind="species"))


def test_every_entry_is_well_formed() -> None:
    for kind in vocabulary.KINDS:
        entries = vocabulary.concepts(kind)
        keys = [c.key for c in entries]
        assert len(keys) == len(set(keys)), kind
        for c in entries:
            assert c.kind == kind and c.patterns and c.label
            assert c.parent is None or c.parent in keys
            assert c.form_of is None or vocabulary.get("intervention", c.form_of)
            for population in c.contrary:
                assert vocabulary.get("population", population)


def test_vocabularies_are_defined_once_and_shared() -> None:
    assert models.CERTAINTY is vocabulary.CERTAINTY is grading.GRADE_LEVELS
    assert models.STANCES is vocabulary.STANCES is grading.STANCES
    assert grading.DESIGNS is vocabulary.DESIGNS
    assert grading.EVIDENCE_LEVELS is vocabulary.EVIDENCE_LEVELS
    assert grading.FLAG_CODES == tuple(vocabulary.STUDY_FLAGS)
    assert match._STOPWORDS is vocabulary.STOPWORDS
    # One DOI pattern: the citation finder and the vocabulary agree on the same text.
    text = "See doi:10.1186/s40337-022-00588-9 for details."
    [found] = [c for c in citations.extract_citations(text, ()) if c.kind == "doi"]
    assert found.identifier == vocabulary.DOI_IN_TEXT_RE.search(text).group(1)  # type: ignore[union-attr]


def test_every_reopen_reason_has_a_label_and_every_study_change_is_a_reason() -> None:
    assert list(vocabulary.REOPEN_REASON_LABELS) == list(vocabulary.REOPEN_REASONS)
    assert set(vocabulary.STUDY_CHANGES) < set(vocabulary.REOPEN_REASONS)


def test_one_stemmer_and_its_fixed_point() -> None:
    assert vocabulary.stem("infusions") == "infus"
    for word in ("generalizations", "relieving", "depressive"):
        once = vocabulary.stem(word, fixed_point=True)
        assert vocabulary.stem(once, fixed_point=True) == once


def test_forms_of_one_substance() -> None:
    assert vocabulary.substance("esketamine") == "ketamine"
    assert vocabulary.substance("ketamine") == "ketamine"
    assert vocabulary.find("intervention", "S-ketamine and ketamine") == {"esketamine",
                                                                         "ketamine"}


def test_mentions_are_linear_and_skip_nested_matches() -> None:
    text = "bipolar depression and treatment-resistant depression; depression. " * 2000
    found = vocabulary.occurrences("condition", text)
    assert found == {"bipolar_depression": 2000, "treatment_resistant_depression": 2000,
                     "depression": 2000}


# --------------------------------------------------------------------------- fit rules


def test_bipolar_claim_is_not_fitted_by_a_unipolar_study() -> None:
    got = assess_indirectness(
        "Bipolar Depression: Offers a treatment option during depressive episodes of bipolar "
        "disorder.",
        study_title="Intravenous ketamine in unipolar major depressive disorder",
        context=ClaimContext(frozenset({"depression"}), frozenset({"ketamine"})))
    assert not got.on_topic
    assert any("usually exclude" in r for r in got.reasons)


def test_treatment_resistant_claim_fitted_by_drug_naive_study_is_indirect_on_population() -> None:
    got = assess_indirectness(
        "Particularly effective for patients who have not found relief with traditional "
        "antidepressants.",
        study_title="Ketamine in drug-naive men with first-episode depression",
        context=ClaimContext(frozenset({"depression"}), frozenset({"ketamine"})))
    assert got.on_topic and got.indirect
    assert ("population", ("treatment-resistant depression",), ("drug-naive patients",)) in [
        (m.dimension, m.claim_terms, m.study_terms) for m in got.mismatches]


def test_claim_naming_nothing_is_read_with_its_article() -> None:
    claim = "Its fast-acting nature makes it an attractive option."
    context = ClaimContext(frozenset({"depression"}), frozenset({"ketamine"}))
    eating = assess_indirectness(claim, study_title="Ketamine for anorexia nervosa: a case "
                                                    "series", context=context)
    assert not eating.on_topic
    fitting = assess_indirectness(claim, study_title="Ketamine for treatment-resistant "
                                                     "depression", context=context)
    assert fitting.on_topic


def test_another_form_of_the_substance_is_indirect_not_a_misfit() -> None:
    got = assess_indirectness("IV ketamine relieves depression.",
                              study_title="Esketamine nasal spray in major depression")
    assert got.on_topic and got.indirect
    assert [m.dimension for m in got.mismatches] == ["intervention", "route"]


@pytest.mark.parametrize(("claim", "kind"), [
    ("In 2019, the FDA approved esketamine, a derivative of ketamine, for treatment-resistant "
     "depression.", "approval"),
    ("Ketamine is used off-label for depression.", "off-label use"),
    ("Ketamine is a Schedule III controlled substance.", "scheduling"),
    ("Spravato carries a boxed warning about sedation.", "label warning"),
])
def test_regulatory_statements_are_named(claim: str, kind: str) -> None:
    reason = regulatory_statement(claim)
    assert reason is not None and reason.startswith(f"a regulatory statement ({kind}:")


def test_a_clinical_claim_is_not_a_regulatory_statement() -> None:
    assert regulatory_statement("Ketamine relieves depression within hours.") is None
