"""The hand-made evaluation set in tests/data/judgements is internally consistent.

These tests check the files, not any classifier: every claim is a gold claim whose text
is the seed article's text at its span, every study is a synthetic record that exists,
every design and level is in the project's vocabulary, and every recorded PubMed fixture
record is annotated. ``benchmarks/judgements.py`` is what scores rules against them.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from evidence.grading import DESIGNS, EVIDENCE_LEVELS
from ingest.articles import read_path
from ingest.pubmed_xml import PubmedRecord, parse_pubmed_bytes
from tests._shared import shared_path
from tests.pubmed_records import article_set, article_xml
from tests.seed_records import SEED_RECORDS

ROOT = Path(__file__).resolve().parents[1]
JUDGEMENTS = ROOT / "tests" / "data" / "judgements"
ANNOTATIONS = ROOT / "tests" / "data" / "annotations"
ARTICLES = ROOT / "data" / "articles"
SYNTHETIC_MIN = 90_000_000
DIMENSIONS = {"condition", "intervention", "route", "population"}


def _records(data: bytes) -> list[PubmedRecord]:
    return [item for item in parse_pubmed_bytes(data) if isinstance(item, PubmedRecord)]


def _load(name: str) -> Any:
    return json.loads((JUDGEMENTS / name).read_text(encoding="utf-8"))


@cache
def _article_text(stem: str) -> str:
    return read_path(ARTICLES / f"{stem}.txt").text


def _synthetic_records() -> dict[str, dict[str, Any]]:
    """Every synthetic study a pair may use: records.json plus the seed stand-ins."""
    found = {r["pmid"]: r for r in _load("records.json")["records"]}
    for record in SEED_RECORDS:
        assert record["pmid"] not in found
        found[record["pmid"]] = record
    return found


def test_every_pair_claim_is_a_gold_claim_at_its_span() -> None:
    gold = {
        (path.stem, c["start"], c["end"]): c["text"]
        for path in ANNOTATIONS.glob("*.json")
        for c in json.loads(path.read_text(encoding="utf-8"))
    }
    for pair in _load("fit_pairs.json")["pairs"]:
        claim = pair["claim"]
        key = (claim["article"], claim["start"], claim["end"])
        assert gold.get(key) == claim["text"], key
        assert _article_text(claim["article"])[claim["start"]:claim["end"]] == claim["text"]


def test_every_pair_names_a_synthetic_study_and_a_reasoned_answer() -> None:
    known = _synthetic_records()
    pairs = _load("fit_pairs.json")["pairs"]
    keys = [(p["claim"]["article"], p["claim"]["start"], p["pmid"]) for p in pairs]
    assert len(keys) == len(set(keys)), "a (claim, study) pair is listed twice"
    for pair in pairs:
        assert pair["pmid"] in known, pair["pmid"]
        assert isinstance(pair["fits"], bool) and pair["why"].strip()
        dims = pair["indirect_dimensions"]
        assert set(dims) <= DIMENSIONS and len(dims) == len(set(dims))
        assert pair["fits"] or not dims, "only a fitting study can be indirect"
    assert {True, False} == {p["fits"] for p in pairs}
    assert {p["claim"]["article"][:3] for p in pairs} == {"000", "001", "002", "003", "004"}


def test_every_claim_of_article_004_is_judged_against_each_seed_stand_in() -> None:
    stem = "004_fd66a576c14499d5"
    claims = json.loads((ANNOTATIONS / f"{stem}.json").read_text(encoding="utf-8"))
    judged = {(p["claim"]["start"], p["pmid"]) for p in _load("fit_pairs.json")["pairs"]
              if p["claim"]["article"] == stem}
    for claim in claims:
        for record in SEED_RECORDS:
            assert (claim["start"], record["pmid"]) in judged, (claim["text"], record["pmid"])


def test_synthetic_identifiers_are_plainly_synthetic() -> None:
    data = _load("records.json")
    assert "synthetic" in data["note"].lower()
    for pmid, record in _synthetic_records().items():
        assert int(pmid) >= SYNTHETIC_MIN
        for _kind, target in record.get("comments_corrections", ()):
            assert int(target) >= SYNTHETIC_MIN
        if record.get("doi"):
            assert record["doi"].startswith("10.5555/")
        if record.get("pmcid"):
            assert int(record["pmcid"].removeprefix("PMC")) >= SYNTHETIC_MIN


def test_judgement_records_build_as_pubmed_xml() -> None:
    built = [article_xml(r["pmid"], title=r["title"], abstract=r["abstract"],
                         publication_types=r["publication_types"], mesh=r["mesh"])
             for r in _load("records.json")["records"]]
    parsed = _records(article_set(*built))
    assert [r.pmid for r in parsed] == [r["pmid"] for r in _load("records.json")["records"]]


def test_design_levels_use_the_project_vocabulary() -> None:
    data = _load("design_levels.json")
    assert data["vocabulary"]["designs"] == list(DESIGNS)
    assert data["vocabulary"]["levels"] == list(EVIDENCE_LEVELS)
    entries = data["fixture_records"] + data["synthetic_records"]
    for entry in entries:
        assert entry["design"] in DESIGNS and entry["level"] in EVIDENCE_LEVELS, entry
        assert entry["basis"] in data["vocabulary"]["basis"] and entry["why"].strip()
    assert sorted(e["pmid"] for e in data["synthetic_records"]) == sorted(_synthetic_records())


@pytest.mark.parametrize("name", sorted({e["file"] for e in json.loads(
    (JUDGEMENTS / "design_levels.json").read_text(encoding="utf-8"))["fixture_records"]}))
def test_every_record_of_each_fixture_file_is_annotated(name: str) -> None:
    path = shared_path("fixtures", *name.split("/"))
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    in_file = [r.pmid for r in _records(data)]
    annotated = [e["pmid"] for e in _load("design_levels.json")["fixture_records"]
                 if e["file"] == name]
    assert sorted(annotated) == sorted(in_file)
