"""The cross-topic development corpus: gold spans, categories, split, benchmark blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.claims_quality import evaluate_cross_topic, load_gold, load_split, main
from ingest.articles import read_path
from ingest.claims import CATEGORIES

CORPUS = Path(__file__).resolve().parent / "data" / "cross_topic"
ARTICLES = sorted((CORPUS / "articles").glob("*.txt"))


def test_every_article_has_an_annotation_file_and_back() -> None:
    annotated = {p.stem for p in (CORPUS / "annotations").glob("*.json")}
    assert len(ARTICLES) >= 9
    assert {p.stem for p in ARTICLES} == annotated


@pytest.mark.parametrize("path", ARTICLES, ids=lambda p: p.stem)
def test_gold_spans_match_the_article_text(path: Path) -> None:
    text = read_path(path).text
    assert 350 <= len(text.split()) <= 700
    gold = load_gold(CORPUS / "annotations" / f"{path.stem}.json", text)
    assert gold
    assert all(g.category in CATEGORIES for g in gold)
    assert all(g.text == g.text.strip() and g.text for g in gold)
    spans = [(g.start, g.end) for g in gold]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_split_covers_every_article_once_and_holds_out_a_third() -> None:
    split = load_split(CORPUS)
    tuning, held_out = split["tuning"], split["held_out"]
    stems = sorted(p.stem for p in ARTICLES)
    assert sorted(tuning + held_out) == stems
    assert not set(tuning) & set(held_out)
    assert len(held_out) == len(stems) // 3
    assert json.loads((CORPUS / "split.json").read_text(encoding="utf-8"))["rule"]


def test_split_follows_its_stated_rule() -> None:
    stems = sorted(p.stem for p in ARTICLES)
    assert load_split(CORPUS)["held_out"] == stems[2::3]


def test_cross_topic_blocks_have_the_shape_of_overall() -> None:
    blocks = evaluate_cross_topic(CORPUS)
    assert set(blocks) == {"cross_topic_tuning", "cross_topic_held_out"}
    split = load_split(CORPUS)
    tuning = blocks["cross_topic_tuning"]
    held_out = blocks["cross_topic_held_out"]
    assert isinstance(tuning, dict) and isinstance(held_out, dict)
    for block in (tuning, held_out):
        assert set(block) >= {"precision", "recall", "f1", "category_agreement"}
    gold_counts = {
        part: sum(
            len(json.loads((CORPUS / "annotations" / f"{stem}.json").read_text(encoding="utf-8")))
            for stem in stems
        )
        for part, stems in split.items()
    }
    assert tuning["gold"] == gold_counts["tuning"]
    assert held_out["gold"] == gold_counts["held_out"]


def test_benchmark_json_reports_seeds_and_both_cross_topic_parts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"overall", "articles", "cross_topic_tuning", "cross_topic_held_out"} <= set(printed)
    assert printed["overall"] != printed["cross_topic_tuning"]
    for key in ("cross_topic_tuning", "cross_topic_held_out"):
        assert set(printed[key]) == set(printed["overall"])


def test_claims_of_different_therapies_never_share_a_canonical_claim() -> None:
    from evidence.library import group_claims

    split = json.loads((CORPUS / "split.json").read_text(encoding="utf-8"))
    texts: list[str] = []
    articles: list[str] = []
    categories: list[str] = []
    for stem in split["tuning"]:
        for claim in json.loads((CORPUS / "annotations" / f"{stem}.json").read_text(
                encoding="utf-8")):
            texts.append(claim["text"])
            articles.append(stem)
            categories.append(claim["category"])
    groups = group_claims(texts, articles=articles, categories=categories)
    # Each article is about one therapy: a group across two articles joins two therapies.
    assert [g.members for g in groups if len({articles[m] for m in g.members}) > 1] == []
    assert len(groups) < len(texts)  # repeats within an article do group
