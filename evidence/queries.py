"""Reads that return pandas DataFrames, shared by the CLI, the app, exports and notebooks.

Every function takes a ``Session`` (or an engine via ``session``) and returns a DataFrame
with the documented columns, in a stable order, empty (with the columns) when there is
nothing to show.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, col, select

from evidence.models import Article, AuditEvent, Citation, Claim, Study

ARTICLE_COLUMNS = ["article_id", "source", "title", "sha256", "content_type", "revision",
                   "previous_id", "is_current", "fetched_at", "n_claims", "n_citations"]
CLAIM_COLUMNS = ["claim_id", "article_id", "source", "text", "start", "end", "category",
                 "checkworthiness", "canonical_id", "status", "flags", "cues", "canonical_score",
                 "suggested_certainty", "version"]
CITATION_COLUMNS = ["citation_id", "article_id", "raw", "kind", "identifier", "status",
                    "status_reason", "pmid", "start", "end"]
STUDY_COLUMNS = ["pmid", "title", "journal", "year", "doi", "pmcid", "publication_types",
                 "mesh", "design", "evidence_level", "retracted", "expression_of_concern",
                 "erratum", "deleted", "raw_sha256", "study_id"]
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
    n_claims = dict(session.exec(  # type: ignore[arg-type]
        select(Claim.article_id, func.count()).group_by(Claim.article_id)).all())
    n_cites = dict(session.exec(  # type: ignore[arg-type]
        select(Citation.article_id, func.count()).group_by(Citation.article_id)).all())
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
            "version": c.version,
        })
    return _frame(rows, CLAIM_COLUMNS)


def citations(session: Session, *, article_id: int | None = None,
              kind: str | None = None) -> pd.DataFrame:
    """Citations with kind, normalised identifier, status and resolved PMID.

    Returns
    -------
    DataFrame
        Columns ``CITATION_COLUMNS``.
    """
    stmt = select(Citation).order_by(col(Citation.article_id), col(Citation.id))
    if article_id is not None:
        stmt = stmt.where(Citation.article_id == article_id)
    if kind is not None:
        stmt = stmt.where(Citation.kind == kind)
    rows = [
        {"citation_id": c.id, "article_id": c.article_id, "raw": c.raw, "kind": c.kind,
         "identifier": c.identifier, "status": c.status, "status_reason": c.status_reason,
         "pmid": c.pmid, "start": c.start, "end": c.end}
        for c in session.exec(stmt).all()
    ]
    return _frame(rows, CITATION_COLUMNS)


def studies(session: Session, *, include_deleted: bool = False) -> pd.DataFrame:
    """Studies with bibliographic fields, design and correction flags.

    Returns
    -------
    DataFrame
        Columns ``STUDY_COLUMNS``; ``publication_types`` and ``mesh`` are ``; ``-joined text
        (MeSH major topics marked with ``*``); ``raw_sha256`` is the sha256 of the raw
        response the row was parsed from.
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
        mesh = "; ".join(
            (m.get("descriptor", "") + ("*" if m.get("major") else "")) for m in s.mesh or []
        )
        rows.append({
            "pmid": s.pmid, "title": s.title, "journal": s.journal, "year": s.pub_year,
            "doi": s.doi, "pmcid": s.pmcid,
            "publication_types": "; ".join(s.publication_types or []), "mesh": mesh,
            "design": s.design, "evidence_level": s.evidence_level,
            "retracted": s.is_retracted, "expression_of_concern": s.has_expression_of_concern,
            "erratum": s.has_erratum, "deleted": s.deleted, "raw_sha256": raw_sha,
            "study_id": s.id,
        })
    return _frame(rows, STUDY_COLUMNS)


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
