"""Bulk loading of PubMed baseline / update files (``pubmed25n0001.xml.gz``), offline.

Parsing and loading are split so that they can run in different processes:

* :func:`prepare_file` parses one file into :class:`Chunk` s: up to ``batch_size`` prepared
  ``study`` rows each (content hash, design classification, JSON columns encoded; for
  PostgreSQL already in ``COPY`` text format), or one ``DeleteCitation`` block. It needs
  no database and its output is picklable, so worker processes can run it.
* :func:`write_chunk` writes one chunk in the caller's transaction through the fastest
  path of the database: on PostgreSQL ``COPY`` into a temporary staging table, then one
  set-based ``INSERT ... SELECT ... ON CONFLICT (pmid) DO UPDATE ... WHERE`` the record
  hash differs (or the study was deleted); on SQLite one ``executemany`` of the same upsert.
  Unchanged records (same content hash) are not written.
* :class:`Pipeline` hands out the files of a run in order, each with its chunks: parsed in
  the calling process (``workers=1``), or by ``workers`` processes that run ahead of the
  writer and spool their chunks to a temporary file (flat memory, whatever a file's size).

Files are applied in the order of :func:`order_files` (NCBI's numbering: the baseline,
then the update files), one transaction per chunk, ``DeleteCitation`` blocks in document
order. Re-loading a file is a no-op (unchanged records are skipped by content hash); the
job (``substantiate.jobs.ingest_medline``) also skips a file whose sha256 already has a
completed run.

A file that turns out malformed or truncated part-way is not rolled back: every complete
record before the fault is loaded (the chunk in hand is committed first), and the error
says how many and how to finish (re-run with the repaired or re-downloaded file; what is
already loaded is skipped as unchanged). Rolling back would throw away millions of good
records of a baseline file for one bad byte at its end.

Audit granularity is that of ``ingest.load.write_studies``: one ``study.insert`` event per
chunk naming the PMID range and listing every PMID inserted, one ``study.update`` event per
changed record with the audited fields before and after, one ``study.delete`` event per
``DeleteCitation`` block (per 500 PMIDs).
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Engine, Integer, column, table, text
from sqlmodel import Session, col, select

from evidence import audit
from evidence.db import json_dumps, session_scope
from evidence.errors import InputError, ParseError, SubstantiateError
from evidence.models import Study, utcnow
from ingest.load import _AUDITED, LoadStats, mark_deleted, record_hash, store_raw, study_values
from ingest.pubmed_xml import DeletedCitations, PubmedRecord, iter_pubmed

BATCH = 5000
"""Records per chunk, and so per transaction."""

# Columns prepared by the parser: every ``study`` column but the row's identity, its
# provenance and its timestamps / version, which the writer adds.
_WRITER_COLUMNS = ("id", "raw_record_id", "created_at", "updated_at", "version")
COLUMNS: tuple[str, ...] = tuple(c.name for c in Study.__table__.columns  # type: ignore[attr-defined]
                                 if c.name not in _WRITER_COLUMNS)
_JSON = frozenset(c.name for c in Study.__table__.columns  # type: ignore[attr-defined]
                  if isinstance(c.type, JSON))
_BOOL = frozenset(c.name for c in Study.__table__.columns  # type: ignore[attr-defined]
                  if isinstance(c.type, Boolean))
_INT = frozenset(c.name for c in Study.__table__.columns  # type: ignore[attr-defined]
                 if isinstance(c.type, Integer))
_SHA = COLUMNS.index("record_sha256")
_STAGING = "medline_staging"

# NCBI names its files pubmed<YY>n<NNNN>.xml.gz; the update files continue the baseline's
# numbering, so (year, number) is the order in which they apply.
_NCBI_NAME = re.compile(r"^pubmed(\d{2})n(\d{4,})\.xml(\.gz)?$")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expand_paths(inputs: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for its ``pubmed*.xml.gz`` and ``pubmed*.xml`` files."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file()
                              and _NCBI_NAME.match(f.name)))
        else:
            out.append(p)
    return out


def order_files(paths: Sequence[Path]) -> list[Path]:
    """The order in which files apply: NCBI-named files by (year, number), then the others.

    ``pubmed25n0001.xml.gz`` .. ``pubmed25n1274.xml.gz`` are the baseline and
    ``pubmed25n1275.xml.gz`` onwards the daily update files, so numeric order is baseline
    first, then every update in the order NCBI published it. Files named otherwise follow,
    in the order given.
    """
    def key(item: tuple[int, Path]) -> tuple[int, int, int, int]:
        index, path = item
        m = _NCBI_NAME.match(path.name)
        if m:
            return (0, int(m.group(1)), int(m.group(2)), index)
        return (1, 0, 0, index)

    return [p for _, p in sorted(enumerate(paths), key=key)]


# ------------------------------------------------------------------------------ parsing


@dataclass
class Chunk:
    """One unit of writing: prepared ``study`` rows, or one ``DeleteCitation`` block.

    ``items`` is how many parsed items it stands for (records, or 1 for a deletion block);
    ``pmids`` the distinct PMIDs in file order (the last occurrence of a repeated PMID
    wins). Rows come as ``rows`` (tuples in :data:`COLUMNS` order, JSON encoded: SQLite)
    or as ``copy`` (the same rows in PostgreSQL ``COPY`` text format).
    """

    items: int
    pmids: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    copy: bytes = b""
    delete: bool = False


# How each column is spelled in COPY's text format: 0 text, 1 JSON, 2 boolean, 3 integer.
_COPY_KINDS: tuple[tuple[str, int], ...] = tuple(
    (c, 1 if c in _JSON else 2 if c in _BOOL else 3 if c in _INT else 0) for c in COLUMNS)


def _copy_line(values: dict[str, Any]) -> str:
    """One row in ``COPY`` text format: tab-separated, ``\\N`` for NULL, text escaped."""
    parts: list[str] = []
    for name, kind in _COPY_KINDS:
        value = values[name]
        if value is None:
            parts.append("\\N")
            continue
        if kind == 2:
            parts.append("t" if value else "f")
            continue
        if kind == 3:
            parts.append(str(int(value)))
            continue
        s = json_dumps(value) if kind == 1 else str(value)
        if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
            s = (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                 .replace("\r", "\\r"))
        parts.append(s)
    return "\t".join(parts)


def _row(values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(json_dumps(values[c]) if c in _JSON else values[c] for c in COLUMNS)


def _records_chunk(records: list[PubmedRecord], items: int, dialect: str) -> Chunk:
    latest = {r.pmid: r for r in records}  # the last occurrence of a PMID wins
    values = [study_values(r, raw_record_id=None, sha256=record_hash(r))
              for r in latest.values()]
    if dialect == "postgresql":
        lines = [_copy_line(v) for v in values]
        return Chunk(items=items, pmids=list(latest),
                     copy=("\n".join(lines) + "\n").encode("utf-8"))
    return Chunk(items=items, pmids=list(latest), rows=[_row(v) for v in values])


def prepare_file(path: Path, *, dialect: str, batch_size: int = BATCH) -> Iterator[Chunk]:
    """Parse one baseline / update file into chunks ready for :func:`write_chunk`.

    Parameters
    ----------
    path
        A PubMed XML file, plain or gzip.
    dialect
        ``postgresql`` or ``sqlite``: the form of the prepared rows.
    batch_size
        Records per chunk.

    Yields
    ------
    Chunk
        In document order; a ``DeleteCitation`` block is a chunk of its own, after the
        records before it.

    Raises
    ------
    ParseError
        The file is malformed or truncated: the records parsed before the fault are
        yielded first, as a last chunk.
    """
    with _collector_paused() as resume:
        records: list[PubmedRecord] = []
        items = 0
        try:
            for item in iter_pubmed(path):
                if isinstance(item, DeletedCitations):
                    if records:
                        chunk = _records_chunk(records, items, dialect)
                        records, items = [], 0
                        with resume():
                            yield chunk
                    chunk = Chunk(items=1, pmids=list(item.pmids), delete=True)
                    with resume():
                        yield chunk
                    continue
                records.append(item)
                items += 1
                if items >= batch_size:
                    chunk = _records_chunk(records, items, dialect)
                    records, items = [], 0
                    with resume():
                        yield chunk
        except ParseError:
            if records:
                chunk = _records_chunk(records, items, dialect)
                records = []
                with resume():
                    yield chunk
            raise
        if records:
            chunk = _records_chunk(records, items, dialect)
            records = []
            with resume():
                yield chunk


@contextmanager
def _collector_paused() -> Iterator[Callable[[], AbstractContextManager[None]]]:
    """Pause Python's cyclic garbage collector while records are parsed and prepared.

    A chunk holds thousands of freshly made objects; every automatic collection of the
    older generations walks all of them again, which costs about a quarter of the parse.
    Parsing makes no reference cycles, so nothing is lost: reference counting frees each
    chunk, and a young-generation collection after each chunk frees any cycle all the
    same. ``resume()`` re-enables the collector while the caller has a chunk in hand
    (its own code runs then), so only this module's work runs without it.
    """
    enabled = gc.isenabled()

    @contextmanager
    def resume() -> Iterator[None]:
        if enabled:
            gc.enable()
        try:
            yield
        finally:
            gc.collect(0)
            gc.disable()

    gc.disable()
    try:
        yield resume
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------------------ writing

_T_STAGING = table(_STAGING, column("pmid"), column("record_sha256"))


def _audited(session: Session, pmids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The audited fields of the given studies, JSON-safe, by PMID."""
    cols = [col(getattr(Study, k)) for k in _AUDITED]
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(pmids), 500):
        for row in session.execute(select(col(Study.pmid), *cols)
                                   .where(col(Study.pmid).in_(pmids[i:i + 500]))).all():
            out[row[0]] = {k: audit._jsonable(v) for k, v in zip(_AUDITED, row[1:], strict=True)}
    return out


def _changed_before_pg(session: Session) -> dict[str, dict[str, Any]]:
    """Audited fields of the studies the staged rows will change (before the upsert)."""
    cols = [col(getattr(Study, k)) for k in _AUDITED]
    stmt = (select(col(Study.pmid), *cols)
            .join(_T_STAGING, _T_STAGING.c.pmid == col(Study.pmid))
            .where(col(Study.record_sha256).is_distinct_from(_T_STAGING.c.record_sha256)
                   | col(Study.deleted)))
    return {row[0]: {k: audit._jsonable(v) for k, v in zip(_AUDITED, row[1:], strict=True)}
            for row in session.execute(stmt).all()}


def _upsert_sql(dialect: str, source: str) -> str:
    cols = ", ".join(COLUMNS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "pmid")
    differs = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return (f"INSERT INTO study ({cols}, raw_record_id, created_at, updated_at, version) "
            f"{source} ON CONFLICT (pmid) DO UPDATE SET {sets}, "
            "raw_record_id = excluded.raw_record_id, updated_at = excluded.updated_at, "
            "version = study.version + 1 "
            f"WHERE study.record_sha256 {differs} excluded.record_sha256 OR study.deleted")


_PG_UPSERT = _upsert_sql(
    "postgresql",
    f"SELECT {', '.join(COLUMNS)}, %(raw)s::integer, %(now)s::timestamptz, "
    f"%(now)s::timestamptz, 1 FROM {_STAGING}",
) + " RETURNING study.pmid, (xmax = 0)"
_SQLITE_UPSERT = _upsert_sql("sqlite", f"VALUES ({', '.join('?' * (len(COLUMNS) + 4))})")


def _fast_compression(conn: Any) -> None:
    """Compress this transaction's large values with lz4 where the server has it.

    PostgreSQL compresses every text / JSON value over about 2 kB (authors, abstracts,
    MeSH) when it stores it, with pglz unless told otherwise, and a bulk load stores each
    one twice (staging table, then ``study``). lz4 takes about half the server's CPU for
    the same rows, and the values read back the same: compression is per value, so
    rows already stored with pglz stay readable. Servers built without lz4 keep pglz.
    """
    info = conn.connection.info
    if "lz4" not in info:
        info["lz4"] = bool(conn.execute(text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
            "WHERE name = 'default_toast_compression'")).scalar())
    if info["lz4"]:
        conn.execute(text("SET LOCAL default_toast_compression = lz4"))


def _write_pg(session: Session, chunk: Chunk, raw_id: int | None,
              now: datetime) -> tuple[list[str], dict[str, dict[str, Any]]]:
    conn = session.connection()
    _fast_compression(conn)
    conn.execute(text(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(COLUMNS)} FROM study WITH NO DATA"))
    dbapi: Any = conn.connection.driver_connection
    with dbapi.cursor() as cur:
        with cur.copy(f"COPY {_STAGING} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            copy.write(chunk.copy)
    before = _changed_before_pg(session)
    with dbapi.cursor() as cur:
        cur.execute(_PG_UPSERT, {"raw": raw_id, "now": now})
        inserted = {pmid for pmid, is_new in cur.fetchall() if is_new}
    return [p for p in chunk.pmids if p in inserted], before


def _write_sqlite(session: Session, chunk: Chunk, raw_id: int | None,
                  now: datetime) -> tuple[list[str], dict[str, dict[str, Any]]]:
    existing: dict[str, tuple[str | None, bool]] = {}
    for i in range(0, len(chunk.pmids), 500):
        for pmid, sha, deleted in session.execute(
            select(col(Study.pmid), col(Study.record_sha256), col(Study.deleted))
            .where(col(Study.pmid).in_(chunk.pmids[i:i + 500]))
        ).all():
            existing[pmid] = (sha, deleted)
    write: list[tuple[Any, ...]] = []
    inserted: list[str] = []
    changed: list[str] = []
    conn = session.connection()
    stamp = Study.__table__.c.updated_at.type.bind_processor(  # type: ignore[attr-defined]
        conn.dialect)
    when = stamp(now) if stamp else now
    for pmid, row in zip(chunk.pmids, chunk.rows, strict=True):
        found = existing.get(pmid)
        if found is None:
            inserted.append(pmid)
        elif found[0] != row[_SHA] or found[1]:
            changed.append(pmid)
        else:
            continue
        write.append((*row, raw_id, when, when, 1))
    before = _audited(session, changed)
    if write:
        dbapi: Any = conn.connection.driver_connection
        dbapi.executemany(_SQLITE_UPSERT, write)
    return inserted, before


def write_chunk(session: Session, chunk: Chunk, *, raw_record_id: int | None,
                actor: str = "system") -> LoadStats:
    """Write one prepared chunk in the caller's transaction (nothing is committed here).

    New PMIDs are inserted, records whose content hash changed (or whose study was
    deleted) are updated, the others are left alone; a deletion chunk marks its studies
    deleted. Audited as described in the module docstring.
    """
    stats = LoadStats()
    if chunk.delete:
        stats.deleted = mark_deleted(session, chunk.pmids, actor=actor)
        return stats
    if not chunk.pmids:
        return stats
    now = utcnow()
    writer = _write_pg if session.get_bind().dialect.name == "postgresql" else _write_sqlite
    inserted, before = writer(session, chunk, raw_record_id, now)
    after = _audited(session, list(before)) if before else {}
    for pmid in before:
        audit.record(session, actor=actor, action="study.update", entity="study",
                     entity_id=pmid, before=before[pmid], after=after.get(pmid))
    if inserted:
        audit.record(session, actor=actor, action="study.insert", entity="study",
                     entity_id=f"{inserted[0]}..{inserted[-1]}",
                     after={"pmids": inserted, "raw_record_id": raw_record_id})
    stats.inserted = len(inserted)
    stats.updated = len(before)
    stats.unchanged = len(chunk.pmids) - stats.inserted - stats.updated
    return stats


def load_chunks(
    engine: Engine,
    path: Path,
    chunks: Iterable[Chunk],
    *,
    sha256: str,
    actor: str = "system",
) -> Iterator[tuple[int, LoadStats]]:
    """Write one file's chunks, one transaction each, after recording the file.

    The file's provenance (name, size, sha256) is stored as a ``raw_record`` first (without
    its body); every study written from it points at that record.

    Yields
    ------
    (int, LoadStats)
        After each chunk is committed: how many parsed items it held, and what writing
        it did. A ``ParseError`` raised by ``chunks`` propagates after the chunks before it
        are committed.
    """
    with session_scope(engine) as session:
        raw = store_raw(session, body=b"", source="medline_file", utility="file",
                        url=path.resolve().as_uri(), sha256=sha256,
                        params={"name": path.name, "bytes": path.stat().st_size},
                        keep_body=False, actor=actor)
        raw_id = raw.id
    for chunk in chunks:
        with session_scope(engine) as session:
            stats = write_chunk(session, chunk, raw_record_id=raw_id, actor=actor)
        yield chunk.items, stats


def load_file(
    engine: Engine,
    path: Path,
    *,
    sha256: str | None = None,
    actor: str = "system",
    batch_size: int = BATCH,
) -> Iterator[tuple[int, LoadStats]]:
    """Load one PubMed XML file (plain or gzip) into ``study``, chunk by chunk, in process.

    Parameters
    ----------
    engine
        Database engine.
    path
        A baseline or update file.
    sha256
        The file's digest, if the caller has it already (see :func:`file_sha256`).
    actor
        Recorded on audit events.
    batch_size
        Records per transaction.

    Yields
    ------
    (int, LoadStats)
        After each chunk is committed: how many records (and deletions) it held, and
        what loading them did. Nothing is loaded unless the iterator is consumed.

    Raises
    ------
    InputError
        The file is missing.
    ParseError
        The file is malformed or truncated. Every complete record before the fault is
        loaded first, then the error is raised.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    chunks = prepare_file(path, dialect=engine.dialect.name, batch_size=batch_size)
    yield from load_chunks(engine, path, chunks, sha256=sha256 or file_sha256(path),
                           actor=actor)


# ------------------------------------------------------------------------------ workers


_END = "end"
_FAULT = "parse_error"


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the writer handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _spool_file(path: str, spool: str, dialect: str, batch_size: int) -> None:
    """Worker process: parse ``path`` into chunks pickled one after another into ``spool``."""
    with open(spool, "wb") as out:
        try:
            for chunk in prepare_file(Path(path), dialect=dialect, batch_size=batch_size):
                pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
        except ParseError as e:
            pickle.dump((_FAULT, str(e)), out, protocol=pickle.HIGHEST_PROTOCOL)
            return
        pickle.dump((_END, ""), out, protocol=pickle.HIGHEST_PROTOCOL)


def _read_spool(result: Future[None], path: Path, spool: Path) -> Iterator[Chunk]:
    try:
        result.result()  # waits; re-raises anything the worker raised but a parse error
    except BrokenProcessPool as e:
        # A worker that dies (killed, out of memory, or failing to start) fails the run
        # instead of leaving it waiting forever; completed files stay loaded.
        raise SubstantiateError(
            f"a parsing worker process died while reading {path} ({e}); "
            "run the same command again to resume") from e
    try:
        with spool.open("rb") as f:
            while True:
                item = pickle.load(f)
                if isinstance(item, Chunk):
                    yield item
                    continue
                kind, message = item
                if kind == _FAULT:
                    raise ParseError(message)
                return
    finally:
        spool.unlink(missing_ok=True)


@dataclass
class FileJob:
    """One file of a run, in apply order: its digest, and its chunks unless skipped."""

    path: Path
    sha256: str
    skipped: bool
    chunks: Iterable[Chunk] = ()


class Pipeline:
    """Hands out files in order with their chunks, parsed ahead by worker processes.

    Parameters
    ----------
    dialect
        ``postgresql`` or ``sqlite`` (the form of the prepared rows).
    workers
        1: each file is parsed in the calling process, as its chunks are consumed. More:
        that many processes parse the next files while the caller writes; each spools its
        chunks to a temporary file, and at most ``workers + 1`` files are parsed ahead.
    batch_size
        Records per chunk.

    Use it as a context manager: leaving it stops the workers and removes the spool.
    """

    def __init__(self, *, dialect: str, workers: int = 1, batch_size: int = BATCH) -> None:
        if workers < 1:
            raise InputError(f"workers must be at least 1 (got {workers})")
        self.dialect = dialect
        self.workers = workers
        self.batch_size = batch_size
        self._pool: Any = None
        self._spool: Path | None = None

    def __enter__(self) -> Pipeline:
        if self.workers > 1:
            self._spool = Path(tempfile.mkdtemp(prefix="substantiate-medline-"))
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            # On an error, files not started yet are dropped; those being parsed finish.
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
            self._pool = None
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def files(self, paths: Sequence[Path], *,
              skip: Callable[[str], bool] = lambda _digest: False) -> Iterator[FileJob]:
        """The files in the given order; ``skip(sha256)`` true means: do not parse it.

        A skipped file comes back with ``skipped=True`` and no chunks. A file's chunks
        must be consumed before the next file is asked for.
        """
        if self._pool is None:
            for path in paths:
                digest = file_sha256(path)
                if skip(digest):
                    yield FileJob(path, digest, skipped=True)
                else:
                    yield FileJob(path, digest, skipped=False, chunks=prepare_file(
                        path, dialect=self.dialect, batch_size=self.batch_size))
            return
        assert self._spool is not None
        ahead: deque[FileJob] = deque()
        todo = iter(enumerate(paths))
        for index, path in todo:
            ahead.append(self._submit(index, path, skip))
            if len([j for j in ahead if not j.skipped]) > self.workers:
                break
        while ahead:
            job = ahead.popleft()
            yield job
            for index, path in todo:  # keep workers + 1 files in the works
                ahead.append(self._submit(index, path, skip))
                if len([j for j in ahead if not j.skipped]) > self.workers:
                    break

    def _submit(self, index: int, path: Path, skip: Callable[[str], bool]) -> FileJob:
        digest = file_sha256(path)
        if skip(digest):
            return FileJob(path, digest, skipped=True)
        assert self._spool is not None
        spool = self._spool / f"{index:06d}-{os.getpid()}.pickle"
        result = self._pool.submit(
            _spool_file, str(path), str(spool), self.dialect, self.batch_size)
        return FileJob(path, digest, skipped=False, chunks=_read_spool(result, path, spool))
