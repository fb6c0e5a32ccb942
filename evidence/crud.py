"""Writes: every function takes keyword-only arguments and a ``Session``, and audits.

Each mutation appends an audit event in the same transaction; edits of versioned rows are
compare-and-swap on ``version`` so a stale write is refused with ``StaleWrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlmodel import Session, SQLModel, col, select

from evidence import audit, library
from evidence.errors import InputError, NotFound, PermissionDenied, StaleWrite
from evidence.models import (
    ROLES,
    AppUser,
    Article,
    CanonicalClaim,
    Citation,
    Claim,
    IngestRun,
    utcnow,
)
from ingest.articles import ParsedArticle
from ingest.citations import extract_citations, is_scholarly
from ingest.claims import extract_claims

T = TypeVar("T", bound=SQLModel)

SYSTEM = "system"
MIN_PASSWORD = 8

_hasher = PasswordHasher()


# --------------------------------------------------------------------------- generic


def update_versioned(
    session: Session,
    model: type[T],
    row_id: int,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: str,
    action: str,
) -> T:
    """Apply ``changes`` to one row only if it is still at ``expected_version``.

    Parameters
    ----------
    session
        The session carrying the transaction.
    model, row_id
        The table class and the row's id.
    expected_version
        The version the editor read; the write is refused if the row has moved on.
    changes
        Column values to set.
    actor, action
        Recorded in the audit event with the row's before/after snapshots.

    Returns
    -------
    The refreshed row.

    Raises
    ------
    NotFound
        No such row.
    StaleWrite
        Someone else saved the row since ``expected_version``; ``current`` holds their values.
    """
    table: Any = model
    name = str(table.__tablename__)
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{name} {row_id} does not exist")
    before = audit.snapshot(row)
    stmt = (
        update(table)
        .where(table.id == row_id, table.version == expected_version)
        .values(**changes, version=expected_version + 1, updated_at=utcnow())
    )
    result: Any = session.execute(stmt)
    session.refresh(row)
    if result.rowcount == 0:
        current = audit.snapshot(row)
        raise StaleWrite(
            f"{name} {row_id} was changed by someone else "
            f"(you edited version {expected_version}, it is now version {current.get('version')})",
            current=current,
        )
    audit.record(session, actor=actor, action=action,
                 entity=name, entity_id=row_id,
                 before=before, after=audit.snapshot(row))
    return row


def start_run(session: Session, *, kind: str, actor: str, params: dict[str, Any]) -> IngestRun:
    """Open an ``ingest_run`` row for a command's run."""
    run = IngestRun(kind=kind, actor=actor, params=params)
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, *, run: IngestRun, stats: dict[str, Any],
               status: str = "ok", error: str | None = None) -> IngestRun:
    """Close an ``ingest_run`` row with its statistics, and audit the run."""
    run.finished_at = utcnow()
    run.stats = stats
    run.status = status
    run.error = error
    run.updated_at = utcnow()
    session.add(run)
    session.flush()
    audit.record(session, actor=run.actor, action=f"run.{run.kind}", entity="ingest_run",
                 entity_id=run.id, after=audit.snapshot(run))
    return run


# --------------------------------------------------------------------------- articles


@dataclass(frozen=True)
class ArticleIngestResult:
    """What ingesting one document did."""

    article: Article
    status: str  # new | unchanged | new_version
    claims: int
    citations: int


def ingest_article(
    *, session: Session, parsed: ParsedArticle, actor: str = SYSTEM, run_id: int | None = None
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
        update_versioned(session, Article, previous.id, expected_version=previous.version,
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


def regroup_claim(
    *, session: Session, claim_id: int, canonical_id: int | None, expected_version: int,
    actor: str, new_statement: str | None = None,
) -> Claim:
    """Move a claim to another canonical claim (or a new one with ``new_statement``).

    Parameters
    ----------
    session
        Open session; the caller commits.
    claim_id
        The claim moved.
    canonical_id
        The canonical claim it joins; ``None`` starts a new one (a split).
    expected_version
        The claim's version the caller showed; a stale write is refused.
    actor
        Recorded in the audit trail.
    new_statement
        The new canonical claim's wording (default: the claim's).

    Returns
    -------
    Claim
        The moved claim, with its similarity to the new canonical claim.

    Raises
    ------
    NotFound
        No such claim or canonical claim.
    StaleWrite
        The claim changed since ``expected_version``.
    """
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    subjects = library.claim_subjects(session, claim)
    if canonical_id is None:
        cc = library.new_canonical(new_statement or claim.text, category=claim.category,
                                   subjects=subjects)
        session.add(cc)
        session.flush()
        audit.record(session, actor=actor, action="canonical.create", entity="canonical_claim",
                     entity_id=cc.id, after=audit.snapshot(cc))
        canonical_id = cc.id
    elif session.get(CanonicalClaim, canonical_id) is None:
        raise NotFound(f"canonical claim {canonical_id} does not exist")
    target = session.get(CanonicalClaim, canonical_id)
    assert target is not None
    score = library.regroup_score(claim.text, target, subjects=subjects)
    return update_versioned(session, Claim, claim_id, expected_version=expected_version,
                            changes={"canonical_id": canonical_id, "canonical_score": score},
                            actor=actor, action="claim.regroup")


def edit_claim(*, session: Session, claim_id: int, expected_version: int, actor: str,
               category: str | None = None, status: str | None = None) -> Claim:
    """Change a claim's category or status (versioned, audited)."""
    changes: dict[str, Any] = {}
    if category is not None:
        changes["category"] = category
    if status is not None:
        changes["status"] = status
    return update_versioned(session, Claim, claim_id, expected_version=expected_version,
                            changes=changes, actor=actor, action="claim.edit")


# --------------------------------------------------------------------------- users


def hash_password(password: str) -> str:
    """argon2id hash of a password."""
    return _hasher.hash(password)


def add_user(*, session: Session, username: str, role: str, password: str | None,
             actor: str = SYSTEM, display_name: str = "") -> AppUser:
    """Create a user.

    Raises
    ------
    InputError
        Unknown role, empty name, the username is taken, or a password shorter than
        ``MIN_PASSWORD`` characters (``None``: a single-sign-on user without a password).
    """
    username = username.strip()
    if not username:
        raise InputError("a username is required")
    if password is not None and len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if session.exec(select(AppUser).where(AppUser.username == username)).first():
        raise InputError(f"user {username!r} already exists")
    user = AppUser(username=username, role=role, display_name=display_name or username,
                   password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    audit.record(session, actor=actor, action="user.add", entity="app_user",
                 entity_id=user.id, after=audit.snapshot(user))
    return user


def set_user_role(*, session: Session, user_id: int, role: str, expected_version: int,
                  actor: AppUser) -> AppUser:
    """Change a user's role (admins only)."""
    require_role(actor, "admin")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return update_versioned(session, AppUser, user_id, expected_version=expected_version,
                            changes={"role": role}, actor=actor.username, action="user.role")


def authenticate(*, session: Session, username: str, password: str) -> AppUser | None:
    """The active user with this name and password, or ``None``."""
    user = session.exec(select(AppUser).where(AppUser.username == username.strip())).first()
    if user is None or not user.active or not user.password_hash:
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def require_role(user: AppUser | None, *allowed: str) -> AppUser:
    """Return ``user`` if its role is one of ``allowed`` (admin always passes).

    Raises
    ------
    PermissionDenied
        No signed-in user, or the role does not allow the action.
    """
    if user is None:
        raise PermissionDenied("sign in first")
    if user.role == "admin" or user.role in allowed:
        return user
    raise PermissionDenied(
        f"{user.username} is a {user.role}; this needs the role {' or '.join(allowed)}"
    )


def count_users(session: Session) -> int:
    """How many users exist."""
    return len(session.exec(select(AppUser.id)).all())


def chunked(items: Sequence[Any] | Iterable[Any], size: int = 500) -> Iterable[list[Any]]:
    """Split ``items`` into lists of at most ``size`` (SQLite's parameter limit)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
