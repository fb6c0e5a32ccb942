"""Bulk loading of PubMed baseline / update files (``pubmed25n0001.xml.gz``), offline.

Streaming: records are parsed with flat memory and upserted in batches, each batch in its
own transaction, so a file of any size loads in bounded memory and an interruption loses at
most the batch in flight. Re-loading a file is a no-op (unchanged records are skipped by
content hash); ``DeleteCitation`` blocks mark studies deleted, in file order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from evidence import crud
from evidence.db import session_scope
from evidence.errors import InputError
from ingest.load import LoadStats, store_raw, upsert_studies
from ingest.pubmed_xml import PubmedItem, iter_pubmed

BATCH = 2000


@dataclass
class MedlineSummary:
    """What loading bulk files did, per file and in total."""

    files: list[dict[str, object]] = field(default_factory=list)
    total: LoadStats = field(default_factory=LoadStats)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_medline_files(
    engine: Engine,
    paths: Sequence[Path],
    *,
    actor: str = "system",
    batch_size: int = BATCH,
    on_records: Callable[[int], None] | None = None,
) -> MedlineSummary:
    """Load PubMed XML files (plain or gzip) into ``study``.

    Parameters
    ----------
    engine
        Database engine.
    paths
        Baseline or update files, applied in the given order.
    actor
        Recorded on audit events.
    batch_size
        Records per transaction.
    on_records
        Called with the number of records just loaded (progress bars).

    Returns
    -------
    MedlineSummary

    Raises
    ------
    InputError
        A file is missing.
    ParseError
        A file is malformed or truncated; batches before the fault stay loaded, and the
        error names the file.
    """
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    summary = MedlineSummary()
    for path in paths:
        digest = _file_sha256(path)
        with session_scope(engine) as session:
            run = crud.start_run(session, kind="ingest_medline", actor=actor,
                                 params={"file": str(path), "sha256": digest})
            raw = store_raw(session, body=b"", source="medline_file", utility="file",
                            url=path.resolve().as_uri(), sha256=digest,
                            params={"name": path.name, "bytes": path.stat().st_size},
                            keep_body=False)
            raw_id, run_id = raw.id, run.id
        stats = LoadStats()
        batch: list[PubmedItem] = []
        try:
            for item in iter_pubmed(path):
                batch.append(item)
                if len(batch) >= batch_size:
                    stats.add(_flush(engine, batch, raw_id, actor, on_records))
                    batch = []
            stats.add(_flush(engine, batch, raw_id, actor, on_records))
        except Exception as e:
            with session_scope(engine) as session:
                from evidence.models import IngestRun

                run_row = session.get(IngestRun, run_id)
                assert run_row is not None
                crud.finish_run(session, run=run_row, stats=stats.as_dict(), status="error",
                                error=f"{path.name}: {e}")
            raise
        with session_scope(engine) as session:
            from evidence.models import IngestRun

            run_row = session.get(IngestRun, run_id)
            assert run_row is not None
            crud.finish_run(session, run=run_row, stats=stats.as_dict())
        summary.files.append({"file": str(path), "sha256": digest, **stats.as_dict()})
        summary.total.add(stats)
    summary.total.pmids = []
    return summary


def _flush(engine: Engine, batch: list[PubmedItem], raw_id: int | None, actor: str,
           on_records: Callable[[int], None] | None) -> LoadStats:
    if not batch:
        return LoadStats()
    with session_scope(engine) as session:
        stats = upsert_studies(session, batch, raw_record_id=raw_id, actor=actor)
    stats.pmids = []
    if on_records:
        on_records(len(batch))
    return stats
