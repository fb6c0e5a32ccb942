"""Loading parsed PubMed records and raw responses into the database.

Parsing (``ingest.pubmed_xml``) is pure; this module is the one place that turns records
into ``study`` rows. Upserts are batched and set-based: one query finds which PMIDs exist
and with which content hash, new rows go in with one multi-row INSERT, and only records
whose content changed are updated — each such update audited with before/after.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from evidence import audit
from evidence.grading import classify_design, flag_codes, study_flags
from evidence.models import RawRecord, Study, utcnow
from ingest.pubmed_xml import DeletedCitations, PubmedItem, PubmedRecord

# Columns a reader of the audit trail needs to see change; the rest follow the record hash.
_AUDITED = ("title", "abstract", "journal", "pub_year", "doi", "pmcid", "publication_types",
            "flags", "is_retracted", "has_expression_of_concern", "has_erratum", "design",
            "evidence_level", "deleted", "record_sha256", "raw_record_id", "pmid_version")
CHUNK = 500


@dataclass
class LoadStats:
    """Counts of what an upsert did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    pmids: list[str] = field(default_factory=list)

    def add(self, other: LoadStats) -> None:
        """Accumulate another batch's counts."""
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.pmids.extend(other.pmids)

    def as_dict(self) -> dict[str, int]:
        """Counts only (JSON-safe)."""
        return {"inserted": self.inserted, "updated": self.updated,
                "unchanged": self.unchanged, "deleted": self.deleted}


def record_hash(record: PubmedRecord) -> str:
    """sha256 of a record's parsed content (stable across re-downloads of the same record).

    The frozen dataclasses' ``repr`` spells out every field in declaration order, so it is
    a complete, deterministic serialisation — and several times cheaper than JSON.
    """
    return hashlib.sha256(repr(record).encode("utf-8", "surrogatepass")).hexdigest()


def _authors(record: PubmedRecord) -> list[dict[str, Any]]:
    return [{"last_name": a.last_name, "fore_name": a.fore_name, "initials": a.initials,
             "suffix": a.suffix, "collective_name": a.collective_name, "orcid": a.orcid,
             "affiliations": list(a.affiliations)} for a in record.authors]


def _mesh(record: PubmedRecord) -> list[dict[str, Any]]:
    return [{"descriptor": m.descriptor, "descriptor_ui": m.descriptor_ui, "major": m.major,
             "qualifiers": [{"name": q.name, "ui": q.ui, "major": q.major}
                            for q in m.qualifiers]} for m in record.mesh]


def study_values(
    record: PubmedRecord, *, raw_record_id: int | None, sha256: str | None = None
) -> dict[str, Any]:
    """The ``study`` column values for one parsed record (design classified here)."""
    mesh_names = [m.descriptor for m in record.mesh]
    design = classify_design(record.publication_types, mesh_names, title=record.title,
                             abstract=record.abstract or "")
    flags = [{"code": f.code, "reason": f.reason} for f in record.flags()]
    codes = {f["code"] for f in flags}
    now = utcnow()
    return {
        "pmid": record.pmid,
        "pmid_version": int(record.version) if record.version and record.version.isdigit()
        else 1,
        "status": record.status,
        "is_book": record.is_book,
        "title": record.title or "",
        "abstract": record.abstract or "",
        "abstract_sections": [{"label": a.label, "nlm_category": a.nlm_category,
                               "text": a.text} for a in record.abstract_sections],
        "journal": (record.journal or record.book_title or None),
        "iso_abbreviation": record.iso_abbreviation,
        "volume": record.volume,
        "issue": record.issue,
        "pages": record.pages,
        "pub_year": record.pub_year,
        "pub_date": record.pub_date,
        "authors": _authors(record),
        "languages": list(record.languages),
        "publication_types": list(record.publication_types),
        "mesh": _mesh(record),
        "keywords": [k.text for k in record.keywords],
        "doi": record.doi,
        "pmcid": record.pmcid,
        "comments_corrections": [{"ref_type": c.ref_type, "pmid": c.pmid,
                                  "ref_source": c.ref_source}
                                 for c in record.comments_corrections],
        "flags": flags,
        "is_retracted": "retracted" in codes,
        "has_expression_of_concern": "expression_of_concern" in codes,
        "has_erratum": bool({"erratum", "corrected_and_republished"} & codes),
        "design": design.design,
        "evidence_level": str(design.level),
        "design_rank": design.rank,
        "design_reasons": list(design.reasons),
        "deleted": False,
        "record_sha256": sha256 or record_hash(record),
        "raw_record_id": raw_record_id,
        "updated_at": now,
    }


def store_raw(
    session: Session,
    *,
    body: bytes,
    source: str = "eutils",
    utility: str = "",
    url: str = "",
    method: str = "GET",
    params: dict[str, Any] | None = None,
    http_status: int | None = None,
    retrieved_at: datetime | None = None,
    sha256: str | None = None,
    keep_body: bool = True,
    actor: str = "system",
) -> RawRecord:
    """Store one raw response exactly (gzip-compressed) with its provenance.

    ``keep_body=False`` records a bulk file by sha256, size and path only (the file itself is
    the provenance; copying a baseline file into the database would double its size).
    ``actor`` (the user running the job) is recorded on the audit event.
    """
    digest = sha256 or hashlib.sha256(body).hexdigest()
    raw = RawRecord(
        source=source, utility=utility, url=url, method=method, params=params or {},
        http_status=http_status, sha256=digest, size=len(body),
        compression="gzip" if keep_body else "none",
        body=gzip.compress(body, mtime=0) if keep_body else b"",
        retrieved_at=retrieved_at or utcnow(),
    )
    session.add(raw)
    session.flush()
    audit.record(session, actor=actor, action="raw_record.store", entity="raw_record",
                 entity_id=raw.id, after=audit.snapshot(raw))
    return raw


def raw_body(raw: RawRecord) -> bytes:
    """The exact bytes of a stored raw response."""
    return gzip.decompress(raw.body) if raw.compression == "gzip" else raw.body


def upsert_studies(
    session: Session,
    items: Iterable[PubmedItem],
    *,
    raw_record_id: int | None,
    actor: str = "system",
) -> LoadStats:
    """Insert new studies, update changed ones, skip unchanged ones, apply deletions.

    Parameters
    ----------
    session
        The caller's session; nothing is committed here.
    items
        Parsed records and ``DeletedCitations`` blocks, in file order.
    raw_record_id
        The raw response (or bulk file) the records came from.
    actor
        Recorded on audit events.

    Returns
    -------
    LoadStats
    """
    stats = LoadStats()
    records: list[PubmedRecord] = []
    for item in items:
        if isinstance(item, DeletedCitations):
            # Deletions apply in order: flush the records seen so far first.
            stats.add(_upsert_batch(session, records, raw_record_id, actor))
            records = []
            stats.deleted += mark_deleted(session, item.pmids, actor=actor)
        else:
            records.append(item)
            if len(records) >= CHUNK:
                stats.add(_upsert_batch(session, records, raw_record_id, actor))
                records = []
    stats.add(_upsert_batch(session, records, raw_record_id, actor))
    return stats


def _existing(session: Session, pmids: Sequence[str]) -> dict[str, tuple[int, str | None, bool]]:
    found: dict[str, tuple[int, str | None, bool]] = {}
    for chunk in _chunks(list(pmids), CHUNK):
        for sid, pmid, sha, deleted in session.exec(
            select(Study.id, Study.pmid, Study.record_sha256, Study.deleted)
            .where(col(Study.pmid).in_(chunk))
        ).all():
            if sid is not None:
                found[pmid] = (sid, sha, deleted)
    return found


def _upsert_batch(session: Session, records: Sequence[PubmedRecord],
                  raw_record_id: int | None, actor: str) -> LoadStats:
    if not records:
        return LoadStats()
    # The last occurrence of a PMID in a batch wins (update files may repeat a record).
    latest: dict[str, PubmedRecord] = {r.pmid: r for r in records}
    existing = _existing(session, list(latest))
    rows: list[dict[str, Any]] = []
    unchanged = 0
    for pmid, rec in latest.items():
        digest = record_hash(rec)
        found = existing.get(pmid)
        if found is not None and found[1] == digest and not found[2]:
            unchanged += 1  # same content: no classification, no write
            continue
        rows.append(study_values(rec, raw_record_id=raw_record_id, sha256=digest))
    stats = write_studies(session, rows, actor=actor, existing=existing)
    stats.unchanged += unchanged
    stats.pmids.extend(latest)
    return stats


def write_studies(
    session: Session,
    rows: Sequence[dict[str, Any]],
    *,
    actor: str = "system",
    existing: dict[str, tuple[int, str | None, bool]] | None = None,
) -> LoadStats:
    """Write prepared ``study_values`` rows: insert new PMIDs, update changed ones.

    New rows go in with one executemany; a changed row is updated and audited with the
    fields a reader of the trail needs before and after; an unchanged one is skipped.
    """
    stats = LoadStats()
    if existing is None:
        existing = _existing(session, [r["pmid"] for r in rows])
    new_rows: list[dict[str, Any]] = []
    for values in rows:
        pmid = values["pmid"]
        found = existing.get(pmid)
        if found is None:
            new_rows.append({**values, "created_at": values["updated_at"], "version": 1})
            continue
        sid, sha, deleted = found
        if sha == values["record_sha256"] and not deleted:
            stats.unchanged += 1
            continue
        study = session.get(Study, sid)
        assert study is not None
        before = {k: audit._jsonable(getattr(study, k)) for k in _AUDITED}
        session.execute(
            update(Study).where(col(Study.id) == sid)
            .values(**values, version=study.version + 1)
        )
        session.refresh(study)
        after = {k: audit._jsonable(getattr(study, k)) for k in _AUDITED}
        audit.record(session, actor=actor, action="study.update", entity="study",
                     entity_id=pmid, before=before, after=after)
        stats.updated += 1
    if new_rows:
        # Core executemany (not the ORM bulk path): one prepared statement, many rows.
        session.execute(insert(Study.__table__), new_rows)  # type: ignore[attr-defined]
        audit.record(session, actor=actor, action="study.insert", entity="study",
                     entity_id=f"{new_rows[0]['pmid']}..{new_rows[-1]['pmid']}",
                     after={"pmids": [r["pmid"] for r in new_rows],
                            "raw_record_id": new_rows[0]["raw_record_id"]})
        stats.inserted += len(new_rows)
    return stats


def mark_deleted(session: Session, pmids: Sequence[str], *, actor: str) -> int:
    """Mark studies deleted by a ``DeleteCitation`` (rows stay for the audit trail)."""
    n = 0
    for chunk in _chunks(list(pmids), CHUNK):
        rows = session.exec(
            select(Study.id, Study.pmid, Study.flags)
            .where(col(Study.pmid).in_(chunk), col(Study.deleted).is_(False))
        ).all()
        if not rows:
            continue
        hit = [pmid for _, pmid, _ in rows]
        deleted = {"code": "deleted",
                   "reason": study_flags(publication_types=(), deleted=True)[0].reason}
        for sid, _, flags in rows:
            kept = [f for f in flags or [] if f.get("code") != "deleted"]
            codes = flag_codes([*kept, deleted])
            by_code = {f["code"]: f for f in [*kept, deleted]}
            session.execute(
                update(Study).where(col(Study.id) == sid)
                .values(deleted=True, flags=[by_code[c] for c in codes], updated_at=utcnow(),
                        version=Study.version + 1)
            )
        audit.record(session, actor=actor, action="study.delete", entity="study",
                     entity_id=f"{hit[0]}..{hit[-1]}", before={"deleted": False},
                     after={"deleted": True, "pmids": list(hit)})
        n += len(hit)
    return n


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
