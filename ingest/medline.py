"""Bulk loading of PubMed baseline / update files (``pubmed25n0001.xml.gz``), offline.

Streaming: records are parsed with flat memory and upserted in batches, each batch in its
own transaction, so a file of any size loads in bounded memory and an interruption loses at
most the batch in flight. Re-loading a file is a no-op (unchanged records are skipped by
content hash); ``DeleteCitation`` blocks mark studies deleted, in file order.

A file that turns out malformed or truncated part-way is not rolled back: every complete
record before the fault is loaded (the batch in hand is committed first), and the error
says how many and how to finish (re-run with the repaired or re-downloaded file; what is
already loaded is skipped as unchanged). Rolling back would throw away millions of good
records of a baseline file for one bad byte at its end.

The job that loads a list of files, one ``ingest_run`` each, is
``substantiate.jobs.ingest_medline``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine

from evidence.db import session_scope
from evidence.errors import InputError, ParseError
from ingest.load import LoadStats, store_raw, upsert_studies
from ingest.pubmed_xml import PubmedItem, iter_pubmed

BATCH = 2000


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_file(
    engine: Engine,
    path: Path,
    *,
    sha256: str | None = None,
    actor: str = "system",
    batch_size: int = BATCH,
) -> Iterator[tuple[int, LoadStats]]:
    """Load one PubMed XML file (plain or gzip) into ``study``, batch by batch.

    The file's provenance (name, size, sha256) is stored as a ``raw_record`` first (without
    its body); every study loaded from it points at that record.

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
        After each batch is committed: how many records (and deletions) it held, and
        what loading them did. Nothing is loaded unless the iterator is consumed.

    Raises
    ------
    InputError
        The file is missing.
    ParseError
        The file is malformed or truncated. Every complete record before the fault is
        loaded first: the records parsed so far are committed (and yielded) as a last
        batch, then the error is raised.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    digest = sha256 or file_sha256(path)
    with session_scope(engine) as session:
        raw = store_raw(session, body=b"", source="medline_file", utility="file",
                        url=path.resolve().as_uri(), sha256=digest,
                        params={"name": path.name, "bytes": path.stat().st_size},
                        keep_body=False, actor=actor)
        raw_id = raw.id
    batch: list[PubmedItem] = []
    try:
        for item in iter_pubmed(path):
            batch.append(item)
            if len(batch) >= batch_size:
                yield len(batch), _flush(engine, batch, raw_id, actor)
                batch = []
    except ParseError:
        if batch:
            yield len(batch), _flush(engine, batch, raw_id, actor)
        raise
    if batch:
        yield len(batch), _flush(engine, batch, raw_id, actor)


def _flush(engine: Engine, batch: list[PubmedItem], raw_id: int | None, actor: str) -> LoadStats:
    with session_scope(engine) as session:
        stats = upsert_studies(session, batch, raw_record_id=raw_id, actor=actor)
    stats.pmids = []  # a bulk file's PMIDs would only fill memory
    return stats
