"""Parallel bulk MEDLINE ingest: order, workers, skip by sha256, resume after interruption.

Real files in tmp_path (synthetic PMIDs >= 90,000,000), real worker processes, both
databases through the ``engine`` / ``db_url`` fixtures.
"""

from __future__ import annotations

import gc
import gzip
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, config, db
from evidence.errors import ParseError, SubstantiateError
from evidence.models import AuditEvent, IngestRun, RawRecord, Study
from ingest import medline
from ingest.pubmed_xml import PubmedRecord, iter_pubmed
from substantiate import jobs
from tests._cli import run_cli
from tests.conftest import pg_schema
from tests.pubmed_records import article_set, article_xml

FIRST = 90_070_000
# Text that COPY's text format must escape, and that must come back exactly.
AWKWARD = "Dose \\N of C:\\temp\\x and 10% \\. tab\tend"


def _rec(i: int, title: str | None = None) -> bytes:
    return article_xml(str(FIRST + i), title=title or f"Magnesium for sleep, study {i}",
                       abstract=f"Participants {i}: {AWKWARD}",
                       publication_types=("Randomized Controlled Trial",) if i % 3 == 0
                       else ("Journal Article",), mesh=("Sleep", "Magnesium"))


def _write(path: Path, body: bytes) -> Path:
    path.write_bytes(gzip.compress(body) if path.suffix == ".gz" else body)
    return path


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """Two baseline files and two update files, NCBI-named, listed out of order."""
    d = tmp_path / "ftp"
    d.mkdir()
    b1 = _write(d / "pubmed25n0001.xml.gz", article_set(*[_rec(i) for i in range(0, 23)]))
    b2 = _write(d / "pubmed25n0002.xml.gz", article_set(*[_rec(i) for i in range(23, 40)]))
    # Update 1: record 5 corrected, record 40 new, records 7 and 8 deleted, record 9 changed
    # after the deletion block.
    opened = article_set(_rec(5, "Magnesium for sleep, study 5 (corrected)"), _rec(40))
    u1 = _write(d / "pubmed25n0003.xml.gz", opened[:-len(b"</PubmedArticleSet>\n")]
        + f'<DeleteCitation><PMID Version="1">{FIRST + 7}</PMID><PMID Version="1">{FIRST + 8}'
          f"</PMID></DeleteCitation>".encode()
        + _rec(9, "Magnesium for sleep, study 9 (revised)") + b"</PubmedArticleSet>\n")
    # Update 2: record 5 corrected again (applies after update 1), record 8 re-instated.
    u2 = _write(d / "pubmed25n0004.xml.gz", article_set(
        _rec(5, "Magnesium for sleep, study 5 (second correction)"), _rec(8)))
    return [u2, b2, u1, b1]


@pytest.fixture
def twin(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second fresh database on the same backend as ``engine``."""
    if db_url.startswith("sqlite"):
        eng = db.make_engine(f"sqlite:///{tmp_path / 'twin.db'}")
        db.create_all(eng)
        yield eng
        eng.dispose()
        return
    with pg_schema() as url:
        eng = db.make_engine(url)
        db.create_all(eng)
        try:
            yield eng
        finally:
            eng.dispose()


def _content(engine: Engine, *, drop: tuple[str, ...] = ()
             ) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """Every study row but its timestamps, and the audit trail's (action, entity, id)."""
    skip = ("created_at", "updated_at", *drop)
    with Session(engine) as s:
        rows = [{k: v for k, v in st.model_dump().items() if k not in skip}
                for st in s.exec(select(Study).order_by(col(Study.pmid))).all()]
        events = [(e.action, e.entity, e.entity_id) for e in s.exec(
            select(AuditEvent).order_by(col(AuditEvent.id))).all()
            if e.action.startswith("study.")]
        assert audit.verify(s).ok
    return rows, events


def _studies(engine: Engine) -> dict[str, Study]:
    with Session(engine) as s:
        return {st.pmid: st for st in s.exec(select(Study)).all()}


def test_order_files_is_ncbi_numbering_then_the_rest(tmp_path: Path) -> None:
    names = ["extra.xml", "pubmed25n1275.xml.gz", "pubmed24n1300.xml.gz",
             "pubmed25n0002.xml.gz", "pubmed25n0010.xml", "other.xml.gz"]
    assert [p.name for p in medline.order_files([tmp_path / n for n in names])] == [
        "pubmed24n1300.xml.gz", "pubmed25n0002.xml.gz", "pubmed25n0010.xml",
        "pubmed25n1275.xml.gz", "extra.xml", "other.xml.gz"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    (tmp_path / "pubmed25n0002.xml.gz.md5").write_bytes(b"")
    assert sorted(p.name for p in medline.expand_paths([tmp_path])) == sorted(
        n for n in names if n.startswith("pubmed"))


@pytest.mark.parametrize("workers", [1, 2])
def test_baseline_then_updates_in_order_with_deletions(engine: Engine, files: list[Path],
                                                       workers: int) -> None:
    summary = jobs.ingest_medline(engine, files, batch_size=7, workers=workers)
    assert [Path(f["file"]).name for f in summary.files] == [
        "pubmed25n0001.xml.gz", "pubmed25n0002.xml.gz", "pubmed25n0003.xml.gz",
        "pubmed25n0004.xml.gz"]
    t = summary.total
    assert (t.inserted, t.updated, t.deleted) == (41, 4, 2)
    studies = _studies(engine)
    assert len(studies) == 41
    assert studies[str(FIRST + 5)].title == "Magnesium for sleep, study 5 (second correction)"
    assert studies[str(FIRST + 5)].version == 3
    assert studies[str(FIRST + 7)].deleted and "deleted" in {
        f["code"] for f in studies[str(FIRST + 7)].flags}
    assert not studies[str(FIRST + 8)].deleted  # deleted by update 1, back in update 2
    assert studies[str(FIRST + 9)].title == "Magnesium for sleep, study 9 (revised)"
    assert studies[str(FIRST + 3)].design == "rct"
    assert studies[str(FIRST + 4)].mesh[0]["descriptor"] == "Sleep"
    # The bulk path stores exactly what the parser read (COPY escaping included).
    parsed = next(r for r in iter_pubmed(files[3]) if isinstance(r, PubmedRecord))
    assert studies[parsed.pmid].abstract == parsed.abstract
    assert AWKWARD.replace("\t", " ") in parsed.abstract  # the parser folds the tab
    with Session(engine) as s:
        updates = s.exec(select(AuditEvent).where(AuditEvent.action == "study.update")
                         .where(AuditEvent.entity_id == str(FIRST + 5))
                         .order_by(col(AuditEvent.id))).all()
        assert [e.after["title"] for e in updates if e.after] == [
            "Magnesium for sleep, study 5 (corrected)",
            "Magnesium for sleep, study 5 (second correction)"]
        assert updates[0].before and updates[0].before["title"] == "Magnesium for sleep, study 5"
        inserts = s.exec(select(AuditEvent).where(AuditEvent.action == "study.insert")).all()
        assert sum(len(e.after["pmids"]) for e in inserts if e.after) == 41
        assert audit.verify(s).ok


def test_one_and_two_workers_give_the_same_database(engine: Engine, twin: Engine,
                                                    files: list[Path]) -> None:
    jobs.ingest_medline(engine, files, batch_size=7, workers=1)
    jobs.ingest_medline(twin, files, batch_size=7, workers=2)
    one, two = _content(engine), _content(twin)
    assert one[0] and one == two


def test_rerun_skips_files_already_loaded(engine: Engine, files: list[Path]) -> None:
    jobs.ingest_medline(engine, files[2:], workers=2)  # the update 1 and the first baseline
    with Session(engine) as s:
        events = len(s.exec(select(AuditEvent)).all())
    again = jobs.ingest_medline(engine, files, workers=2)
    assert [f["skipped"] for f in again.files] == [True, False, True, False]
    assert again.skipped == 2
    with Session(engine) as s:
        raws = s.exec(select(RawRecord).where(RawRecord.source == "medline_file")).all()
        assert len(raws) == 4  # one per file loaded, none for a skipped one
        assert len(s.exec(select(AuditEvent)).all()) > events


def test_cli_loads_a_folder_and_skips_it_the_second_time(
    db_url: str, files: list[Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    config.reset_settings()
    folder = str(files[0].parent)
    code, out, err = run_cli(monkeypatch, capsys, "ingest", "medline", "--workers", "2", folder)
    assert code == 0, err
    assert [line.split("/")[-1] for line in out.splitlines()] == [
        "pubmed25n0001.xml.gz: 23 new, 0 updated, 0 unchanged, 0 deleted",
        "pubmed25n0002.xml.gz: 17 new, 0 updated, 0 unchanged, 0 deleted",
        "pubmed25n0003.xml.gz: 1 new, 2 updated, 0 unchanged, 2 deleted",
        "pubmed25n0004.xml.gz: 0 new, 2 updated, 0 unchanged, 0 deleted"]
    code, out, err = run_cli(monkeypatch, capsys, "ingest", "medline", folder, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["skipped"] == 4 and report["total"]["inserted"] == 0
    assert len(_studies(db.get_engine())) == 41


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_file_mid_run_then_repaired_resumes(engine: Engine, twin: Engine,
                                                      files: list[Path], workers: int) -> None:
    b2 = files[1]
    good = b2.read_bytes()
    whole = gzip.decompress(good)
    _write(b2, whole[:len(whole) * 2 // 3])  # cut in the middle of the second baseline file
    with pytest.raises(ParseError) as err:
        jobs.ingest_medline(engine, files, batch_size=5, workers=workers)
    assert "the 2 file(s) after it were not loaded" in str(err.value)
    partial = _studies(engine)
    assert 23 < len(partial) < 40
    b2.write_bytes(good)  # re-downloaded
    summary = jobs.ingest_medline(engine, files, batch_size=5, workers=workers)
    assert [f["skipped"] for f in summary.files] == [True, False, False, False]
    assert summary.files[1]["unchanged"] == len(partial) - 23
    jobs.ingest_medline(twin, files, batch_size=5, workers=workers)  # one clean run
    # The same rows but for the file record they point at (the failed run stored one more)
    # and their ids (PostgreSQL spends a sequence value on every upsert that conflicts).
    assert _content(engine, drop=("id", "raw_record_id"))[0] == _content(
        twin, drop=("id", "raw_record_id"))[0]
    with Session(engine) as s:
        runs = [r.status for r in s.exec(select(IngestRun).order_by(col(IngestRun.id))).all()]
        assert runs == ["ok", "error", "ok", "ok", "ok"]
        assert audit.verify(s).ok


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_mid_file_resumes_with_nothing_duplicated(
    engine: Engine, twin: Engine, files: list[Path], workers: int
) -> None:
    def stop_in_second_file(label: str, done: int, total: int | None) -> None:
        if label == "pubmed25n0002.xml.gz" and done >= 10:
            raise KeyboardInterrupt("stopped")

    with pytest.raises(KeyboardInterrupt):
        jobs.ingest_medline(engine, files, batch_size=5, workers=workers,
                            progress=stop_in_second_file)
    assert len(_studies(engine)) == 23 + 10
    summary = jobs.ingest_medline(engine, files, batch_size=5, workers=workers)
    assert [f["skipped"] for f in summary.files] == [True, False, False, False]
    assert (summary.files[1]["unchanged"], summary.files[1]["inserted"]) == (10, 7)
    jobs.ingest_medline(twin, files, batch_size=5, workers=workers)
    rows, _ = _content(engine, drop=("id", "raw_record_id"))
    assert rows == _content(twin, drop=("id", "raw_record_id"))[0]
    assert len({r["pmid"] for r in rows}) == len(rows) == 41
    with Session(engine) as s:
        runs = [r.status for r in s.exec(select(IngestRun).order_by(col(IngestRun.id))).all()]
        assert runs == ["ok", "interrupted", "ok", "ok", "ok"]


def test_a_worker_that_dies_fails_the_run_with_one_line_instead_of_hanging(
    engine: Engine, files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Spawned workers import the parent's main script first; one that exits at once makes
    # every worker die as it starts (as one killed by the kernel would die mid-file).
    script = tmp_path / "dies.py"
    script.write_text("import os\nos._exit(3)\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    with pytest.raises(SubstantiateError, match="a parsing worker process died while "
                       "reading .*pubmed25n0001.xml.gz .*run the same command again"):
        jobs.ingest_medline(engine, files, batch_size=7, workers=2)


def test_large_values_are_stored_with_lz4_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    # Value compression is PostgreSQL's; SQLite stores values as given.
    engine = db.make_engine(pg_url)
    db.create_all(engine)
    long_abstract = " ".join(f"Finding {i}: magnesium improved sleep latency." for i in range(200))
    path = _write(tmp_path / "pubmed25n0001.xml.gz", article_set(
        article_xml(str(FIRST + 500), title="Magnesium and sleep", abstract=long_abstract)))
    jobs.ingest_medline(engine, [path])
    with engine.connect() as conn:
        compressed = conn.exec_driver_sql(
            "SELECT pg_column_compression(abstract), abstract FROM study WHERE pmid = %s",
            (str(FIRST + 500),)).one()
        server_default = conn.exec_driver_sql("SHOW default_toast_compression").scalar()
    engine.dispose()
    assert compressed == ("lz4", long_abstract)  # compressed with lz4, read back exactly
    assert server_default == "pglz"  # only the load's own transactions are switched


def test_the_collector_is_paused_while_parsing_and_back_while_the_caller_holds_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _write(tmp_path / "pubmed25n0001.xml.gz", article_set(*[_rec(i) for i in range(5)]))
    parsing: list[bool] = []

    def watched(source: Path) -> Iterator[Any]:
        for item in iter_pubmed(source):
            parsing.append(gc.isenabled())
            yield item

    monkeypatch.setattr(medline, "iter_pubmed", watched)
    holding = [gc.isenabled() for _chunk in medline.prepare_file(
        path, dialect="sqlite", batch_size=2)]
    assert parsing == [False] * 5  # paused while records are parsed and prepared
    assert holding == [True] * 3  # on while the caller has a chunk in hand
    assert gc.isenabled()  # and on afterwards
