"""Surveillance over the network: re-fetch the linked PubMed records, find new evidence.

One run has two phases, so that an E-utilities outage part-way leaves nothing
half-applied:

1. **Fetch** (no writes). The PubMed records linked to claims are re-fetched in batches
   of up to 200 through the rate-limited client, the studies behind decided claims first,
   and compared with the stored versions by content hash; the changed ones are fetched
   once more, together, so that the response stored as their new version holds only them
   (``ceil(studies / 200) + ceil(changed / 200)`` requests). With ``since``, the linked
   PMIDs are posted to one history session (``epost``, 10,000 per request) and one
   ``esearch`` over the posted sets with E-utilities' date filter (``datetype=mdat``,
   ``mindate``, ``maxdate``) keeps only the records modified since then; only those are
   fetched (``ceil(studies / 10,000) + 1 + ceil(modified / 200)``). Then, for each decided
   canonical claim, its PubMed discovery query runs again restricted to records added
   (``datetype=edat``) since the last surveillance run, and the hits not yet stored are
   fetched.
2. **Apply** (one transaction). The responses that carried a changed or new record are
   stored (a new raw version of each changed record), with the searches that found
   something and the posts, the studies updated, claims re-opened, new evidence linked
   and expired verdicts re-opened (``evidence.surveillance``).

A failure in phase 1 writes nothing; the next run starts again from the stored state.
Deletions are seen only by a full run: a record PubMed no longer returns is never in a
date-filtered result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from evidence import crud, surveillance
from evidence.config import get_settings
from evidence.db import read_session, session_scope
from evidence.match import build_pubmed_query
from evidence.models import (
    DECIDED_STATUSES,
    CanonicalClaim,
    Claim,
    EvidenceLink,
    IngestRun,
    Study,
    utcnow,
)
from evidence.surveillance import NewLink, Reopening, StudyChange
from evidence.vocabulary import STUDY_CHANGES
from ingest.entrez import MAX_EFETCH_BATCH, EntrezClient, RawResponse
from ingest.load import mark_deleted, record_hash, study_values, upsert_studies
from ingest.pubmed import save_response
from ingest.pubmed_xml import PubmedRecord, parse_pubmed_bytes

KIND = "surveil"
#: PMIDs posted to the history server per ``epost`` request.
EPOST_BATCH = 10_000
#: Discovery hits kept per decided canonical claim and run.
DISCOVER_K = 20
_COMPARED = ("is_retracted", "has_expression_of_concern", "has_erratum",
             "comments_corrections", "title", "abstract", "deleted", "record_sha256")


def eutils_date(day: date) -> str:
    """A date as the E-utilities date filters take it (``YYYY/MM/DD``)."""
    return day.strftime("%Y/%m/%d")


@dataclass
class SurveilReport:
    """What one surveillance run found and did."""

    since: str | None = None
    discovery_since: str | None = None
    studies_checked: int = 0
    records_fetched: int = 0
    records_changed: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    changes: list[StudyChange] = field(default_factory=list)
    reopened: list[Reopening] = field(default_factory=list)
    expired: list[Reopening] = field(default_factory=list)
    new_evidence: list[NewLink] = field(default_factory=list)
    claims_refreshed: int = 0
    discovery_queries: int = 0
    studies_added: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[StudyChange]:
        """Linked studies newly retracted or under an expression of concern."""
        return [c for c in self.changes if c.alert]

    @property
    def needs_attention(self) -> bool:
        """Whether a person should look: an alert, a re-opened claim, new evidence."""
        return bool(self.alerts or self.reopened or self.expired or self.new_evidence)

    @property
    def exit_code(self) -> int:
        """0 when nothing needs attention, 3 when something does."""
        return 3 if self.needs_attention else 0

    def counts(self) -> dict[str, int]:
        """The headline figures (also charted on the dashboard)."""
        by: dict[str, int] = {}
        for c in self.changes:
            for code in c.changes:
                by[code] = by.get(code, 0) + 1
        return {"studies_checked": self.studies_checked,
                "records_fetched": self.records_fetched,
                "records_changed": self.records_changed,
                "studies_changed": len(self.changes),
                **{code: by.get(code, 0) for code in STUDY_CHANGES},
                "claims_reopened": len(self.reopened),
                "claims_expired": len(self.expired),
                "new_evidence_links": len(self.new_evidence),
                "claims_refreshed": self.claims_refreshed,
                "discovery_queries": self.discovery_queries,
                "studies_added": self.studies_added,
                "requests": sum(self.requests.values())}

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (``--json``; the run's stats)."""
        return {"since": self.since, "discovery_since": self.discovery_since,
                "needs_attention": self.needs_attention, "exit_code": self.exit_code,
                "counts": self.counts(), "requests": dict(self.requests),
                "changes": [c.as_dict() for c in self.changes],
                "reopened": [r.as_dict() for r in self.reopened],
                "expired": [r.as_dict() for r in self.expired],
                "new_evidence": [n.as_dict() for n in self.new_evidence],
                "problems": list(self.problems)}


@dataclass
class _Fetched:
    """Phase 1's findings, applied in phase 2."""

    responses: list[RawResponse] = field(default_factory=list)  # searches, posts
    changed: list[tuple[RawResponse, list[PubmedRecord]]] = field(default_factory=list)
    changes: dict[str, tuple[tuple[str, ...], tuple[dict[str, str | None], ...]]] = field(
        default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    added: list[tuple[RawResponse, list[PubmedRecord]]] = field(default_factory=list)
    found: dict[int, list[str]] = field(default_factory=dict)


def linked_count(session: Session) -> int:
    """How many studies are linked to a claim (what a run re-checks)."""
    return int(session.exec(select(func.count(func.distinct(EvidenceLink.study_id)))).one())


def linked_studies(session: Session) -> list[tuple[str, int, dict[str, Any]]]:
    """Every study linked to a claim: (PMID, id, stored values), decided claims' first."""
    decided = set(session.exec(
        select(EvidenceLink.study_id).join(Claim, col(Claim.id) == col(EvidenceLink.claim_id))
        .where(col(Claim.status).in_(DECIDED_STATUSES))).all())
    columns = [getattr(Study, k) for k in _COMPARED]
    rows = session.exec(
        select(Study.pmid, Study.id, *columns)
        .where(col(Study.id).in_(select(EvidenceLink.study_id)))
    ).all()
    out = [(pmid, int(sid or 0), dict(zip(_COMPARED, values, strict=True)))
           for pmid, sid, *values in rows]
    out.sort(key=lambda r: (r[1] not in decided, int(r[0]) if r[0].isdigit() else 0, r[0]))
    return out


def last_run_day(session: Session) -> date | None:
    """The day the last completed surveillance run started, or None."""
    started = session.exec(
        select(IngestRun.started_at).where(IngestRun.kind == KIND,
                                           col(IngestRun.status).in_(("ok", "partial")))
        .order_by(col(IngestRun.started_at).desc())
    ).first()
    return started.date() if started is not None else None


def _count(report: SurveilReport, utility: str, n: int = 1) -> None:
    report.requests[utility] = report.requests.get(utility, 0) + n


def _keep_responses(client: EntrezClient, fetched: _Fetched, *, keep: bool = True) -> None:
    """Take the client's received responses now (memory stays flat): searches and posts
    are kept for storing with the run when ``keep``; efetch bodies are held by the caller."""
    for raw in client.drain_responses():
        if keep and raw.utility != "efetch":
            fetched.responses.append(raw)


def _compare_batch(raw: RawResponse, asked: Sequence[str],
                   stored: dict[str, dict[str, Any]], fetched: _Fetched,
                   report: SurveilReport, *, keep: bool) -> list[str]:
    """Compare one efetch response with the stored versions; the changed PMIDs.

    ``asked`` (a full re-fetch's batch) also finds the records PubMed no longer returns.
    With ``keep`` the response and its changed records are kept for storing.
    """
    items = parse_pubmed_bytes(raw.body)  # the whole body, or ParseError
    records = [i for i in items if isinstance(i, PubmedRecord)]
    report.records_fetched += len(records)
    changed: list[PubmedRecord] = []
    seen: set[str] = set()
    for rec in records:
        seen.add(rec.pmid)
        before = stored.get(rec.pmid)
        if before is None:
            continue
        digest = record_hash(rec)
        if digest == before["record_sha256"] and not before["deleted"]:
            continue
        changed.append(rec)
        if keep:
            codes, notices = surveillance.compare(
                before, study_values(rec, raw_record_id=None, sha256=digest))
            if codes:
                fetched.changes[rec.pmid] = (codes, notices)
    if changed and keep:
        fetched.changed.append((raw, changed))
    for pmid in asked:
        if pmid not in seen and not stored[pmid]["deleted"]:
            fetched.deleted.append(pmid)
            fetched.changes[pmid] = surveillance.compare(stored[pmid], None)
    return [r.pmid for r in changed]


def _refetch(client: EntrezClient, pmids: list[str], stored: dict[str, dict[str, Any]],
             fetched: _Fetched, report: SurveilReport, *, since: date | None, today: date,
             batch_size: int, on_batch: Callable[[int], None] | None) -> None:
    if since is None:
        # Compare every linked record; then fetch the changed ones again, together, so the
        # response stored as their new version holds them alone (not 200 unchanged
        # neighbours each): ceil(changed / batch_size) more requests.
        changed: list[str] = []
        for start in range(0, len(pmids), batch_size):
            batch = pmids[start:start + batch_size]
            raw = next(iter(client.efetch_pubmed(batch, batch_size=batch_size)))
            _keep_responses(client, fetched, keep=False)
            _count(report, "efetch")
            changed += _compare_batch(raw, batch, stored, fetched, report, keep=False)
            if on_batch:
                on_batch(len(batch))
        report.records_changed = len(changed)
        for raw in client.efetch_pubmed(changed, batch_size=batch_size):
            _keep_responses(client, fetched, keep=False)
            _count(report, "efetch")
            _compare_batch(raw, (), stored, fetched, report, keep=True)
        return
    # One history session for every posted chunk, one date-filtered search over them all
    # ("#1 OR #2 ..."), then the modified records page by page.
    webenv: str | None = None
    keys: list[str] = []
    for start in range(0, len(pmids), EPOST_BATCH):
        chunk = pmids[start:start + EPOST_BATCH]
        posted = client.epost(chunk, webenv=webenv)
        _count(report, "epost")
        webenv = posted.webenv
        keys.append(posted.query_key)
        if on_batch:
            on_batch(len(chunk))
    if webenv is None:
        return
    search = client.esearch(" OR ".join(f"#{k}" for k in keys), WebEnv=webenv,
                            usehistory=True, retmax=0, datetype="mdat",
                            mindate=eutils_date(since), maxdate=eutils_date(today))
    _count(report, "esearch")
    _keep_responses(client, fetched)
    if search.count and search.webenv and search.query_key:
        for raw in client.efetch_pubmed_history(search.webenv, search.query_key,
                                                 search.count, batch_size=batch_size):
            _keep_responses(client, fetched, keep=False)
            _count(report, "efetch")
            report.records_changed += len(
                _compare_batch(raw, (), stored, fetched, report, keep=True))


def _discover(session: Session, client: EntrezClient, fetched: _Fetched,
              report: SurveilReport, *, since: date | None, today: date, per_claim: int,
              batch_size: int) -> None:
    groups = surveillance.decided_groups(session)
    if not groups:
        return
    statements = {cc.id: cc for cc in session.exec(select(CanonicalClaim).where(
        col(CanonicalClaim.id).in_(list(groups)))).all()}
    hits: set[str] = set()
    earliest: date | None = None
    for canonical_id in sorted(groups):
        cc = statements.get(canonical_id)
        if cc is None:
            continue
        start = since or groups[canonical_id].astimezone(UTC).date()
        earliest = start if earliest is None or start < earliest else earliest
        query = build_pubmed_query(cc.statement, category=cc.category)
        result = client.esearch(query, retmax=per_claim, datetype="edat",
                                mindate=eutils_date(start), maxdate=eutils_date(today))
        _count(report, "esearch")
        # A search that found nothing is counted, not stored (500 a day would be noise).
        _keep_responses(client, fetched, keep=bool(result.ids))
        report.discovery_queries += 1
        if result.ids:
            fetched.found[canonical_id] = list(result.ids)
            hits.update(result.ids)
    report.discovery_since = earliest.isoformat() if earliest else None
    if not hits:
        return
    have: set[str] = set()
    for chunk in crud.chunked(sorted(hits), 500):
        have.update(session.exec(select(Study.pmid).where(col(Study.pmid).in_(chunk))).all())
    todo = sorted(hits - have, key=lambda p: (len(p), p))
    for raw in client.efetch_pubmed(todo, batch_size=batch_size):
        _keep_responses(client, fetched, keep=False)
        _count(report, "efetch")
        items = parse_pubmed_bytes(raw.body)
        records = [i for i in items if isinstance(i, PubmedRecord)]
        report.records_fetched += len(records)
        if records:
            fetched.added.append((raw, records))


def surveil(
    engine: Engine,
    client: EntrezClient,
    *,
    since: date | None = None,
    discover: bool = True,
    actor: str = crud.SYSTEM,
    now: datetime | None = None,
    months: int | None = None,
    batch_size: int = MAX_EFETCH_BATCH,
    per_claim: int = DISCOVER_K,
    on_batch: Callable[[int], None] | None = None,
    report: SurveilReport | None = None,
) -> SurveilReport:
    """Run surveillance once: fetch everything first, then apply it in one transaction.

    Parameters
    ----------
    engine, client
        Database and E-utilities client.
    since
        Re-fetch only records modified on or after this day (E-utilities date filter);
        new-evidence discovery then also looks from this day. ``None``: every linked
        record, and discovery from the last run (or each claim's decision).
    discover
        Also look for new systematic reviews, meta-analyses and randomised trials.
    actor
        Recorded on audit events.
    now
        The run's clock (review-by dates are compared with it); default: now.
    months
        Verdict review interval; default ``VERDICT_REVIEW_MONTHS``.
    batch_size
        PMIDs per efetch request (1-200).
    per_claim
        Discovery hits kept per decided canonical claim.
    on_batch
        Progress: called with the number of PMIDs each re-fetch batch settled.
    report
        Filled in as the run goes (a caller can read it after a failure).

    Returns
    -------
    SurveilReport

    Raises
    ------
    NCBIUnavailable, NCBIError, ParseError
        The E-utilities failed during phase 1; nothing was written.
    """
    report = report if report is not None else SurveilReport()
    now = now or utcnow()
    today = now.astimezone(UTC).date()
    months = months or get_settings().verdict_review_months
    report.since = since.isoformat() if since else None
    fetched = _Fetched()
    with read_session(engine) as session:
        linked = linked_studies(session)
        last = last_run_day(session)
    stored = {pmid: values for pmid, _, values in linked}
    ids = {pmid: sid for pmid, sid, _ in linked}
    report.studies_checked = len(linked)
    _refetch(client, [p for p, _, _ in linked], stored, fetched, report, since=since,
             today=today, batch_size=batch_size, on_batch=on_batch)
    if discover:
        with read_session(engine) as session:
            _discover(session, client, fetched, report, since=since or last, today=today,
                      per_claim=per_claim, batch_size=batch_size)
    _keep_responses(client, fetched)

    with session_scope(engine) as session:
        for raw in fetched.responses:
            save_response(session, raw, actor=actor)
        for raw, records in fetched.changed:
            rec = save_response(session, raw, actor=actor)
            upsert_studies(session, records, raw_record_id=rec.id, actor=actor)
        if fetched.deleted:
            mark_deleted(session, fetched.deleted, actor=actor)
        for raw, records in fetched.added:
            rec = save_response(session, raw, actor=actor)
            report.studies_added += upsert_studies(session, records, raw_record_id=rec.id,
                                                   actor=actor).inserted
        report.changes = [StudyChange(pmid, ids[pmid], codes, notices)
                          for pmid, (codes, notices) in sorted(
                              fetched.changes.items(), key=lambda kv: ids[kv[0]])]
        reopened, refreshed = surveillance.reopen_for_changes(
            session, report.changes, actor=actor, now=now)
        report.reopened = reopened
        report.claims_refreshed = len(refreshed)
        if fetched.found:
            report.new_evidence = surveillance.link_new_evidence(session, fetched.found,
                                                                 actor=actor)
        report.expired = surveillance.expire_verdicts(session, months=months, actor=actor,
                                                      now=now)
    return report


__all__ = ["EPOST_BATCH", "KIND", "SurveilReport", "eutils_date", "surveil"]
