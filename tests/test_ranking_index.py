"""The persisted ranking index: status, exact incremental update, and `link` using it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from evidence import config, db, linking, ranking_index
from evidence.match import Ranker, RankerConfig
from evidence.models import EvidenceLink, Study
from substantiate import jobs
from tests._cli import run_cli
from tests.factories import make_study
from tests.test_linking import (
    ARTICLE,
    EATING_DISORDER_REVIEW,
    ESKETAMINE_SPRAY,
    IV_KETAMINE_RCT,
    RETRACTED_STUDY,
    _load,
    _resolve_all,
)

QUERIES = ["Ketamine relieves depression within hours", "ketamine raises blood pressure",
           "statins cause memory loss", "esketamine nasal spray"]


def _studies(engine: Engine) -> None:
    with Session(engine) as s:
        make_study(s, pmid="90000201", title="Ketamine infusion for depression",
                   abstract="Ketamine relieved depression within hours in 40 adults.")
        make_study(s, pmid="90000202", title="Statins and memory",
                   abstract="No memory loss was seen with atorvastatin.")
        make_study(s, pmid="90000203", title="Blood pressure after ketamine",
                   abstract="Systolic blood pressure rose during ketamine infusion.",
                   mesh=[{"descriptor": "Ketamine", "major": True}])
        s.commit()


def _fresh(engine: Engine) -> Ranker:
    with Session(engine) as s:
        live = s.exec(select(Study).where(col(Study.deleted).is_(False))
                      .order_by(col(Study.id))).all()
        return Ranker([linking.study_document(x) for x in live])


def _assert_same(a: Ranker, b: Ranker) -> None:
    assert list(a.doc_ids) == list(b.doc_ids)
    for q in QUERIES:
        assert a.scores(q).tolist() == b.scores(q).tolist(), q


def test_status_counts_new_changed_and_deleted_and_update_equals_a_build(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "index"
    _studies(engine)
    assert ranking_index.status(engine, path).exists is False
    report = ranking_index.build(engine, path)
    assert report.action == "built" and report.studies == 3
    state = ranking_index.status(engine, path)
    assert state.current and (state.indexed, state.live) == (3, 3)

    with Session(engine) as s:
        make_study(s, pmid="90000204", title="Esketamine nasal spray",
                   abstract="Esketamine nasal spray reduced depressive symptoms.")
        changed = s.exec(select(Study).where(Study.pmid == "90000201")).one()
        changed.abstract = "Ketamine did not relieve depression in this trial."
        gone = s.exec(select(Study).where(Study.pmid == "90000202")).one()
        gone.deleted = True
        s.commit()
    state = ranking_index.status(engine, path)
    assert not state.current
    assert (state.new, state.changed, state.deleted) == (1, 1, 1)
    assert state.reason == "1 new, 1 changed, 1 deleted studies since the index was written"

    report = ranking_index.update(engine, path)
    assert (report.action, report.new, report.changed, report.deleted) == ("updated", 1, 1, 1)
    assert ranking_index.status(engine, path).current
    loaded = ranking_index.load(path)
    assert loaded is not None
    updated, ids = loaded
    _assert_same(updated, _fresh(engine))
    rebuilt = tmp_path / "rebuilt"
    ranking_index.build(engine, rebuilt)
    again = ranking_index.load(rebuilt)
    assert again is not None and again[1].tolist() == ids.tolist()
    _assert_same(updated, again[0])
    assert ranking_index.update(engine, path).action == "unchanged"
    assert len(list(path.glob("gen-*"))) == 1  # older generations are removed


def test_an_index_of_another_database_is_rebuilt(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "index"
    _studies(engine)
    ranking_index.build(engine, path)
    gen = ranking_index._generation(path)
    assert gen is not None
    manifest = (gen / "manifest.json").read_text()
    (gen / "manifest.json").write_text(manifest.replace('"database": "', '"database": "x'))
    state = ranking_index.status(engine, path)
    assert not state.current and state.reason.startswith("built from another database")
    report = ranking_index.update(engine, path)
    assert report.action == "built" and report.reason.startswith("built from another")


def _built(engine: Engine, tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The three studies indexed: the index directory, its generation and its manifest."""
    path = tmp_path / "index"
    _studies(engine)
    ranking_index.build(engine, path)
    gen = ranking_index._generation(path)
    assert gen is not None
    return path, gen, json.loads((gen / "manifest.json").read_text())


def test_the_manifest_keeps_study_fingerprints_in_compact_arrays(
    engine: Engine, tmp_path: Path,
) -> None:
    _path, gen, manifest = _built(engine, tmp_path)
    assert manifest["format"] == 2 and manifest["studies"] == 3  # a count, not a listing
    ids = np.load(gen / "studies.ids.npy")
    prints = np.load(gen / "studies.fingerprints.npy")
    with Session(engine) as s:
        rows = s.exec(select(Study.id, Study.record_sha256).order_by(col(Study.id))).all()
    assert ids.tolist() == [sid for sid, _ in rows]
    assert prints.shape == (3, 32) and prints.dtype == np.uint8
    for row, (_, sha) in zip(prints, rows, strict=True):
        # A hand-made study has no record hash: its text's digest stands in.
        assert sha is None or bytes(row) == bytes.fromhex(sha)
    assert len({bytes(r) for r in prints}) == 3


def test_an_index_of_the_older_format_is_rebuilt(engine: Engine, tmp_path: Path) -> None:
    path, gen, manifest = _built(engine, tmp_path)
    manifest.update(format=1, studies={"1": ["90000201", "x"]})
    (gen / "manifest.json").write_text(json.dumps(manifest))
    (gen / "studies.ids.npy").unlink()
    state = ranking_index.status(engine, path)
    assert not state.current and state.reason == "index format 1, expected 2"
    report = ranking_index.update(engine, path)
    assert report.action == "built" and ranking_index.status(engine, path).current


def test_an_update_across_the_subword_limit_rebuilds(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "index"
    config = RankerConfig(subword_limit=3)
    _studies(engine)
    ranking_index.build(engine, path, config=config)
    with Session(engine) as s:
        make_study(s, pmid="90000204", title="Esketamine nasal spray",
                   abstract="Esketamine nasal spray reduced depressive symptoms.")
        s.commit()
    report = ranking_index.update(engine, path, config=config)
    assert report.action == "built" and report.reason == "the collection crossed 3 studies"
    loaded = ranking_index.load(path)
    assert loaded is not None and not loaded[0].has_subword_index
    with Session(engine) as s:
        s.exec(select(Study).where(Study.pmid == "90000202")).one().deleted = True
        s.commit()
    assert ranking_index.update(engine, path, config=config).action == "built"
    loaded = ranking_index.load(path)
    assert loaded is not None and loaded[0].has_subword_index


def _linked_setup(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "post.txt").write_text(ARTICLE)
    jobs.ingest_articles(engine, [str(tmp_path / "post.txt")])
    _load(engine, IV_KETAMINE_RCT, EATING_DISORDER_REVIEW, ESKETAMINE_SPRAY, RETRACTED_STUDY)
    _studies(engine)
    _resolve_all(engine)


def _snapshot(engine: Engine) -> list[tuple[object, ...]]:
    with Session(engine) as s:
        rows = s.exec(select(EvidenceLink).order_by(col(EvidenceLink.claim_id),
                                                    col(EvidenceLink.study_id))).all()
        return [(ln.claim_id, ln.study_id, ln.origin, ln.score, ln.rank, ln.fits,
                 ln.also_found_by) for ln in rows]


def test_link_gives_the_same_links_with_and_without_the_index(
    engine: Engine, tmp_path: Path
) -> None:
    _linked_setup(engine, tmp_path)
    path = tmp_path / "index"
    first = linking.link_all(engine, index_dir=path)
    assert first.ranking.startswith(f"ranking index at {path} built (7 new")
    with_index = _snapshot(engine)
    assert any(row[2] == "local" for row in with_index)
    memory = linking.link_all(engine)
    assert memory.ranking == "ranked 7 studies in memory"
    assert (memory.links_created, memory.links_updated, memory.links_removed) == (0, 0, 0)
    assert _snapshot(engine) == with_index
    again = linking.link_all(engine, index_dir=path)
    assert again.ranking == f"ranking index at {path} is current (7 studies)"
    assert _snapshot(engine) == with_index
    # A new study: the index is updated, and ranks as memory does.
    with Session(engine) as s:
        make_study(s, pmid="90000205", title="Ketamine infusions within 24 hours",
                   abstract="Depression eased within 24 hours of a ketamine infusion.")
        s.commit()
    updated = linking.link_all(engine, index_dir=path)
    assert "updated (1 new, 0 changed, 0 deleted" in updated.ranking
    after_index = _snapshot(engine)
    linking.link_all(engine)
    assert _snapshot(engine) == after_index


def test_link_reads_only_the_studies_its_claims_need(engine: Engine, tmp_path: Path) -> None:
    _linked_setup(engine, tmp_path)
    with Session(engine) as s:  # 300 studies on another topic: never a candidate
        for i in range(300):
            make_study(s, pmid=str(90001000 + i), title=f"Statin trial {i}",
                       abstract=f"Atorvastatin lowered LDL cholesterol in cohort {i}.")
        s.commit()
    path = tmp_path / "index"
    ranking_index.build(engine, path)
    loaded: list[int] = []

    def count(target: Study, _context: object) -> None:
        loaded.append(target.id or 0)

    event.listen(Study, "load", count)
    try:
        summary = linking.link_all(engine, index_dir=path)
    finally:
        event.remove(Study, "load", count)
    assert summary.links_created > 0
    assert 0 < len(set(loaded)) <= 60, len(set(loaded))  # not the 307 studies


def test_index_commands(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "idx"
    monkeypatch.setenv("INDEX_DIR", str(path))
    monkeypatch.setenv("DATABASE_URL", db_url)
    config.reset_settings()
    engine = db.get_engine()
    db.upgrade(engine)
    _studies(engine)
    code, out, _ = run_cli(monkeypatch, capsys, "index", "status")
    assert code == 3 and out.startswith(f"no ranking index at {path} (3 live studies)")
    code, out, _ = run_cli(monkeypatch, capsys, "index", "build")
    assert code == 0 and out.startswith(f"ranking index built at {path}: 3 studies")
    code, out, _ = run_cli(monkeypatch, capsys, "index", "status")
    assert code == 0 and out.strip().endswith("; current")
    with Session(engine) as s:
        make_study(s, pmid="90000206")
        s.commit()
    code, out, _ = run_cli(monkeypatch, capsys, "index", "status")
    assert code == 3 and "1 new, 0 changed, 0 deleted" in out
    code, out, _ = run_cli(monkeypatch, capsys, "index", "update")
    assert code == 0 and out.startswith(f"ranking index updated at {path}: 4 studies (1 new")
    code, out, _ = run_cli(monkeypatch, capsys, "link")
    assert code == 0 and out.startswith(f"ranking index at {path} is current (4 studies)")
    code, out, _ = run_cli(monkeypatch, capsys, "link", "--no-index")
    assert code == 0 and out.startswith("ranked 4 studies in memory")
