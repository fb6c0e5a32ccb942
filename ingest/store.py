"""Storing an article with the claims and citations found in it.

The ingest side of the database: read text comes in (``ingest.articles``), claims
(``ingest.claims``) and citations (``ingest.citations``) are extracted from it, and all of it
is written through ``evidence``'s storage (``crud``, ``audit``), each row audited in the
caller's transaction. Claims join the claim library (``library.assign_canonical``) as they are
stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from evidence import audit, crud, library
from evidence.errors import InputError
from evidence.models import Article, Citation, Claim
from ingest.articles import ParsedArticle
from ingest.citations import extract_citations, is_scholarly
from ingest.claims import extract_claims


@dataclass(frozen=True)
class ArticleIngestResult:
    """What ingesting one document did."""

    article: Article
    status: str  # new | unchanged | new_version
    claims: int
    citations: int


def store_article(
    *, session: Session, parsed: ParsedArticle, actor: str = crud.SYSTEM,
    run_id: int | None = None,
) -> ArticleIngestResult:
    """Store an article with its claims and citations.

    The same content at the same source again is a no-op. Changed content at a known source
    becomes a new revision linked to the previous one; the previous revision, its claims and
    any reviews of them stay untouched.

    Parameters
    ----------
    session
        Open session (the caller commits).
    parsed
        The document as read by ``ingest.articles``.
    actor
        Recorded in the audit trail.
    run_id
        The ``ingest_run`` this belongs to.

    Returns
    -------
    ArticleIngestResult

    Raises
    ------
    InputError
        The document has no text.
    """
    if not parsed.text.strip():
        raise InputError(f"{parsed.source}: the article is empty")
    same = session.exec(
        select(Article).where(Article.source == parsed.source, Article.sha256 == parsed.sha256)
    ).first()
    if same is not None:
        return ArticleIngestResult(same, "unchanged", 0, 0)
    previous = session.exec(
        select(Article).where(Article.source == parsed.source, col(Article.is_current))
    ).first()
    article = Article(
        source=parsed.source,
        title=parsed.title,
        text=parsed.text,
        sha256=parsed.sha256,
        content_type=parsed.content_type,
        revision=(previous.revision + 1) if previous else 1,
        previous_id=previous.id if previous else None,
        ingest_run_id=run_id,
    )
    if previous is not None:
        assert previous.id is not None
        crud.update_versioned(session, Article, previous.id, expected_version=previous.version,
                         changes={"is_current": False}, actor=actor, action="article.supersede")
    session.add(article)
    session.flush()
    audit.record(session, actor=actor, action="article.ingest", entity="article",
                 entity_id=article.id, after=audit.snapshot(article))
    n_claims = _add_claims(session, article=article, actor=actor)
    n_cites = _add_citations(session, article=article, parsed=parsed, actor=actor)
    return ArticleIngestResult(article, "new_version" if previous else "new", n_claims, n_cites)


def _add_claims(session: Session, *, article: Article, actor: str) -> int:
    assert article.id is not None
    candidates = extract_claims(article.text)
    claims: list[Claim] = []
    for cand in candidates:
        if article.text[cand.start:cand.end] != cand.text:
            raise InputError(f"claim span {cand.start}:{cand.end} does not match the text")
        claim = Claim(article_id=article.id, start=cand.start, end=cand.end, text=cand.text,
                      category=cand.category, checkworthiness=cand.checkworthiness,
                      cues=list(cand.cues))
        session.add(claim)
        claims.append(claim)
    session.flush()
    library.assign_canonical(session=session, claims=claims, actor=actor)
    for claim in claims:
        audit.record(session, actor=actor, action="claim.extract", entity="claim",
                     entity_id=claim.id, after=audit.snapshot(claim))
    return len(claims)


def _add_citations(session: Session, *, article: Article, parsed: ParsedArticle,
                   actor: str) -> int:
    assert article.id is not None
    n = 0
    for cand in extract_citations(parsed.text, parsed.links):
        scholarly = is_scholarly(cand.kind)
        cit = Citation(
            article_id=article.id, raw=cand.raw, kind=cand.kind, identifier=cand.identifier,
            start=cand.start, end=cand.end,
            status="pending" if scholarly else "not_scholarly",
            status_reason=None if scholarly else "web link: not a scholarly source, not evidence",
            pmid=cand.identifier if cand.kind == "pmid" else None,
        )
        session.add(cit)
        session.flush()
        audit.record(session, actor=actor, action="citation.extract", entity="citation",
                     entity_id=cit.id, after=audit.snapshot(cit))
        n += 1
    return n
