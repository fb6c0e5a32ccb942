"""The retrieval benchmark on a tiny hand-made SciFact-format set (no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.retrieval import benchmark
from tests._shared import shared_path

DOCS = [
    {"_id": "1", "title": "Ketamine for treatment-resistant depression",
     "text": "Intravenous ketamine reduced depressive symptoms within 24 hours."},
    {"_id": "2", "title": "Inhaled budesonide in mild asthma",
     "text": "Asthma exacerbations fell with as-needed budesonide-formoterol."},
    {"_id": "3", "title": "Statins and muscle pain",
     "text": "Muscle symptoms were no more common with statins than placebo."},
]


def _write(tmp: Path, claims: list[dict[str, object]]) -> Path:
    (tmp / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tmp / "claims_dev.jsonl").write_text("".join(json.dumps(c) + "\n" for c in claims))
    return tmp


def test_judged_and_unjudged_claims_are_all_ranked(tmp_path: Path) -> None:
    root = _write(tmp_path, [
        {"id": 1, "claim": "Ketamine relieves depression within a day.", "cited_doc_ids": [1],
         "evidence": {"1": [{"sentences": [0], "label": "SUPPORT"}]}},
        {"id": 2, "claim": "Budesonide prevents asthma attacks."},  # unjudged
    ])
    run_file = tmp_path / "run.txt"
    result = benchmark(root, "dev", run_out=run_file)
    assert result["counts"]["ranked_claims"] == 2 and result["counts"]["claims"] == 1
    assert result["cited"]["ndcg@10"] == 1.0  # the one judged claim finds its document first
    lines = [ln.split() for ln in run_file.read_text().splitlines()]
    assert {ln[0] for ln in lines} == {"1", "2"}
    assert [ln[2] for ln in lines if ln[0] == "2"][0] == "2"
    assert all(ln[1] == "Q0" and ln[5] == "substantiate-bm25" for ln in lines)


def test_unlabelled_split_reports_no_figures(tmp_path: Path) -> None:
    root = _write(tmp_path, [{"id": 7, "claim": "Statins cause muscle pain."}])
    result = benchmark(root, "dev")
    assert result["cited"] is None and result["evidence"] is None
    assert result["counts"]["ranked_claims"] == 1


def _figures(result: dict[str, object]) -> dict[str, object]:
    return {k: result[k] for k in ("counts", "cited", "evidence", "halves")}


def test_persisted_index_gives_the_in_memory_figures(tmp_path: Path) -> None:
    root = _write(tmp_path, [
        {"id": 1, "claim": "Ketamine relieves depression within a day.", "cited_doc_ids": [1]},
        {"id": 2, "claim": "Statins cause muscle pain.", "cited_doc_ids": [3]},
        {"id": 3, "claim": "Budesonide prevents asthma attacks.", "cited_doc_ids": [1]},
    ])
    memory = benchmark(root, "dev", run_out=tmp_path / "memory.txt")
    persisted = benchmark(root, "dev", run_out=tmp_path / "persisted.txt",
                          index_dir=tmp_path / "index")
    assert (tmp_path / "index" / "ranker.json").is_file()
    assert persisted["index"] == "persisted (memory-mapped)" and memory["index"] == "in memory"
    assert _figures(persisted) == _figures(memory)
    assert (tmp_path / "persisted.txt").read_text() == (tmp_path / "memory.txt").read_text()


def test_persisted_index_gives_the_in_memory_figures_on_scifact(tmp_path: Path) -> None:
    scifact = shared_path("datasets", "scifact")
    memory = benchmark(scifact, "train", limit=60, run_out=tmp_path / "memory.txt")
    persisted = benchmark(scifact, "train", limit=60, run_out=tmp_path / "persisted.txt",
                          index_dir=tmp_path / "index")
    assert _figures(persisted) == _figures(memory)
    assert memory["cited"]["ndcg@10"] > 0.6  # type: ignore[index]
    assert (tmp_path / "persisted.txt").read_text() == (tmp_path / "memory.txt").read_text()
