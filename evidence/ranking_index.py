"""The persisted ranking index: the :class:`~evidence.match.Ranker` over every live study,
kept on disk so ``link`` loads it (memory-mapped) instead of re-analysing every study.

Layout (``INDEX_DIR``, default ``<data dir>/index``)::

    CURRENT                 name of the generation in force (replaced atomically)
    gen-<time>-<pid>/       one complete index: Ranker.save's arrays and ranker.json,
        manifest.json       plus this manifest
        studies.ids.npy     the indexed study ids, ascending (int64)
        studies.fingerprints.npy  each one's fingerprint (32 bytes, same order)

The manifest records the format version, the ranker configuration, the database it was
built from, when it was built and last updated, and how many studies it holds; the two
arrays hold every indexed study's id and fingerprint: the ``record_sha256`` of the PubMed
record it was parsed from, or, for a study without one (entered by hand), a sha256 of its
title, abstract and MeSH headings. A study is *new* when the index lacks it, *changed*
when its fingerprint differs, *deleted* when it is gone or marked deleted. Arrays, not
JSON: at a million studies they take 40 MB on disk and in memory, and the currency check
``link`` runs first compares them with the database's in a few vectorised passes.
Documents are ordered by study id, as ``link`` orders them when it ranks in memory, so
ties break the same way.

Updating is exact: BM25's idf and average length depend on every document, and so do the
neighbours used for score regularisation, so an update re-weights the stored term counts of
the unchanged studies (no re-analysis), analyses only the new and changed ones, and finds
the neighbours again. The result is the index a fresh build would give, array for array.
Readers of the previous generation keep their memory maps until they close; a new
generation is written beside it and ``CURRENT`` switched in one rename. Writers (build,
update) of one directory take turns through a file lock (``.lock``).

With ``semantic=True``, build and update also embed every live study the embedding store
(``evidence.embeddings``, in ``embeddings/<model>/`` under the index directory) lacks, so
``link --semantic`` finds every vector ready (:func:`embed_studies`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine
from sqlmodel import col, select

from evidence.db import read_session
from evidence.match import Document, Ranker, RankerConfig
from evidence.models import Study

__all__ = [
    "EmbeddingReport",
    "IndexReport",
    "IndexStatus",
    "LinkRanker",
    "StudySet",
    "build",
    "documents",
    "live_study_ids",
    "embed_studies",
    "ranker_for_link",
    "status",
    "update",
    "writer_lock",
]

FORMAT = 2  # 2: study ids and fingerprints in arrays beside the manifest
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
_IDS = "studies.ids.npy"
_FINGERPRINTS = "studies.fingerprints.npy"
_FETCH = 20_000  # rows per fetch when every live study is read
_CHUNK = 500  # ids per IN (...) query: SQLite's parameter limit

Progress = Callable[[str, int, int | None], None]


@dataclass
class IndexStatus:
    """Whether the index on disk matches the live studies of the database."""

    path: str
    exists: bool
    current: bool
    reason: str
    indexed: int = 0
    live: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    built_at: str | None = None
    updated_at: str | None = None
    size_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


@dataclass
class IndexReport:
    """What a build or an update did."""

    action: str  # "built", "updated", "unchanged"
    path: str
    studies: int
    new: int = 0
    changed: int = 0
    deleted: int = 0
    seconds: float = 0.0
    size_bytes: int = 0
    reason: str = ""
    embeddings: EmbeddingReport | None = None  # with semantic=True

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (``embeddings`` only when studies were embedded too)."""
        result = asdict(self)
        if self.embeddings is None:
            del result["embeddings"]
        return result


@dataclass
class EmbeddingReport:
    """What :func:`embed_studies` did: studies embedded (encoded) and already stored."""

    path: str
    studies: int
    embedded: int
    already_stored: int
    seconds: float
    per_second: float | None  # studies embedded per second of encoding (model load excluded)
    vectors: int
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


@dataclass(frozen=True)
class StudySet:
    """Studies by id with their fingerprints, as two aligned arrays (ids ascending).

    ``fingerprints`` has one row of 32 bytes (a sha256 digest) per study.
    """

    ids: npt.NDArray[np.int64]
    fingerprints: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> StudySet:
        """No studies."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros((0, 32), dtype=np.uint8))


@dataclass
class LinkRanker:
    """The ranker ``link`` uses, the study ids it covers (ascending), and how it was
    obtained."""

    ranker: Ranker | None
    study_ids: npt.NDArray[np.int64]
    message: str
    persisted: bool = False
    report: IndexReport | None = field(default=None)


# ---------------------------------------------------------------------------- database


def document_of(study_id: int, title: str, abstract: str, mesh: Any) -> Document:
    """The ranker's view of a study (as ``linking.study_document``)."""
    names = tuple(str(m.get("descriptor", "")) for m in mesh or [])
    return Document(doc_id=str(study_id), title=title, abstract=abstract, mesh=names)


def _content_digest(doc: Document) -> bytes:
    text = "\x1f".join([doc.title, doc.abstract, *doc.mesh])
    return hashlib.sha256(text.encode("utf-8")).digest()


def _digest(record_sha256: str) -> bytes | None:
    """The 32 bytes of a ``record_sha256`` (None if it is not a sha256 hex digest)."""
    try:
        raw = bytes.fromhex(record_sha256)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def live_studies(engine: Engine) -> StudySet:
    """Every live (not deleted) study's id and fingerprint, ids ascending.

    Rows are streamed (``_FETCH`` at a time) into two compact arrays: about 40 bytes a
    study, never a Python object per study for the whole collection.
    """
    id_buffer = array("q")  # int64, no Python object per study
    print_buffer = bytearray()  # 32 bytes per study
    unhashed: list[int] = []  # positions of studies without a parsable record hash
    with read_session(engine) as session:
        stmt = (select(Study.id, Study.record_sha256).where(col(Study.deleted).is_(False))
                .order_by(col(Study.id)).execution_options(yield_per=_FETCH))
        for partition in session.execute(stmt).partitions():
            for sid, sha in partition:
                raw = _digest(sha) if sha else None
                if raw is None:
                    unhashed.append(len(id_buffer))
                    raw = bytes(32)
                id_buffer.append(sid)
                print_buffer += raw
    ids = np.frombuffer(id_buffer, dtype=np.int64).copy()
    prints = np.frombuffer(bytes(print_buffer), dtype=np.uint8).reshape(-1, 32).copy()
    # Studies entered without a PubMed record (by hand) are fingerprinted by their text,
    # read 500 at a time: memory stays flat however many there are.
    for position, doc in zip(unhashed, documents(engine, [int(ids[i]) for i in unhashed]),
                             strict=True):
        prints[position] = np.frombuffer(_content_digest(doc), dtype=np.uint8)
    return StudySet(ids, prints)


def live_study_ids(engine: Engine) -> npt.NDArray[np.int64]:
    """Every live (not deleted) study's id, ascending, streamed into one array."""
    parts: list[npt.NDArray[np.int64]] = []
    with read_session(engine) as session:
        stmt = (select(Study.id).where(col(Study.deleted).is_(False)).order_by(col(Study.id))
                .execution_options(yield_per=_FETCH))
        for partition in session.execute(stmt).partitions():
            parts.append(np.fromiter((row[0] for row in partition), dtype=np.int64,
                                     count=len(partition)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def documents(engine: Engine, ids: Sequence[int]) -> Iterator[Document]:
    """The ranker documents of these studies, in the order of ``ids``, read 500 at a
    time (never all the studies as ORM objects at once)."""
    for chunk in _chunks(list(ids)):
        yield from _documents(engine, chunk)


def _documents(engine: Engine, ids: Sequence[int]) -> list[Document]:
    """The ranker documents of these studies, in the order of ``ids``."""
    found: dict[int, Document] = {}
    with read_session(engine) as session:
        for chunk in _chunks(list(ids)):
            rows = session.exec(select(Study.id, Study.title, Study.abstract, Study.mesh)
                                .where(col(Study.id).in_(chunk))).all()
            for sid, title, abstract, mesh in rows:
                assert sid is not None
                found[sid] = document_of(sid, title, abstract, mesh)
    return [found[i] for i in ids]


def _database(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


# ---------------------------------------------------------------------------- files


def _generation(path: Path) -> Path | None:
    try:
        name = (path / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    folder = path / name
    return folder if (folder / MANIFEST).is_file() else None


def _read_manifest(path: Path) -> dict[str, Any] | None:
    folder = _generation(path)
    if folder is None:
        return None
    manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return manifest


def _indexed(folder: Path) -> StudySet:
    """The studies a generation holds (an empty set for a manifest of an older format,
    which is rebuilt anyway)."""
    if not (folder / _IDS).is_file():
        return StudySet.empty()
    return StudySet(np.load(folder / _IDS), np.load(folder / _FINGERPRINTS))


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """One writer at a time per directory (a second waits for the first).

    Used by the ranking index and the embedding store (``evidence.embeddings``): the lock
    is ``path/.lock``, taken with ``flock``, so it is released if the process dies.
    """
    path.mkdir(parents=True, exist_ok=True)
    with (path / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, ranker: Ranker, manifest: dict[str, Any], studies: StudySet) -> Path:
    """Write a new generation and make it current; remove the older ones."""
    path.mkdir(parents=True, exist_ok=True)
    name = f"gen-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}"
    folder = path / name
    ranker.save(folder)
    np.save(folder / _IDS, studies.ids)
    np.save(folder / _FINGERPRINTS, studies.fingerprints)
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    pointer = path / f".{CURRENT}.{os.getpid()}"
    pointer.write_text(name, encoding="utf-8")
    os.replace(pointer, path / CURRENT)
    # Open memory maps of an older generation stay valid after its files are unlinked.
    for old in path.glob("gen-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return folder


def _manifest(
    engine: Engine, studies: StudySet, config: RankerConfig, built_at: str | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {"format": FORMAT, "config": asdict(config), "database": _database(engine),
            "built_at": built_at or now, "updated_at": now, "studies": len(studies)}


# ---------------------------------------------------------------------------- operations


def _diff(indexed: StudySet, live: StudySet) -> tuple[list[int], list[int], list[int]]:
    """New, changed and deleted study ids (each ascending), in vectorised passes."""
    common, at_live, at_indexed = np.intersect1d(
        live.ids, indexed.ids, assume_unique=True, return_indices=True)
    differs = (live.fingerprints[at_live] != indexed.fingerprints[at_indexed]).any(axis=1)
    new = np.setdiff1d(live.ids, indexed.ids, assume_unique=True)
    deleted = np.setdiff1d(indexed.ids, live.ids, assume_unique=True)
    return new.tolist(), common[differs].tolist(), deleted.tolist()


def _compatible(manifest: dict[str, Any] | None, engine: Engine, config: RankerConfig,
                ) -> str | None:
    """Why this manifest cannot be updated (only rebuilt), or None."""
    if manifest is None:
        return "no index"
    if manifest.get("format") != FORMAT:
        return f"index format {manifest.get('format')}, expected {FORMAT}"
    if manifest.get("config") != asdict(config):
        return "built with another ranker configuration"
    if manifest.get("database") != _database(engine):
        return f"built from another database ({manifest.get('database')})"
    return None


def status(engine: Engine, path: Path, *, config: RankerConfig | None = None) -> IndexStatus:
    """Compare the index on disk with the database's live studies.

    Parameters
    ----------
    engine
        Database engine.
    path
        The index directory (``INDEX_DIR``).
    config
        The ranker configuration expected (default: the tuned one).

    Returns
    -------
    IndexStatus
        ``current`` is true when the index exists, was built from this database with this
        configuration, and no study is new, changed or deleted since.
    """
    config = config or RankerConfig()
    manifest = _read_manifest(path)
    live = live_studies(engine)
    if manifest is None:
        return IndexStatus(path=str(path), exists=False, current=False,
                           reason="no index: run `substantiate index build`", live=len(live),
                           new=len(live))
    folder = _generation(path)
    assert folder is not None
    indexed = _indexed(folder)
    new, changed, deleted = _diff(indexed, live)
    problem = _compatible(manifest, engine, config)
    stale = bool(new or changed or deleted)
    reason = problem or (f"{len(new)} new, {len(changed)} changed, {len(deleted)} deleted "
                         "studies since the index was written" if stale else "current")
    return IndexStatus(path=str(path), exists=True, current=problem is None and not stale,
                       reason=reason, indexed=len(indexed), live=len(live), new=len(new),
                       changed=len(changed), deleted=len(deleted),
                       built_at=manifest.get("built_at"), updated_at=manifest.get("updated_at"),
                       size_bytes=_size(folder))


def build(
    engine: Engine, path: Path, *, config: RankerConfig | None = None,
    progress: Progress | None = None, semantic: bool = False,
) -> IndexReport:
    """Build the index over every live study and make it current.

    Writers of one index directory take turns (a file lock); readers never wait.

    Parameters
    ----------
    engine
        Database engine.
    path
        The index directory (created if missing).
    config
        Ranker configuration (default: the tuned one).
    progress
        Called as ``progress("studies", done, total)`` while the documents are read (and
        ``progress("embeddings", done, total)`` while they are embedded).
    semantic
        Also embed every live study the embedding store lacks (:func:`embed_studies`).

    Returns
    -------
    IndexReport
        With ``semantic``, its ``embeddings`` says how many studies were embedded.

    Raises
    ------
    evidence.semantic.SemanticUnavailable
        With ``semantic``, if the extra is not installed (before anything is written).
    """
    return _locked(_build, engine, path, config, progress, semantic)


def _build(
    engine: Engine, path: Path, config: RankerConfig, progress: Progress | None
) -> IndexReport:
    t0 = time.perf_counter()
    live = live_studies(engine)
    ids = live.ids.tolist()
    docs: list[Document] = []
    for chunk in _chunks(ids):
        docs.extend(_documents(engine, chunk))
        if progress:
            progress("studies", len(docs), len(ids))
    ranker = Ranker(docs, config)
    folder = _write(path, ranker, _manifest(engine, live, config), live)
    return IndexReport(action="built", path=str(path), studies=len(ids), new=len(ids),
                       seconds=round(time.perf_counter() - t0, 3), size_bytes=_size(folder))


def update(
    engine: Engine, path: Path, *, config: RankerConfig | None = None,
    progress: Progress | None = None, semantic: bool = False,
) -> IndexReport:
    """Bring the index up to date with the database, analysing only what changed.

    New and changed studies are analysed; deleted ones dropped; the unchanged ones'
    stored term counts are re-weighted. The result equals a fresh :func:`build`. With no
    index yet, or one built from another database, format or configuration, it builds.

    Parameters
    ----------
    engine
        Database engine.
    path
        The index directory.
    config
        Ranker configuration (default: the tuned one).
    progress
        Passed to :func:`build` when a full build is needed.
    semantic
        Also embed every live study the embedding store lacks (:func:`embed_studies`):
        the new and changed ones, or all of them the first time.

    Returns
    -------
    IndexReport
        ``action`` is "built", "updated" or "unchanged" (of the BM25 index).

    Raises
    ------
    evidence.semantic.SemanticUnavailable
        With ``semantic``, if the extra is not installed (before anything is written).
    """
    return _locked(_update, engine, path, config, progress, semantic)


def _locked(
    step: Callable[[Engine, Path, RankerConfig, Progress | None], IndexReport],
    engine: Engine, path: Path, config: RankerConfig | None, progress: Progress | None,
    semantic: bool,
) -> IndexReport:
    """Run a build or update step holding the writer lock; then embed, if asked."""
    if semantic:
        _require_semantic()
    with writer_lock(path):
        report = step(engine, path, config or RankerConfig(), progress)
    if semantic:
        report.embeddings = embed_studies(engine, path, progress=progress)
    return report


def _require_semantic() -> None:
    from evidence.semantic import require

    require()


def embed_studies(
    engine: Engine, path: Path, *, progress: Progress | None = None,
) -> EmbeddingReport:
    """Embed every live study that the embedding store under ``path`` lacks.

    The store is ``evidence.embeddings.store_path(path)``; a study is looked up by the
    sha256 of its title and abstract, so only new and changed studies are encoded.

    Parameters
    ----------
    engine
        Database engine.
    path
        The index directory (``INDEX_DIR``).
    progress
        Called as ``progress("studies", done, total)`` while the documents are read and
        ``progress("embeddings", done, total)`` while they are embedded.

    Returns
    -------
    EmbeddingReport

    Raises
    ------
    evidence.semantic.SemanticUnavailable
        If the [semantic] extra is not installed.
    evidence.errors.EmbeddingStoreError
        If a file of the store is unreadable.
    """
    from evidence.embeddings import EmbeddingStore, store_path
    from evidence.semantic import HybridReranker

    _require_semantic()
    store = EmbeddingStore(store_path(path))
    ids = live_studies(engine).ids.tolist()
    docs: list[Document] = []
    for chunk in _chunks(ids):
        docs.extend(_documents(engine, chunk))
        if progress:
            progress("studies", len(docs), len(ids))
    reranker = HybridReranker(docs, store=store)
    t0 = time.perf_counter()
    reranker.precompute(
        (lambda done, total: progress("embeddings", done, total)) if progress else None)
    seconds = time.perf_counter() - t0
    embedded = reranker.encoded
    return EmbeddingReport(
        path=str(store.path), studies=len(docs), embedded=embedded,
        already_stored=len(docs) - embedded, seconds=round(seconds, 3),
        per_second=round(embedded / seconds, 1) if embedded and seconds > 0 else None,
        vectors=len(store), size_bytes=store.size_bytes())


def _update(
    engine: Engine, path: Path, config: RankerConfig, progress: Progress | None
) -> IndexReport:
    t0 = time.perf_counter()
    manifest = _read_manifest(path)
    problem = _compatible(manifest, engine, config)
    if problem is not None or manifest is None:
        report = _build(engine, path, config, progress)
        report.reason = problem or ""
        return report
    live = live_studies(engine)
    folder = _generation(path)
    assert folder is not None
    new, changed, deleted = _diff(_indexed(folder), live)
    if not (new or changed or deleted):
        return IndexReport(action="unchanged", path=str(path), studies=len(live),
                           size_bytes=_size(folder))
    if not len(live):
        return _build(engine, path, config, progress)
    old = Ranker.load(folder, mmap=True)
    if old.has_subword_index != config.has_subwords(len(live)):
        # The collection crossed ``subword_limit``: a new ranker has (or lacks) the
        # subword index, which an update cannot add.
        report = _build(engine, path, config, progress)
        report.reason = f"the collection crossed {config.subword_limit} studies"
        return report
    added = _documents(engine, sorted(new + changed))
    ranker = old.with_changes(added, remove=[str(s) for s in deleted],
                              order=[str(s) for s in live.ids.tolist()])
    written = _write(path, ranker, _manifest(engine, live, config, manifest.get("built_at")),
                     live)
    return IndexReport(action="updated", path=str(path), studies=len(live), new=len(new),
                       changed=len(changed), deleted=len(deleted),
                       seconds=round(time.perf_counter() - t0, 3), size_bytes=_size(written))


def load(path: Path) -> tuple[Ranker, npt.NDArray[np.int64]] | None:
    """The current index (memory-mapped) and the study ids it covers (ascending), or None."""
    folder = _generation(path)
    if folder is None:
        return None
    return Ranker.load(folder, mmap=True), _indexed(folder).ids


def ranker_for_link(engine: Engine, path: Path) -> LinkRanker:
    """The ranker ``link`` should use: the persisted index, brought up to date first.

    A current index is loaded as it is; a missing or stale one is built or updated, then
    loaded. If the index directory cannot be written, the ranker is built in memory (the
    same ranking) and the message says why.

    Parameters
    ----------
    engine
        Database engine.
    path
        The index directory (``INDEX_DIR``).

    Returns
    -------
    LinkRanker
        The ranker (None when there is no live study), the study ids it covers, and a
        one-line message for the operator.
    """
    state = status(engine, path)
    report: IndexReport | None = None
    if state.live == 0:
        return LinkRanker(None, StudySet.empty().ids, "no live studies: nothing to rank")
    try:
        if not state.current:
            report = update(engine, path)
        loaded = load(path)
    except OSError as e:
        live = live_studies(engine)
        ranker = Ranker(documents(engine, live.ids.tolist()))
        return LinkRanker(ranker, live.ids, f"ranking index at {path} not usable "
                          f"({e.__class__.__name__}: {e}); ranked in memory instead")
    assert loaded is not None
    ranker, ids = loaded
    if report is None:
        message = f"ranking index at {path} is current ({len(ids)} studies)"
    else:
        message = (f"ranking index at {path} {report.action} ({report.new} new, "
                   f"{report.changed} changed, {report.deleted} deleted; "
                   f"{report.studies} studies, {report.seconds:.1f} s)")
    return LinkRanker(ranker, ids, message, persisted=True, report=report)
