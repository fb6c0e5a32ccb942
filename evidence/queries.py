"""Reads that return pandas DataFrames, shared by the CLI, the app, exports and notebooks.

Every function takes a ``Session`` (or an engine via ``session``) and returns a DataFrame
with the documented columns, in a stable order, empty (with the columns) when there is
nothing to show.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import String, and_, case, cast, func, literal, or_
from sqlmodel import Session, col, select

from evidence import review, surveillance
from evidence.config import get_settings
from evidence.grading import CertaintySuggestion
from evidence.models import (
    CLAIM_STATUSES,
    DECIDED_STATUSES,
    AppUser,
    Article,
    Assessment,
    AuditEvent,
    CanonicalClaim,
    Citation,
    Claim,
    ClaimSource,
    EvidenceLink,
    IngestRun,
    Study,
    Verdict,
)
from evidence.vocabulary import STUDY_CHANGES

ARTICLE_COLUMNS = ["article_id", "source", "title", "sha256", "content_type", "revision",
                   "previous_id", "is_current", "fetched_at", "n_claims", "n_citations"]
CLAIM_COLUMNS = ["claim_id", "article_id", "source", "text", "start", "end", "category",
                 "checkworthiness", "canonical_id", "status", "flags", "cues", "canonical_score",
                 "suggested_certainty", "version", "suggestion_basis"]
CITATION_COLUMNS = ["citation_id", "article_id", "raw", "kind", "identifier", "status",
                    "status_reason", "pmid", "start", "end", "flags"]
STUDY_COLUMNS = ["pmid", "title", "journal", "year", "doi", "pmcid", "publication_types",
                 "mesh", "design", "evidence_level", "retracted", "expression_of_concern",
                 "erratum", "deleted", "raw_sha256", "study_id", "flags"]
SOURCE_COLUMNS = ["source_id", "claim_id", "kind", "url", "title", "note", "created_by",
                  "created_at", "version"]
SCORECARD_COLUMNS = ["article_id", "title", "source", "claims", "with_fitting_citation",
                     "only_discovered", "no_fitting_evidence", "needs_regulatory_source",
                     "scholarly_citations", "citations_addressing_no_claim"]
AUDIT_COLUMNS = ["id", "occurred_at", "actor", "action", "entity", "entity_id", "before",
                 "after", "prev_hash", "hash"]


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def articles(session: Session, *, current_only: bool = False) -> pd.DataFrame:
    """Articles with their claim and citation counts.

    Returns
    -------
    DataFrame
        Columns ``ARTICLE_COLUMNS``: one row per stored article revision.
    """
    n_claims: dict[int | None, int] = dict(session.exec(
        select(Claim.article_id, func.count()).group_by(col(Claim.article_id))).all())
    n_cites: dict[int | None, int] = dict(session.exec(
        select(Citation.article_id, func.count()).group_by(col(Citation.article_id))).all())
    stmt = select(Article).order_by(col(Article.id))
    if current_only:
        stmt = stmt.where(col(Article.is_current))
    rows = [
        {"article_id": a.id, "source": a.source, "title": a.title, "sha256": a.sha256,
         "content_type": a.content_type, "revision": a.revision, "previous_id": a.previous_id,
         "is_current": a.is_current, "fetched_at": a.fetched_at,
         "n_claims": n_claims.get(a.id, 0), "n_citations": n_cites.get(a.id, 0)}
        for a in session.exec(stmt).all()
    ]
    return _frame(rows, ARTICLE_COLUMNS)


def claims(
    session: Session,
    *,
    article_id: int | None = None,
    category: str | None = None,
    status: str | None = None,
    flag: str | None = None,
    current_only: bool = True,
) -> pd.DataFrame:
    """Claims with their article's source.

    Parameters
    ----------
    article_id, category, status
        Optional filters.
    flag
        Keep claims carrying this flag (e.g. ``no_fitting_citation``).
    current_only
        Only claims of each article's current revision.

    Returns
    -------
    DataFrame
        Columns ``CLAIM_COLUMNS``; ``flags`` and ``cues`` hold lists.
    """
    stmt = select(Claim, Article.source).join(Article, col(Claim.article_id) == col(Article.id))
    if article_id is not None:
        stmt = stmt.where(Claim.article_id == article_id)
    if category is not None:
        stmt = stmt.where(Claim.category == category)
    if status is not None:
        stmt = stmt.where(Claim.status == status)
    if current_only:
        stmt = stmt.where(col(Article.is_current))
    stmt = stmt.order_by(col(Claim.article_id), col(Claim.start))
    rows = []
    for c, source in session.exec(stmt).all():
        if flag is not None and flag not in (c.flags or []):
            continue
        rows.append({
            "claim_id": c.id, "article_id": c.article_id, "source": source, "text": c.text,
            "start": c.start, "end": c.end, "category": c.category,
            "checkworthiness": c.checkworthiness, "canonical_id": c.canonical_id,
            "status": c.status, "flags": list(c.flags or []), "cues": list(c.cues or []),
            "canonical_score": c.canonical_score, "suggested_certainty": c.suggested_certainty,
            "version": c.version, "suggestion_basis": c.suggestion_basis,
        })
    return _frame(rows, CLAIM_COLUMNS)


def citations(session: Session, *, article_id: int | None = None,
              kind: str | None = None) -> pd.DataFrame:
    """Citations with kind, normalised identifier, status and resolved PMID.

    Returns
    -------
    DataFrame
        Columns ``CITATION_COLUMNS``; ``flags`` is a list (``addresses_no_claim`` when a
        cited study fits no claim of its article).
    """
    stmt = select(Citation).order_by(col(Citation.article_id), col(Citation.id))
    if article_id is not None:
        stmt = stmt.where(Citation.article_id == article_id)
    if kind is not None:
        stmt = stmt.where(Citation.kind == kind)
    rows = [
        {"citation_id": c.id, "article_id": c.article_id, "raw": c.raw, "kind": c.kind,
         "identifier": c.identifier, "status": c.status, "status_reason": c.status_reason,
         "pmid": c.pmid, "start": c.start, "end": c.end, "flags": list(c.flags or [])}
        for c in session.exec(stmt).all()
    ]
    return _frame(rows, CITATION_COLUMNS)


def studies(session: Session, *, include_deleted: bool = False) -> pd.DataFrame:
    """Studies with bibliographic fields, design and correction flags.

    Returns
    -------
    DataFrame
        Columns ``STUDY_COLUMNS``; ``publication_types`` and ``mesh`` are lists of text
        (MeSH descriptors, major topics marked with ``*``); ``year`` is a nullable integer;
        ``raw_sha256`` is the sha256 of the raw response the row was parsed from.
    """
    from evidence.models import RawRecord

    stmt = (
        select(Study, RawRecord.sha256)
        .join(RawRecord, col(Study.raw_record_id) == col(RawRecord.id), isouter=True)
        .order_by(col(Study.pmid))
    )
    if not include_deleted:
        stmt = stmt.where(col(Study.deleted).is_(False))
    rows = []
    for s, raw_sha in session.exec(stmt).all():
        mesh = [m.get("descriptor", "") + ("*" if m.get("major") else "")
                for m in s.mesh or []]
        rows.append({
            "pmid": s.pmid, "title": s.title, "journal": s.journal, "year": s.pub_year,
            "doi": s.doi, "pmcid": s.pmcid,
            "publication_types": list(s.publication_types or []), "mesh": mesh,
            "design": s.design, "evidence_level": s.evidence_level,
            "retracted": s.is_retracted, "expression_of_concern": s.has_expression_of_concern,
            "erratum": s.has_erratum, "deleted": s.deleted, "raw_sha256": raw_sha,
            "study_id": s.id, "flags": [dict(f) for f in s.flags or []],
        })
    df = _frame(rows, STUDY_COLUMNS)
    df["year"] = df["year"].astype("Int64")
    return df


def audit_log(session: Session) -> pd.DataFrame:
    """Every audit event in chain order.

    Returns
    -------
    DataFrame
        Columns ``AUDIT_COLUMNS``; ``before`` / ``after`` are dicts (or ``None``).
    """
    rows = [
        {"id": e.id, "occurred_at": e.occurred_at, "actor": e.actor, "action": e.action,
         "entity": e.entity, "entity_id": e.entity_id, "before": e.before, "after": e.after,
         "prev_hash": e.prev_hash, "hash": e.hash}
        for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    ]
    return _frame(rows, AUDIT_COLUMNS)


def claim_counts(session: Session) -> dict[str, int]:
    """Number of claims per category (current article revisions)."""
    stmt = (
        select(Claim.category, func.count())
        .join(Article, col(Claim.article_id) == col(Article.id))
        .where(col(Article.is_current))
        .group_by(Claim.category)
        .order_by(Claim.category)
    )
    return {cat: int(n) for cat, n in session.exec(stmt).all()}


def citation_counts(session: Session) -> dict[str, dict[str, int]]:
    """Citations by kind, and by status within kind."""
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in session.exec(
        select(Citation.kind, Citation.status, func.count())
        .group_by(Citation.kind, Citation.status)
    ).all():
        out.setdefault(kind, {})[status] = int(n)
    return out


# =========================================================================== reviewer app
#
# The reads behind the reviewer app's screens. Paging, filtering and joins happen here, in
# SQL, so a screen only lays out what it is given. Reads that show reviews take the viewing
# user: under dual independent review they hide other people's verdicts and assessments
# until the viewer has submitted their own (see ``others_visible``).

QUEUE_COLUMNS = ["claim_id", "article_id", "article_title", "source", "text", "category",
                 "status", "stage", "flags", "checkworthiness", "priority", "n_links",
                 "n_reviews", "reopen_codes", "version"]
STUDY_LINK_COLUMNS = ["link_id", "study_id", "pmid", "title", "journal", "year", "doi",
                      "pmcid", "design", "evidence_level", "design_rank", "design_reasons",
                      "retracted", "expression_of_concern", "erratum", "origin",
                      "also_found_by", "score", "rank", "indirect", "indirectness",
                      "explanation", "fits", "abstract", "created_by", "flags", "assessed"]
REVIEW_VERDICT_COLUMNS = ["verdict_id", "claim_id", "reviewer_id", "reviewer", "kind",
                          "substantiation", "certainty", "domains", "suggested_certainty",
                          "rationale", "action", "version", "updated_at"]
REVIEW_ASSESSMENT_COLUMNS = ["assessment_id", "link_id", "study_id", "pmid", "reviewer_id",
                             "reviewer", "stance", "relevance", "note", "version",
                             "updated_at"]
SIBLING_COLUMNS = ["claim_id", "article_id", "article_title", "source", "text", "status"]
LINK_COLUMNS = ["link_id", "claim_id", "study_id", "pmid", "origin", "also_found_by", "score",
                "rank", "indirect", "fits", "indirectness", "explanation", "created_by",
                "created_at", "version"]
VERDICT_COLUMNS = ["claim_id", "reviewer", "kind", "substantiation", "certainty", "domains",
                   "suggested_certainty", "rationale", "action", "version", "updated_at",
                   "verdict_id", "canonical_claim_id", "suggestion_reasons", "created_at"]
ASSESSMENT_COLUMNS = ["assessment_id", "link_id", "claim_id", "pmid", "reviewer", "stance",
                      "relevance", "note", "version", "updated_at", "created_at"]
ADJUDICATION_COLUMNS = ["claim_id", "article_title", "text", "category", "status", "stage",
                        "n_reviews", "substantiations", "certainties", "version"]
USER_COLUMNS = ["user_id", "username", "display_name", "role", "active", "sso", "version"]
AGREEMENT_COLUMNS = ["reviewer_a", "reviewer_b", "claims", "agreed", "percent_agreement",
                     "kappa"]


def priority_expression() -> Any:
    """The SQL form of ``review.priority``: check-worthiness x (1 + flag weights).

    ``flags`` is a JSON list; its text form holds each flag as ``"name"`` on both SQLite
    and PostgreSQL, so a ``LIKE`` finds it without JSON functions the two do not share.
    """
    flags_text = cast(col(Claim.flags), String)
    weight: Any = literal(1.0)
    for flag, w in review.PRIORITY_FLAG_WEIGHTS.items():
        weight = weight + case((flags_text.like(f'%"{flag}"%'), w), else_=0.0)
    return col(Claim.checkworthiness) * weight


def _has_any_flag(flags: Sequence[str]) -> Any:
    flags_text = cast(col(Claim.flags), String)
    return or_(*(flags_text.like(f'%"{f}"%') for f in flags))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _queue_filters(
    *,
    article_id: int | None,
    category: str | None,
    status: str | None,
    flags: Sequence[str],
    search: str | None,
    unreviewed_by: int | None,
    current_only: bool,
) -> list[Any]:
    where: list[Any] = []
    if current_only:
        where.append(col(Article.is_current))
    if article_id is not None:
        where.append(col(Claim.article_id) == article_id)
    if category:
        where.append(col(Claim.category) == category)
    if status:
        where.append(col(Claim.status) == status)
    if flags:
        where.append(_has_any_flag(flags))
    if search and search.strip():
        pattern = f"%{_like_escape(search.strip())}%"
        where.append(or_(col(Claim.text).ilike(pattern, escape="\\"),
                         col(Article.title).ilike(pattern, escape="\\")))
    if unreviewed_by is not None:
        mine = select(Verdict.id).where(col(Verdict.claim_id) == col(Claim.id),
                                        col(Verdict.reviewer_id) == unreviewed_by,
                                        col(Verdict.kind) == "review")
        where.append(~mine.exists())
    return where


def _counts_by_claim(session: Session, column: Any, claim_col: Any, ids: list[int],
                     *extra: Any) -> dict[int, int]:
    if not ids:
        return {}
    out: dict[int, int] = {}
    for chunk in _chunks(ids):
        stmt = select(claim_col, func.count(column)).where(claim_col.in_(chunk), *extra)
        for cid, n in session.exec(stmt.group_by(claim_col)).all():
            out[int(cid)] = int(n)
    return out


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield list(ids[i:i + size])


def claim_queue(
    session: Session,
    *,
    article_id: int | None = None,
    category: str | None = None,
    status: str | None = None,
    flags: Sequence[str] = (),
    search: str | None = None,
    unreviewed_by: int | None = None,
    page: int = 1,
    page_size: int = 50,
    current_only: bool = True,
    required: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """One page of the review queue, highest priority first, and the number of matches.

    Parameters
    ----------
    article_id, category, status
        Optional filters (``status`` one of ``CLAIM_STATUSES``).
    flags
        Keep claims carrying any of these flags (e.g. ``retracted_evidence``).
    search
        Case-insensitive text to find in the claim or its article's title.
    unreviewed_by
        A user id: leave out the claims that user has already reviewed.
    page, page_size
        1-based page number and rows per page (paged in SQL with LIMIT/OFFSET).
    current_only
        Only claims of each article's current revision.
    required
        Reviews a claim needs (default ``review.required_reviews()``), for ``stage``.

    Returns
    -------
    DataFrame, int
        Columns ``QUEUE_COLUMNS`` (``priority`` as in ``review.priority``; ``stage`` as in
        ``review.review_stage``; ``n_reviews`` counts submitted review verdicts;
        ``reopen_codes`` why surveillance re-opened the claim, ``vocabulary.REOPEN_REASONS``
        codes in the order found, empty unless re-opened), and the total number of claims
        matching the filters.
    """
    required = required if required is not None else review.required_reviews()
    page = max(1, int(page))
    page_size = max(1, int(page_size))
    where = _queue_filters(article_id=article_id, category=category, status=status,
                           flags=flags, search=search, unreviewed_by=unreviewed_by,
                           current_only=current_only)
    joined = and_(col(Claim.article_id) == col(Article.id))
    total = session.exec(
        select(func.count()).select_from(Claim).join(Article, joined).where(*where)
    ).one()
    prio = priority_expression().label("priority")
    stmt = (
        select(Claim, Article.title, Article.source, prio)
        .join(Article, joined)
        .where(*where)
        .order_by(prio.desc(), col(Claim.id))
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    rows = session.exec(stmt).all()
    ids = [int(c.id) for c, _, _, _ in rows if c.id is not None]
    n_links = _counts_by_claim(session, EvidenceLink.id, col(EvidenceLink.claim_id), ids)
    n_reviews = _counts_by_claim(session, Verdict.id, col(Verdict.claim_id), ids,
                                 col(Verdict.kind) == "review", col(Verdict.submitted))
    out = []
    for c, title, source, p in rows:
        assert c.id is not None
        nr = n_reviews.get(c.id, 0)
        out.append({
            "claim_id": c.id, "article_id": c.article_id, "article_title": title,
            "source": source, "text": c.text, "category": c.category, "status": c.status,
            "stage": review.review_stage(c.status, nr, required), "flags": list(c.flags or []),
            "checkworthiness": c.checkworthiness, "priority": round(float(p), 4),
            "n_links": n_links.get(c.id, 0), "n_reviews": nr,
            "reopen_codes": _reopen_codes(c), "version": c.version,
        })
    return _frame(out, QUEUE_COLUMNS), int(total)


def _reopen_codes(claim: Claim) -> list[str]:
    if claim.status != "reopened":
        return []
    codes = [str(r.get("code", "")) for r in claim.reopen_reasons or []]
    return list(dict.fromkeys(c for c in codes if c))


def next_claim_id(
    session: Session,
    *,
    after_claim_id: int,
    article_id: int | None = None,
    category: str | None = None,
    status: str | None = None,
    flags: Sequence[str] = (),
    search: str | None = None,
    unreviewed_by: int | None = None,
    current_only: bool = True,
) -> int | None:
    """The claim after ``after_claim_id`` in the queue's order, under the same filters.

    After the last claim it starts again from the top, so claims skipped earlier come back;
    ``None`` when no other claim matches (with ``unreviewed_by``: the user has reviewed
    every claim in the queue).
    """
    where = _queue_filters(article_id=article_id, category=category, status=status,
                           flags=flags, search=search, unreviewed_by=unreviewed_by,
                           current_only=current_only)
    where.append(col(Claim.id) != after_claim_id)
    prio = priority_expression()
    base = (select(col(Claim.id))
            .join(Article, col(Claim.article_id) == col(Article.id)).where(*where)
            .order_by(prio.desc(), col(Claim.id)).limit(1))
    current = session.exec(select(prio).where(col(Claim.id) == after_claim_id)).first()
    if current is not None:
        after = session.exec(base.where(or_(
            prio < current, and_(prio == current, col(Claim.id) > after_claim_id)))).first()
        if after is not None:
            return int(after)
    first = session.exec(base).first()
    return int(first) if first is not None else None


def paragraph_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The paragraph around ``text[start:end]``: from the line break before to the one after.

    Returns
    -------
    tuple of int
        ``(p_start, p_end)`` with ``p_start <= start`` and ``end <= p_end``; surrounding
        whitespace is left out.
    """
    p_start = text.rfind("\n", 0, start) + 1
    nl = text.find("\n", end)
    p_end = len(text) if nl < 0 else nl
    while p_start < start and text[p_start].isspace():
        p_start += 1
    while p_end > end and text[p_end - 1].isspace():
        p_end -= 1
    return p_start, p_end


@dataclass(frozen=True)
class ClaimContext:
    """A claim with what the claim screen shows around it.

    ``paragraph`` is the article text around the claim; the claim is
    ``paragraph[claim_start:claim_end]``. ``reopen_reasons`` and ``reopened_at`` (aware UTC)
    say why and when surveillance re-opened it.
    """

    claim_id: int
    text: str
    category: str
    checkworthiness: float
    status: str
    flags: list[str]
    cues: list[str]
    suggested_certainty: str | None
    suggestion_reasons: list[str]
    version: int
    article_id: int
    article_title: str
    article_source: str
    article_is_current: bool
    paragraph: str
    claim_start: int
    claim_end: int
    canonical_id: int | None
    canonical_statement: str | None
    canonical_score: float | None
    reopen_reasons: list[dict[str, Any]] = field(default_factory=list)
    reopened_at: datetime | None = None


def claim_context(session: Session, claim_id: int) -> ClaimContext | None:
    """The claim, its paragraph, article and canonical statement; ``None`` if no such claim."""
    row = session.exec(
        select(Claim, Article).join(Article, col(Claim.article_id) == col(Article.id))
        .where(col(Claim.id) == claim_id)
    ).first()
    if row is None:
        return None
    claim, article = row
    assert claim.id is not None and article.id is not None
    p_start, p_end = paragraph_bounds(article.text, claim.start, claim.end)
    statement = None
    if claim.canonical_id is not None:
        cc = session.get(CanonicalClaim, claim.canonical_id)
        statement = cc.statement if cc else None
    return ClaimContext(
        claim_id=claim.id, text=claim.text, category=claim.category,
        checkworthiness=claim.checkworthiness, status=claim.status,
        flags=list(claim.flags or []), cues=list(claim.cues or []),
        suggested_certainty=claim.suggested_certainty,
        suggestion_reasons=list(claim.suggestion_reasons or []), version=claim.version,
        article_id=article.id, article_title=article.title, article_source=article.source,
        article_is_current=article.is_current, paragraph=article.text[p_start:p_end],
        claim_start=claim.start - p_start, claim_end=claim.end - p_start,
        canonical_id=claim.canonical_id, canonical_statement=statement,
        canonical_score=claim.canonical_score,
        reopen_reasons=[dict(r) for r in claim.reopen_reasons or []],
        reopened_at=_utc(claim.reopened_at) if claim.reopened_at else None,
    )


def canonical_siblings(session: Session, claim_id: int) -> pd.DataFrame:
    """The other claims (in current articles) that repeat this claim's canonical claim.

    Returns
    -------
    DataFrame
        Columns ``SIBLING_COLUMNS``, by article.
    """
    canonical_id = session.exec(select(Claim.canonical_id).where(col(Claim.id) == claim_id)).first()
    if canonical_id is None:
        return _frame([], SIBLING_COLUMNS)
    stmt = (
        select(Claim, Article.title, Article.source)
        .join(Article, col(Claim.article_id) == col(Article.id))
        .where(col(Claim.canonical_id) == canonical_id, col(Claim.id) != claim_id,
               col(Article.is_current))
        .order_by(col(Claim.article_id), col(Claim.start))
    )
    rows = [{"claim_id": c.id, "article_id": c.article_id, "article_title": title,
             "source": source, "text": c.text, "status": c.status}
            for c, title, source in session.exec(stmt).all()]
    return _frame(rows, SIBLING_COLUMNS)


def claim_studies(session: Session, claim_id: int) -> pd.DataFrame:
    """The studies linked to a claim, best first (by rank, then score).

    Returns
    -------
    DataFrame
        Columns ``STUDY_LINK_COLUMNS``; ``explanation`` is the link's
        ``{"sentences": [[start, end, text, score], ...], "terms": [...],
        "fit_reasons": [...]}`` (offsets into ``abstract``), ``indirectness`` its
        indirectness details, ``flags`` the study's flags with reasons, ``assessed`` whether
        anyone has assessed the link. Fitting studies come first (``fits``); the others
        are weaker matches.
    """
    stmt = (
        select(EvidenceLink, Study)
        .join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .where(col(EvidenceLink.claim_id) == claim_id)
        .order_by(col(EvidenceLink.rank).is_(None), col(EvidenceLink.rank),
                  col(EvidenceLink.score).desc(), col(EvidenceLink.id))
    )
    assessed = set(session.exec(
        select(Assessment.link_id).join(EvidenceLink,
                                        col(Assessment.link_id) == col(EvidenceLink.id))
        .where(col(EvidenceLink.claim_id) == claim_id)).all())
    rows = []
    for link, s in session.exec(stmt).all():
        rows.append({
            "link_id": link.id, "study_id": s.id, "pmid": s.pmid, "title": s.title,
            "journal": s.journal, "year": s.pub_year, "doi": s.doi, "pmcid": s.pmcid,
            "design": s.design, "evidence_level": s.evidence_level,
            "design_rank": s.design_rank, "design_reasons": list(s.design_reasons or []),
            "retracted": s.is_retracted, "expression_of_concern": s.has_expression_of_concern,
            "erratum": s.has_erratum, "origin": link.origin,
            "also_found_by": list(link.also_found_by or []), "score": link.score,
            "rank": link.rank, "indirect": link.indirect,
            "indirectness": dict(link.indirectness or {}),
            "explanation": dict(link.explanation or {}), "fits": link.fits,
            "abstract": s.abstract, "created_by": link.created_by,
            "flags": [dict(f) for f in s.flags or []], "assessed": link.id in assessed,
        })
    return _frame(rows, STUDY_LINK_COLUMNS)


def certainty_suggestion(session: Session, claim_id: int,
                         viewer: AppUser | None) -> CertaintySuggestion | None:
    """The certainty suggestion the viewer's verdict form shows (``review.suggestion_for``).

    Under dual independent review a reviewer's suggestion comes from their own
    assessments; otherwise from every assessment; with none, from the records alone.
    None for a claim that was never linked.
    """
    claim = session.get(Claim, claim_id)
    if claim is None:
        return None
    return review.suggestion_for(session, claim=claim, user=viewer)


def has_study(session: Session, pmid: str) -> bool:
    """Whether a study with this PMID is in the database."""
    return session.exec(select(Study.id).where(col(Study.pmid) == pmid)).first() is not None


def has_reviewed(session: Session, claim_id: int, user_id: int) -> bool:
    """Whether the user has submitted a review verdict on the claim."""
    return session.exec(
        select(Verdict.id).where(col(Verdict.claim_id) == claim_id,
                                 col(Verdict.reviewer_id) == user_id,
                                 col(Verdict.kind) == "review", col(Verdict.submitted))
    ).first() is not None


def others_visible(session: Session, claim_id: int, viewer: AppUser | None, *,
                   independent: bool | None = None) -> bool:
    """Whether ``viewer`` may see other people's verdicts and assessments on a claim.

    Without independent review, always. With it (the default setting), only adjudicators
    and admins, the reviewer who has submitted their own verdict on the claim, and anyone
    once the claim is final.
    """
    if independent is None:
        independent = get_settings().independent_review
    if not independent:
        return True
    if viewer is None or viewer.id is None:
        return False
    if viewer.role in ("adjudicator", "admin"):
        return True
    status = session.exec(select(Claim.status).where(col(Claim.id) == claim_id)).first()
    return status in DECIDED_STATUSES or has_reviewed(session, claim_id, viewer.id)


def claim_verdicts(session: Session, claim_id: int, *, viewer: AppUser | None,
                   independent: bool | None = None) -> pd.DataFrame:
    """The verdicts on a claim that ``viewer`` may see (see ``others_visible``).

    The viewer's own verdicts are always included; other people's only when visible.

    Returns
    -------
    DataFrame
        Columns ``REVIEW_VERDICT_COLUMNS``, final verdict first, then reviews by time.
    """
    stmt = (
        select(Verdict, AppUser.username)
        .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
        .where(col(Verdict.claim_id) == claim_id)
        .order_by(col(Verdict.kind) != "final", col(Verdict.created_at), col(Verdict.id))
    )
    if not others_visible(session, claim_id, viewer, independent=independent):
        stmt = stmt.where(col(Verdict.reviewer_id) == (viewer.id if viewer else -1))
    rows = [
        {"verdict_id": v.id, "claim_id": v.claim_id, "reviewer_id": v.reviewer_id,
         "reviewer": name, "kind": v.kind, "substantiation": v.substantiation,
         "certainty": v.certainty, "domains": dict(v.domains or {}),
         "suggested_certainty": v.suggested_certainty, "rationale": v.rationale,
         "action": v.action, "version": v.version, "updated_at": v.updated_at}
        for v, name in session.exec(stmt).all()
    ]
    return _frame(rows, REVIEW_VERDICT_COLUMNS)


def claim_assessments(session: Session, claim_id: int, *, viewer: AppUser | None,
                      independent: bool | None = None) -> pd.DataFrame:
    """The assessments of a claim's links that ``viewer`` may see (see ``others_visible``).

    Returns
    -------
    DataFrame
        Columns ``REVIEW_ASSESSMENT_COLUMNS``.
    """
    stmt = (
        select(Assessment, AppUser.username, EvidenceLink.study_id, Study.pmid)
        .join(EvidenceLink, col(Assessment.link_id) == col(EvidenceLink.id))
        .join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .join(AppUser, col(Assessment.reviewer_id) == col(AppUser.id))
        .where(col(EvidenceLink.claim_id) == claim_id)
        .order_by(col(Assessment.link_id), col(Assessment.id))
    )
    if not others_visible(session, claim_id, viewer, independent=independent):
        stmt = stmt.where(col(Assessment.reviewer_id) == (viewer.id if viewer else -1))
    rows = [
        {"assessment_id": a.id, "link_id": a.link_id, "study_id": study_id, "pmid": pmid,
         "reviewer_id": a.reviewer_id, "reviewer": name, "stance": a.stance,
         "relevance": a.relevance, "note": a.note, "version": a.version,
         "updated_at": a.updated_at}
        for a, name, study_id, pmid in session.exec(stmt).all()
    ]
    return _frame(rows, REVIEW_ASSESSMENT_COLUMNS)


def final_verdict(session: Session, claim_id: int) -> dict[str, Any] | None:
    """The claim's final verdict as a dict (``REVIEW_VERDICT_COLUMNS``), or ``None``."""
    row = session.exec(
        select(Verdict, AppUser.username)
        .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
        .where(col(Verdict.claim_id) == claim_id, col(Verdict.kind) == "final")
        .order_by(col(Verdict.id))
    ).first()
    if row is None:
        return None
    v, name = row
    return {"verdict_id": v.id, "claim_id": v.claim_id, "reviewer_id": v.reviewer_id,
            "reviewer": name, "kind": v.kind, "substantiation": v.substantiation,
            "certainty": v.certainty, "domains": dict(v.domains or {}),
            "suggested_certainty": v.suggested_certainty, "rationale": v.rationale,
            "action": v.action, "version": v.version, "updated_at": v.updated_at}


def adjudication_queue(session: Session, *, viewer: AppUser | None,
                       required: int | None = None,
                       independent: bool | None = None) -> pd.DataFrame:
    """Claims waiting for a final verdict: disagreements first, then agreed reviews.

    Parameters
    ----------
    viewer
        Who is looking. Under independent review only adjudicators and admins see the
        reviews' values; for anyone else ``substantiations`` / ``certainties`` are empty.
    required
        Reviews a claim needs (default ``review.required_reviews()``).
    independent
        Dual independent review (default: the setting).

    Returns
    -------
    DataFrame
        Columns ``ADJUDICATION_COLUMNS``; ``substantiations`` / ``certainties`` list the
        reviews' values, in the order they were first saved.
    """
    required = required if required is not None else review.required_reviews()
    if independent is None:
        independent = get_settings().independent_review
    unblinded = not independent or (viewer is not None and viewer.role in ("adjudicator",
                                                                           "admin"))
    # Few claims wait for adjudication at any time: find them, then load their details.
    values: dict[int, list[tuple[str, str]]] = {}
    for cid, s, c in session.exec(
        select(Verdict.claim_id, Verdict.substantiation, Verdict.certainty)
        .join(Claim, col(Verdict.claim_id) == col(Claim.id))
        .where(col(Claim.status).in_(("disagreement", "in_review", "reopened")),
               col(Verdict.kind) == "review", col(Verdict.submitted))
        .order_by(col(Verdict.id))
    ).all():
        values.setdefault(cid, []).append((s, c))
    ids = list(values)
    found: list[tuple[bool, float, int, dict[str, Any]]] = []
    for chunk in _chunks(ids):
        for claim, title in session.exec(
            select(Claim, Article.title)
            .join(Article, col(Claim.article_id) == col(Article.id))
            .where(col(Claim.id).in_(chunk), col(Article.is_current))
        ).all():
            assert claim.id is not None
            n = len(values[claim.id])
            if claim.status == "in_review" and n < required:
                continue
            found.append((
                claim.status not in ("disagreement", "reopened"),
                -review.priority(claim.checkworthiness, claim.flags or []),
                claim.id,
                {"claim_id": claim.id, "article_title": title, "text": claim.text,
                 "category": claim.category, "status": claim.status,
                 "stage": review.review_stage(claim.status, n, required), "n_reviews": n,
                 "substantiations": [s for s, _ in values[claim.id]] if unblinded else [],
                 "certainties": [c for _, c in values[claim.id]] if unblinded else [],
                 "version": claim.version},
            ))
    out = [row for *_, row in sorted(found, key=lambda f: f[:3])]
    return _frame(out, ADJUDICATION_COLUMNS)


# --------------------------------------------------------------------------- dashboard


def status_counts(session: Session) -> pd.DataFrame:
    """Claims (current articles) per status, every status listed.

    Returns
    -------
    DataFrame
        Columns ``status, claims`` in ``CLAIM_STATUSES`` order.
    """
    counts: dict[str, int] = dict(session.exec(
        select(Claim.status, func.count())
        .join(Article, col(Claim.article_id) == col(Article.id))
        .where(col(Article.is_current)).group_by(col(Claim.status))
    ).all())
    statuses = list(CLAIM_STATUSES) + sorted(set(counts) - set(CLAIM_STATUSES))
    return _frame([{"status": s, "claims": int(counts.get(s, 0))} for s in statuses],
                  ["status", "claims"])


OUTCOME_COLUMNS = ["claim_id", "article_id", "article_title", "category", "outcome", "final"]


def claim_outcomes(session: Session) -> pd.DataFrame:
    """Each claim's substantiation so far (current articles).

    Returns
    -------
    DataFrame
        Columns ``OUTCOME_COLUMNS``. ``outcome`` is the final verdict's substantiation
        (``final`` true); else the reviews' substantiation when they all agree; else
        ``disputed`` when they do not, or ``unreviewed`` without a review.
    """
    claims_ = session.exec(
        select(Claim.id, Claim.article_id, Article.title, Claim.category)
        .join(Article, col(Claim.article_id) == col(Article.id))
        .where(col(Article.is_current)).order_by(col(Claim.id))
    ).all()
    finals: dict[int | None, str] = {}
    reviews: dict[int | None, set[str]] = {}
    for vid, kind, label in session.exec(
        select(Verdict.claim_id, Verdict.kind, Verdict.substantiation)
        .where(col(Verdict.submitted))
    ).all():
        if kind == "final":
            finals[vid] = label
        else:
            reviews.setdefault(vid, set()).add(label)
    rows = []
    for cid, aid, title, category in claims_:
        final = cid in finals
        if final:
            outcome = finals[cid]
        elif cid in reviews:
            outcome = next(iter(reviews[cid])) if len(reviews[cid]) == 1 else "disputed"
        else:
            outcome = "unreviewed"
        rows.append({"claim_id": cid, "article_id": aid, "article_title": title,
                     "category": category, "outcome": outcome, "final": final})
    return _frame(rows, OUTCOME_COLUMNS)


def outcomes_by(session: Session, by: str) -> pd.DataFrame:
    """Claims per outcome (see ``claim_outcomes``) and ``by`` (``article_title``/``category``).

    Returns
    -------
    DataFrame
        Columns ``[by, "outcome", "claims"]``.
    """
    if by not in ("article_title", "category"):
        raise ValueError(f"outcomes_by: by must be article_title or category, not {by!r}")
    df = claim_outcomes(session)
    if df.empty:
        return _frame([], [by, "outcome", "claims"])
    out = df.groupby([by, "outcome"]).size().reset_index(name="claims")
    return out.sort_values([by, "outcome"]).reset_index(drop=True)


def evidence_levels(session: Session) -> pd.DataFrame:
    """Linked studies (distinct, not deleted) per evidence level and design.

    Returns
    -------
    DataFrame
        Columns ``evidence_level, design, studies, links``; unknown values as ``unknown``.
    """
    rows = session.exec(
        select(Study.evidence_level, Study.design,
               func.count(func.distinct(col(Study.id))), func.count(col(EvidenceLink.id)))
        .join(EvidenceLink, col(EvidenceLink.study_id) == col(Study.id))
        .where(col(Study.deleted).is_(False))
        .group_by(col(Study.evidence_level), col(Study.design))
    ).all()
    out = [{"evidence_level": lvl or "unknown", "design": d or "unknown",
            "studies": int(n), "links": int(nl)} for lvl, d, n, nl in rows]
    df = _frame(out, ["evidence_level", "design", "studies", "links"])
    return df.sort_values(["evidence_level", "design"]).reset_index(drop=True)


def citation_fit(session: Session) -> pd.DataFrame:
    """Whether the studies articles cite fit the claims they are linked to, per article.

    Returns
    -------
    DataFrame
        Columns ``article_title, fit, links`` for links of origin ``cited``; ``fit`` is
        ``fits``, ``does not fit`` or ``not assessed``.
    """
    rows = session.exec(
        select(Article.title, EvidenceLink.fits, func.count())
        .join(Claim, col(EvidenceLink.claim_id) == col(Claim.id))
        .join(Article, col(Claim.article_id) == col(Article.id))
        .where(col(EvidenceLink.origin) == "cited", col(Article.is_current))
        .group_by(col(Article.title), col(EvidenceLink.fits))
    ).all()
    names = {True: "fits", False: "does not fit", None: "not assessed"}
    out = [{"article_title": t, "fit": names[f], "links": int(n)} for t, f, n in rows]
    df = _frame(out, ["article_title", "fit", "links"])
    return df.sort_values(["article_title", "fit"]).reset_index(drop=True)


def claim_sources(session: Session, claim_id: int | None = None) -> pd.DataFrame:
    """Non-PubMed sources reviewers attached to claims (drug labels, decisions, guidelines).

    Returns
    -------
    DataFrame
        Columns ``SOURCE_COLUMNS``, by claim then in the order they were attached.
    """
    stmt = select(ClaimSource).order_by(col(ClaimSource.claim_id), col(ClaimSource.id))
    if claim_id is not None:
        stmt = stmt.where(ClaimSource.claim_id == claim_id)
    rows = [{"source_id": r.id, "claim_id": r.claim_id, "kind": r.kind, "url": r.url,
             "title": r.title, "note": r.note, "created_by": r.created_by,
             "created_at": r.created_at, "version": r.version}
            for r in session.exec(stmt).all()]
    return _frame(rows, SOURCE_COLUMNS)


def article_scorecard(session: Session) -> pd.DataFrame:
    """Per current article: how its claims stand on fitting evidence, and its citations.

    Returns
    -------
    DataFrame
        Columns ``SCORECARD_COLUMNS``: claims; claims with a fitting cited study; with only
        fitting discovered evidence; with no fitting evidence; regulatory statements still
        needing a regulatory source; scholarly citations; and citations whose study fits
        no claim of the article (``addresses_no_claim``).
    """
    arts = session.exec(select(Article).where(col(Article.is_current))
                        .order_by(col(Article.id))).all()
    ids = [a.id for a in arts]
    fitting: dict[int, set[str]] = {}
    if ids:
        for cid, origin in session.exec(
            select(EvidenceLink.claim_id, EvidenceLink.origin)
            .join(Claim, col(EvidenceLink.claim_id) == col(Claim.id))
            .where(col(Claim.article_id).in_(ids), col(EvidenceLink.fits).is_(True))
        ).all():
            fitting.setdefault(int(cid), set()).add(origin)
    rows = []
    for a in arts:
        claims_ = session.exec(select(Claim.id, Claim.flags)
                               .where(Claim.article_id == a.id)).all()
        cites = session.exec(select(Citation.kind, Citation.flags)
                             .where(Citation.article_id == a.id)).all()
        cited = sum(1 for cid, _ in claims_ if "cited" in fitting.get(int(cid or 0), set()))
        any_fit = sum(1 for cid, _ in claims_ if fitting.get(int(cid or 0)))
        rows.append({
            "article_id": a.id, "title": a.title, "source": a.source, "claims": len(claims_),
            "with_fitting_citation": cited, "only_discovered": any_fit - cited,
            "no_fitting_evidence": len(claims_) - any_fit,
            "needs_regulatory_source": sum(1 for _, f in claims_
                                           if "needs_regulatory_source" in (f or [])),
            "scholarly_citations": sum(1 for k, _ in cites if k != "web"),
            "citations_addressing_no_claim": sum(1 for _, f in cites
                                                 if "addresses_no_claim" in (f or [])),
        })
    return _frame(rows, SCORECARD_COLUMNS)


def flag_counts(session: Session) -> pd.DataFrame:
    """Claims (current articles) carrying each risk flag.

    Returns
    -------
    DataFrame
        Columns ``flag, label, claims`` for every flag in ``review.FLAG_LABELS``.
    """
    rows = []
    for flag, label in review.FLAG_LABELS.items():
        n = session.exec(
            select(func.count()).select_from(Claim)
            .join(Article, col(Claim.article_id) == col(Article.id))
            .where(col(Article.is_current), _has_any_flag([flag]))
        ).one()
        rows.append({"flag": flag, "label": label, "claims": int(n)})
    return _frame(rows, ["flag", "label", "claims"])


def agreement(session: Session) -> pd.DataFrame:
    """Cohen's kappa on substantiation per reviewer pair, then overall (``review.agreement``).

    Returns
    -------
    DataFrame
        Columns ``AGREEMENT_COLUMNS``; the last row is the pooled overall figure with
        ``reviewer_a`` = ``reviewer_b`` = ``review.OVERALL``. ``kappa`` is ``None`` where
        it is undefined.
    """
    ratings = session.exec(
        select(Verdict.claim_id, AppUser.username, Verdict.substantiation)
        .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
        .where(col(Verdict.kind) == "review", col(Verdict.submitted))
    ).all()
    pairs, overall = review.agreement((int(c), u, s) for c, u, s in ratings)
    rows = [{"reviewer_a": p.reviewer_a, "reviewer_b": p.reviewer_b, "claims": p.claims,
             "agreed": p.agreed, "percent_agreement": p.percent_agreement, "kappa": p.kappa}
            for p in [*pairs, overall]]
    return _frame(rows, AGREEMENT_COLUMNS)


# --------------------------------------------------------------------------- exports


def links(session: Session) -> pd.DataFrame:
    """Every evidence link with its study's PMID, origin, score, rank and explanation.

    Returns
    -------
    DataFrame
        Columns ``LINK_COLUMNS``; ``indirectness`` and ``explanation`` are dicts.
    """
    stmt = (
        select(EvidenceLink, Study.pmid)
        .join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .order_by(col(EvidenceLink.claim_id), col(EvidenceLink.rank).is_(None),
                  col(EvidenceLink.rank), col(EvidenceLink.id))
    )
    rows = [
        {"link_id": link.id, "claim_id": link.claim_id, "study_id": link.study_id,
         "pmid": pmid, "origin": link.origin, "also_found_by": list(link.also_found_by or []),
         "score": link.score, "rank": link.rank, "indirect": link.indirect, "fits": link.fits,
         "indirectness": dict(link.indirectness or {}),
         "explanation": dict(link.explanation or {}), "created_by": link.created_by,
         "created_at": link.created_at, "version": link.version}
        for link, pmid in session.exec(stmt).all()
    ]
    return _frame(rows, LINK_COLUMNS)


def verdicts(session: Session) -> pd.DataFrame:
    """Every verdict (reviews and finals, unblinded: for exports and analysts).

    Returns
    -------
    DataFrame
        Columns ``VERDICT_COLUMNS``; ``domains`` is a dict of GRADE domain -> rating,
        ``suggestion_reasons`` a list; ``reviewer`` is the username.
    """
    stmt = (
        select(Verdict, AppUser.username)
        .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
        .order_by(col(Verdict.claim_id), col(Verdict.kind), col(Verdict.id))
    )
    rows = [
        {"claim_id": v.claim_id, "reviewer": name, "kind": v.kind,
         "substantiation": v.substantiation, "certainty": v.certainty,
         "domains": dict(v.domains or {}), "suggested_certainty": v.suggested_certainty,
         "rationale": v.rationale, "action": v.action, "version": v.version,
         "updated_at": v.updated_at, "verdict_id": v.id,
         "canonical_claim_id": v.canonical_claim_id,
         "suggestion_reasons": list(v.suggestion_reasons or []), "created_at": v.created_at}
        for v, name in session.exec(stmt).all()
    ]
    return _frame(rows, VERDICT_COLUMNS)


def assessments(session: Session) -> pd.DataFrame:
    """Every assessment (unblinded: for exports and analysts).

    Returns
    -------
    DataFrame
        Columns ``ASSESSMENT_COLUMNS``.
    """
    stmt = (
        select(Assessment, EvidenceLink.claim_id, Study.pmid, AppUser.username)
        .join(EvidenceLink, col(Assessment.link_id) == col(EvidenceLink.id))
        .join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .join(AppUser, col(Assessment.reviewer_id) == col(AppUser.id))
        .order_by(col(EvidenceLink.claim_id), col(Assessment.link_id), col(Assessment.id))
    )
    rows = [
        {"assessment_id": a.id, "link_id": a.link_id, "claim_id": cid, "pmid": pmid,
         "reviewer": name, "stance": a.stance, "relevance": a.relevance, "note": a.note,
         "version": a.version, "updated_at": a.updated_at, "created_at": a.created_at}
        for a, cid, pmid, name in session.exec(stmt).all()
    ]
    return _frame(rows, ASSESSMENT_COLUMNS)


# --------------------------------------------------------------------------- users


def get_user(session: Session, user_id: int) -> AppUser | None:
    """The active user with this id, or ``None``."""
    user = session.get(AppUser, user_id)
    return user if user is not None and user.active else None


def user_for_oidc(session: Session, *, subject: str | None, email: str | None,
                  email_verified: bool = False) -> AppUser | None:
    """The active user a single-sign-on identity maps to, or ``None``.

    Matched by ``oidc_subject`` first, then by username equal to the e-mail address
    (case-insensitively) only when the identity provider says it verified that address
    (``email_verified``): anyone can claim an unverified address at some providers.
    """
    if subject:
        user = session.exec(select(AppUser).where(col(AppUser.oidc_subject) == subject,
                                                  col(AppUser.active))).first()
        if user is not None:
            return user
    if email and email_verified:
        return session.exec(select(AppUser).where(
            func.lower(col(AppUser.username)) == email.strip().lower(), col(AppUser.active)
        )).first()
    return None


def users(session: Session) -> pd.DataFrame:
    """Every user (no password hashes).

    Returns
    -------
    DataFrame
        Columns ``USER_COLUMNS``; ``sso`` tells whether an SSO subject is bound.
    """
    rows = [
        {"user_id": u.id, "username": u.username, "display_name": u.display_name,
         "role": u.role, "active": u.active, "sso": u.oidc_subject is not None,
         "version": u.version}
        for u in session.exec(select(AppUser).order_by(col(AppUser.username))).all()
    ]
    return _frame(rows, USER_COLUMNS)


# --------------------------------------------------------------------------- claims register

REGISTER_COLUMNS = ["claim_id", "article_id", "article_title", "article_source",
                    "article_revision", "article_is_current", "text", "start", "end",
                    "category", "canonical_id", "canonical_statement", "status",
                    "substantiation", "certainty", "action", "adjudicator", "decided_at",
                    "review_by", "reviewers", "last_review_at", "rationale", "supporting",
                    "partly_supporting", "contradicting", "sources", "flags",
                    "reopen_reasons", "raw_records", "updated_at"]
# Which stance puts a study in which column of the register (``does_not_address`` in none).
REGISTER_STANCES = {"supports": "supporting", "partially_supports": "partly_supporting",
                    "contradicts": "contradicting"}


def claims_register(
    session: Session,
    *,
    article_id: int | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """The claims register: one row per claim with its final verdict and what it rests on.

    Parameters
    ----------
    article_id
        Only this article's claims.
    since
        Only claims whose row or verdicts changed at or after this instant (``updated_at``).

    Returns
    -------
    DataFrame
        Columns ``REGISTER_COLUMNS``, by article then reading order. Claims of every article
        revision are listed (``article_is_current`` tells which). ``status`` is the claim's
        review status; ``substantiation``, ``certainty``, ``action``, ``rationale``,
        ``adjudicator`` (username) and ``decided_at`` come from the final verdict and are
        ``None`` until there is one. ``reviewers`` lists the usernames of the submitted
        reviews, ``last_review_at`` the latest of them. ``supporting``,
        ``partly_supporting`` and ``contradicting`` list ``{"pmid", "design",
        "evidence_level"}`` for each linked study a reviewer assessed with that stance (a
        study two reviewers read differently is listed under both stances). ``sources``
        lists the attached non-PubMed sources (``{"kind", "url", "title"}``), ``flags``
        the claim's flags, and ``raw_records`` ``{"pmid", "raw_sha256", "retrieved_at"}``
        of the raw PubMed response each listed study was parsed from (``raw_sha256`` is
        ``None`` for a record stored without its raw response). ``updated_at`` is the
        latest change to the claim or its verdicts.
    """
    from evidence.models import RawRecord

    stmt = (select(Claim, Article)
            .join(Article, col(Claim.article_id) == col(Article.id))
            .order_by(col(Claim.article_id), col(Claim.start), col(Claim.id)))
    if article_id is not None:
        stmt = stmt.where(col(Claim.article_id) == article_id)
    pairs = session.exec(stmt).all()
    ids = [int(c.id) for c, _ in pairs if c.id is not None]
    statements: dict[int, str] = {}
    verdicts_: dict[int, list[tuple[Verdict, str]]] = {}
    stances: dict[int, dict[str, dict[str, dict[str, Any]]]] = {}
    raw: dict[str, dict[str, Any]] = {}
    sources: dict[int, list[dict[str, Any]]] = {}
    canonical_ids = sorted({int(c.canonical_id) for c, _ in pairs if c.canonical_id})
    for chunk in _chunks(canonical_ids):
        for cc_id, statement in session.exec(
            select(CanonicalClaim.id, CanonicalClaim.statement)
            .where(col(CanonicalClaim.id).in_(chunk))
        ).all():
            statements[int(cc_id or 0)] = statement
    for chunk in _chunks(ids):
        for v, name in session.exec(
            select(Verdict, AppUser.username)
            .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
            .where(col(Verdict.claim_id).in_(chunk), col(Verdict.submitted))
            .order_by(col(Verdict.id))
        ).all():
            verdicts_.setdefault(v.claim_id, []).append((v, name))
        for cid, stance, s in session.exec(
            select(EvidenceLink.claim_id, Assessment.stance, Study)
            .join(EvidenceLink, col(Assessment.link_id) == col(EvidenceLink.id))
            .join(Study, col(EvidenceLink.study_id) == col(Study.id))
            .where(col(EvidenceLink.claim_id).in_(chunk))
            .order_by(col(EvidenceLink.rank).is_(None), col(EvidenceLink.rank),
                      col(Study.pmid))
        ).all():
            column = REGISTER_STANCES.get(stance)
            if column is None:
                continue
            stances.setdefault(cid, {}).setdefault(column, {})[s.pmid] = {
                "pmid": s.pmid, "design": s.design, "evidence_level": s.evidence_level}
            raw[s.pmid] = {"pmid": s.pmid, "raw_record_id": s.raw_record_id}
        for src in session.exec(
            select(ClaimSource).where(col(ClaimSource.claim_id).in_(chunk))
            .order_by(col(ClaimSource.id))
        ).all():
            sources.setdefault(src.claim_id, []).append(
                {"kind": src.kind, "url": src.url, "title": src.title})
    # The raw responses' hashes, without their bodies.
    raw_ids = sorted({int(r["raw_record_id"]) for r in raw.values() if r["raw_record_id"]})
    hashes: dict[int, tuple[str | None, datetime | None]] = {}
    for chunk in _chunks(raw_ids):
        for rid, sha, retrieved in session.exec(
            select(RawRecord.id, RawRecord.sha256, RawRecord.retrieved_at)
            .where(col(RawRecord.id).in_(chunk))
        ).all():
            hashes[int(rid or 0)] = (sha, retrieved)
    for pmid, r in raw.items():
        found = hashes.get(r.pop("raw_record_id") or 0, (None, None))
        raw[pmid] = {"pmid": pmid, "raw_sha256": found[0], "retrieved_at": iso_utc(found[1])}
    rows = []
    months = get_settings().verdict_review_months
    for c, a in pairs:
        assert c.id is not None
        final = next(((v, n) for v, n in verdicts_.get(c.id, []) if v.kind == "final"), None)
        reviews = [(v, n) for v, n in verdicts_.get(c.id, []) if v.kind == "review"]
        times = [c.updated_at, *(v.updated_at for v, _ in verdicts_.get(c.id, []))]
        updated = max(times, key=_utc)
        if since is not None and _utc(updated) < _utc(since):
            continue
        by_stance = stances.get(c.id, {})
        listed = sorted({p for column in by_stance.values() for p in column})
        rows.append({
            "claim_id": c.id, "article_id": a.id, "article_title": a.title,
            "article_source": a.source, "article_revision": a.revision,
            "article_is_current": a.is_current, "text": c.text, "start": c.start,
            "end": c.end, "category": c.category, "canonical_id": c.canonical_id,
            "canonical_statement": statements.get(c.canonical_id or 0),
            "status": c.status,
            "substantiation": final[0].substantiation if final else None,
            "certainty": final[0].certainty if final else None,
            "action": final[0].action if final else None,
            "adjudicator": final[1] if final else None,
            "decided_at": final[0].updated_at if final else None,
            "review_by": surveillance.review_by(final[0].updated_at, months) if final
            else None,
            "reviewers": [n for _, n in reviews],
            "last_review_at": max((v.updated_at for v, _ in reviews), key=_utc,
                                  default=None),
            "rationale": final[0].rationale if final else None,
            **{column: list(by_stance.get(column, {}).values())
               for column in REGISTER_STANCES.values()},
            "sources": sources.get(c.id, []), "flags": list(c.flags or []),
            "reopen_reasons": [str(r.get("text", "")) for r in c.reopen_reasons or []],
            "raw_records": [raw[p] for p in listed], "updated_at": updated,
        })
    return _frame(rows, REGISTER_COLUMNS)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive UTC wall time, PostgreSQL aware instants: compare as aware UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """An instant as ISO 8601 UTC text (``None`` stays ``None``)."""
    return _utc(value).isoformat() if value is not None else None


# --------------------------------------------------------------------------- analysts


CERTAINTY_COUNT_COLUMNS = ["basis", "certainty", "claims"]
DECISION_COLUMNS = ["event_id", "occurred_at", "actor", "action", "verdict_id", "claim_id",
                    "kind", "substantiation", "certainty", "previous_substantiation",
                    "previous_certainty", "changed"]
VERDICT_EVIDENCE_COLUMNS = ["verdict_id", "claim_id", "reviewer", "kind", "substantiation",
                            "certainty", "decided_at", "pmid", "pmid_version",
                            "record_sha256", "raw_sha256", "retrieved_at", "fits",
                            "retracted", "study_updated_at", "record_changed_since"]


def certainty_counts(session: Session) -> pd.DataFrame:
    """Claims (current articles) per GRADE certainty: suggested, reviewed and final.

    Returns
    -------
    DataFrame
        Columns ``CERTAINTY_COUNT_COLUMNS``: ``basis`` is ``suggested`` (the tool's
        suggestion on the claim), ``review`` (submitted reviewers' verdicts) or ``final``
        (adjudicated verdicts); ``certainty`` runs strongest first (``CERTAINTY``), then
        ``none`` for claims without a suggestion; every combination is listed, zeros too.
    """
    from evidence.vocabulary import CERTAINTY

    current = (select(Claim.id).join(Article, col(Claim.article_id) == col(Article.id))
               .where(col(Article.is_current)))
    counts: dict[tuple[str, str], int] = {}
    for value, n in session.exec(
        select(Claim.suggested_certainty, func.count())
        .where(col(Claim.id).in_(current)).group_by(col(Claim.suggested_certainty))
    ).all():
        counts[("suggested", value or "none")] = int(n)
    for kind, value, n in session.exec(
        select(Verdict.kind, Verdict.certainty, func.count())
        .where(col(Verdict.submitted), col(Verdict.claim_id).in_(current))
        .group_by(col(Verdict.kind), col(Verdict.certainty))
    ).all():
        counts[(kind, value or "none")] = counts.get((kind, value or "none"), 0) + int(n)
    levels = [*CERTAINTY, "none"]
    levels += sorted({c for _, c in counts} - set(levels))
    rows = [{"basis": basis, "certainty": c, "claims": counts.get((basis, c), 0)}
            for basis in ("suggested", "review", "final") for c in levels]
    return _frame(rows, CERTAINTY_COUNT_COLUMNS)


def decision_history(session: Session) -> pd.DataFrame:
    """Every verdict creation and change, from the audit trail, in the order they happened.

    Returns
    -------
    DataFrame
        Columns ``DECISION_COLUMNS``: who (``actor``) recorded which substantiation and
        certainty on which claim, when; ``previous_*`` hold the verdict's values before
        the event (``None`` on creation) and ``changed`` tells whether the substantiation
        or the certainty differs from them.
    """
    rows = []
    for e in session.exec(select(AuditEvent).where(col(AuditEvent.entity) == "verdict")
                          .order_by(col(AuditEvent.id))).all():
        after, before = dict(e.after or {}), dict(e.before or {})
        prev_s, prev_c = before.get("substantiation"), before.get("certainty")
        now_s, now_c = after.get("substantiation"), after.get("certainty")
        rows.append({
            "event_id": e.id, "occurred_at": e.occurred_at, "actor": e.actor,
            "action": e.action, "verdict_id": int(e.entity_id) if e.entity_id.isdigit()
            else None, "claim_id": after.get("claim_id", before.get("claim_id")),
            "kind": after.get("kind", before.get("kind")), "substantiation": now_s,
            "certainty": now_c, "previous_substantiation": prev_s,
            "previous_certainty": prev_c,
            "changed": bool(before) and (prev_s != now_s or prev_c != now_c),
        })
    return _frame(rows, DECISION_COLUMNS)


def verdict_evidence(session: Session) -> pd.DataFrame:
    """The PubMed record version behind each verdict: one row per verdict and linked study.

    Returns
    -------
    DataFrame
        Columns ``VERDICT_EVIDENCE_COLUMNS``: the verdict (who, what, ``decided_at`` = its
        last change) and each study linked to its claim, with the record version it rests
        on (``pmid_version``, ``record_sha256``, the raw response's ``raw_sha256`` and
        ``retrieved_at``); ``record_changed_since`` is true when the study row changed after
        the decision (a re-fetched record, a retraction found later).
    """
    from evidence.models import RawRecord

    stmt = (
        select(Verdict, AppUser.username, Study, EvidenceLink.fits)
        .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
        .join(EvidenceLink, col(EvidenceLink.claim_id) == col(Verdict.claim_id))
        .join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .order_by(col(Verdict.id), col(Study.pmid))
    )
    found = session.exec(stmt).all()
    raw_ids = sorted({s.raw_record_id for _, _, s, _ in found if s.raw_record_id is not None})
    raws: dict[int | None, tuple[str, Any]] = {}
    for chunk in _chunks(raw_ids):
        for rid, sha, fetched in session.exec(
            select(RawRecord.id, RawRecord.sha256, RawRecord.retrieved_at)
            .where(col(RawRecord.id).in_(chunk))
        ).all():
            raws[rid] = (sha, fetched)
    rows = []
    for v, name, s, fits in found:
        raw_sha, retrieved = raws.get(s.raw_record_id, (None, None))
        decided = _aware(v.updated_at)
        changed = _aware(s.updated_at)
        rows.append({
            "verdict_id": v.id, "claim_id": v.claim_id, "reviewer": name, "kind": v.kind,
            "substantiation": v.substantiation, "certainty": v.certainty,
            "decided_at": decided, "pmid": s.pmid, "pmid_version": s.pmid_version,
            "record_sha256": s.record_sha256, "raw_sha256": raw_sha,
            "retrieved_at": retrieved, "fits": fits, "retracted": s.is_retracted,
            "study_updated_at": changed, "record_changed_since": changed > decided,
        })
    return _frame(rows, VERDICT_EVIDENCE_COLUMNS)


def _aware(moment: Any) -> Any:
    """A datetime with a time zone (SQLite hands back UTC wall time without one)."""
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


AUDIT_STATUS_COLUMNS = ["verified", "events", "first_bad_id", "reason", "head_hash"]


def audit_status(session: Session) -> pd.DataFrame:
    """Whether the audit hash chain verifies (``audit.verify``), as one row.

    Returns
    -------
    DataFrame
        Columns ``AUDIT_STATUS_COLUMNS``: ``events`` verified before the first bad one
        (``first_bad_id``, with the ``reason``), and the chain's ``head_hash``.
    """
    from evidence import audit

    result = audit.verify(session)
    return _frame([{"verified": result.ok, "events": result.checked,
                    "first_bad_id": result.first_bad_id, "reason": result.reason,
                    "head_hash": result.head_hash}], AUDIT_STATUS_COLUMNS)


SURVEILLANCE_RUN_COLUMNS = ["run_id", "started_at", "finished_at", "status", "since",
                            "studies_checked", "records_fetched", "studies_changed",
                            *STUDY_CHANGES, "claims_reopened", "claims_expired",
                            "new_evidence_links", "requests", "error"]
SURVEILLANCE_KIND = "surveil"


def surveillance_runs(session: Session) -> pd.DataFrame:
    """Every surveillance run, oldest first, with what it found (for the dashboard chart).

    Returns
    -------
    DataFrame
        Columns ``SURVEILLANCE_RUN_COLUMNS``; counts are integers (0 for a run that
        failed before it applied anything), times timezone-aware UTC.
    """
    rows = []
    for run in session.exec(select(IngestRun).where(IngestRun.kind == SURVEILLANCE_KIND)
                            .order_by(col(IngestRun.started_at), col(IngestRun.id))).all():
        stats = run.stats or {}
        found = stats.get("counts") or {}
        row: dict[str, Any] = {
            "run_id": run.id, "started_at": _utc(run.started_at),
            "finished_at": _utc(run.finished_at) if run.finished_at else None,
            "status": run.status, "since": stats.get("since"), "error": run.error}
        for name in SURVEILLANCE_RUN_COLUMNS:
            if name not in row:
                row[name] = int(found.get(name) or 0)
        rows.append(row)
    return _frame(rows, SURVEILLANCE_RUN_COLUMNS)


REOPENED_COLUMNS = ["claim_id", "article_title", "text", "reopened_at", "reasons",
                    "reason_codes"]


def reopened_claims(session: Session) -> pd.DataFrame:
    """Claims (of current articles) surveillance re-opened, most recently re-opened first.

    Returns
    -------
    DataFrame
        Columns ``REOPENED_COLUMNS``; ``reasons`` lists the readable reasons,
        ``reason_codes`` their ``vocabulary.REOPEN_REASONS`` codes.
    """
    rows = []
    for claim, title in session.exec(
        select(Claim, Article.title).join(Article, col(Article.id) == col(Claim.article_id))
        .where(col(Claim.status) == "reopened", col(Article.is_current))
        .order_by(col(Claim.reopened_at).desc(), col(Claim.id))
    ).all():
        reasons = list(claim.reopen_reasons or [])
        rows.append({"claim_id": claim.id, "article_title": title, "text": claim.text,
                     "reopened_at": _utc(claim.reopened_at) if claim.reopened_at else None,
                     "reasons": [str(r.get("text", "")) for r in reasons],
                     "reason_codes": [str(r.get("code", "")) for r in reasons]})
    return _frame(rows, REOPENED_COLUMNS)


def reopened_count(session: Session) -> int:
    """How many claims (of current articles) surveillance re-opened and are still re-opened.

    The number the app's banner shows; ``claim_queue(status="reopened")`` lists them.
    """
    return int(session.exec(
        select(func.count()).select_from(Claim)
        .join(Article, col(Article.id) == col(Claim.article_id))
        .where(col(Claim.status) == "reopened", col(Article.is_current))
    ).one())
