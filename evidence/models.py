"""The database schema (SQLModel). Alembic owns it: see ``evidence/migrations``.

Every table has ``created_at`` / ``updated_at``; rows people edit carry a ``version``
column for optimistic concurrency (a stale write is refused, never silently applied).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from evidence.vocabulary import CERTAINTY as CERTAINTY
from evidence.vocabulary import GRADE_DOMAINS as GRADE_DOMAINS
from evidence.vocabulary import RELEVANCE as RELEVANCE
from evidence.vocabulary import SOURCE_KINDS as SOURCE_KINDS
from evidence.vocabulary import STANCES as STANCES


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


# Vocabularies (stored as plain strings so both databases and exports read them as text).
#: ``reopened``: a decided claim sent back to review by surveillance (its evidence changed,
#: or its verdict passed its review-by date); ``claim.reopen_reasons`` says why.
CLAIM_STATUSES = ("unreviewed", "in_review", "disagreement", "final", "reopened")
#: Claims with a final verdict on record (still current, or re-opened for another look).
DECIDED_STATUSES = ("final", "reopened")
CITATION_KINDS = ("pmid", "pmcid", "doi", "web")
CITATION_STATUSES = ("pending", "resolved", "not_scholarly", "not_in_pubmed", "ncbi_error",
                     "unavailable")
#: ``surveillance``: a study surveillance found after the claim was decided.
LINK_ORIGINS = ("cited", "manual", "surveillance", "pubmed", "local")
ROLES = ("viewer", "reviewer", "adjudicator", "admin")
# Who may do what (``crud.acting_user``; admin always passes): write reviews, assessments,
# manual links and claim regrouping; record final verdicts and set a claim's status.
REVIEW_ROLES = ("reviewer", "adjudicator")
ADJUDICATE_ROLES = ("adjudicator",)
ADMIN = "admin"
SUBSTANTIATION = ("substantiated", "partially_substantiated", "unsubstantiated",
                  "contradicted", "not_checkable")
DOMAIN_RATINGS = ("not_serious", "serious", "very_serious")
ACTIONS = ("approve", "revise_wording", "add_reference", "remove")
VERDICT_KINDS = ("review", "final")
#: An ``ingest_run``'s status: ``running`` until it closes as ``ok``, ``partial`` (problems
#: met and skipped), ``error`` (the job stopped on an error) or ``interrupted`` (stopped by
#: a signal, or found still ``running`` after its process died).
RUN_STATUSES = ("running", "ok", "partial", "error", "interrupted")
CLAIM_SOURCE_KINDS = tuple(SOURCE_KINDS)


# Timezone-aware everywhere: PostgreSQL stores UTC instants, SQLite stores UTC wall time.
TZ = DateTime(timezone=True)


class Timestamped(SQLModel):
    """Created/updated timestamps shared by every table."""

    created_at: datetime = Field(default_factory=utcnow, nullable=False, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, nullable=False, sa_type=TZ)


class Versioned(Timestamped):
    """Timestamps plus the optimistic-concurrency counter of editable rows."""

    version: int = Field(default=1, nullable=False)


class IngestRun(Timestamped, table=True):
    """One run of an ingest or link command, with what it did."""

    __tablename__ = "ingest_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40, index=True)
    actor: str = Field(max_length=120)
    started_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    finished_at: datetime | None = Field(default=None, sa_type=TZ)
    status: str = Field(default=RUN_STATUSES[0], max_length=20)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    stats: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    error: str | None = Field(default=None, sa_type=Text)


class Article(Versioned, table=True):
    """One version of a marketing article's text, keyed by source and content hash."""

    __tablename__ = "article"
    __table_args__ = (UniqueConstraint("source", "sha256", name="uq_article_source_sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=2000, index=True)
    title: str = Field(default="", max_length=1000)
    text: str = Field(sa_type=Text)
    sha256: str = Field(max_length=64, index=True)
    content_type: str = Field(default="text/plain", max_length=40)
    fetched_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    revision: int = Field(default=1)
    previous_id: int | None = Field(default=None, foreign_key="article.id", ondelete="SET NULL")
    is_current: bool = Field(default=True, index=True)
    ingest_run_id: int | None = Field(default=None, foreign_key="ingest_run.id",
                                      ondelete="SET NULL")


class CanonicalClaim(Versioned, table=True):
    """A claim statement shared by the claims that repeat it (graded once).

    ``statement`` is readable (the first claim's wording, or a reviewer's); ``key`` is its
    normalised form (stems, no hedges or places) that new claims are compared with.
    """

    __tablename__ = "canonical_claim"

    id: int | None = Field(default=None, primary_key=True)
    statement: str = Field(sa_type=Text)
    key: str = Field(default="", sa_type=Text)
    category: str = Field(default="other", max_length=40, index=True)


class Claim(Versioned, table=True):
    """A check-worthy claim: an exact span ``article.text[start:end]``."""

    __tablename__ = "claim"
    __table_args__ = (
        UniqueConstraint("article_id", "start", "end", name="uq_claim_article_span"),
        Index("ix_claim_status_category", "status", "category"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="article.id", index=True, ondelete="CASCADE")
    start: int
    end: int
    text: str = Field(sa_type=Text)
    category: str = Field(max_length=40, index=True)
    checkworthiness: float = Field(default=0.0)
    cues: list[str] = Field(default_factory=list, sa_type=JSON)
    canonical_id: int | None = Field(default=None, foreign_key="canonical_claim.id",
                                     index=True, ondelete="SET NULL")
    canonical_score: float | None = None
    status: str = Field(default="unreviewed", max_length=20, index=True)
    flags: list[str] = Field(default_factory=list, sa_type=JSON)
    suggested_certainty: str | None = Field(default=None, max_length=20)
    suggestion_reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    suggestion_basis: str = Field(default="metadata", max_length=20)
    # Why surveillance re-opened the claim (``vocabulary.REOPEN_REASONS`` codes with the
    # readable text); emptied when a new final verdict is recorded. History: the audit trail.
    reopen_reasons: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    reopened_at: datetime | None = Field(default=None, sa_type=TZ)


class Citation(Versioned, table=True):
    """A reference an article makes: PubMed/PMC/DOI identifier or a plain web link."""

    __tablename__ = "citation"
    __table_args__ = (
        UniqueConstraint("article_id", "kind", "identifier", name="uq_citation_article_ident"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="article.id", index=True, ondelete="CASCADE")
    raw: str = Field(sa_type=Text)
    kind: str = Field(max_length=10, index=True)
    identifier: str = Field(max_length=2000)
    start: int | None = None
    end: int | None = None
    status: str = Field(default="pending", max_length=20, index=True)
    status_reason: str | None = Field(default=None, sa_type=Text)
    pmid: str | None = Field(default=None, max_length=20, index=True)
    flags: list[str] = Field(default_factory=list, sa_type=JSON)


class RawRecord(Timestamped, table=True):
    """The exact bytes an E-utilities request (or a MEDLINE file) returned, with provenance."""

    __tablename__ = "raw_record"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(default="eutils", max_length=20)  # eutils | medline_file
    utility: str = Field(default="", max_length=40)
    url: str = Field(default="", sa_type=Text)
    method: str = Field(default="GET", max_length=10)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    http_status: int | None = None
    sha256: str = Field(max_length=64, index=True)
    size: int = 0
    compression: str = Field(default="gzip", max_length=10)
    body: bytes = Field(sa_type=LargeBinary)
    retrieved_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Study(Versioned, table=True):
    """A PubMed record, parsed; ``raw_record_id`` points at the bytes it came from."""

    __tablename__ = "study"

    id: int | None = Field(default=None, primary_key=True)
    pmid: str = Field(max_length=20, unique=True, index=True)
    pmid_version: int = 1
    status: str | None = Field(default=None, max_length=40)
    is_book: bool = False
    title: str = Field(default="", sa_type=Text)
    abstract: str = Field(default="", sa_type=Text)
    abstract_sections: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    journal: str | None = Field(default=None, max_length=500)
    iso_abbreviation: str | None = Field(default=None, max_length=200)
    volume: str | None = Field(default=None, max_length=50)
    issue: str | None = Field(default=None, max_length=50)
    pages: str | None = Field(default=None, max_length=100)
    pub_year: int | None = Field(default=None, index=True)
    pub_date: str | None = Field(default=None, max_length=40)
    authors: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    languages: list[str] = Field(default_factory=list, sa_type=JSON)
    publication_types: list[str] = Field(default_factory=list, sa_type=JSON)
    mesh: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    keywords: list[str] = Field(default_factory=list, sa_type=JSON)
    doi: str | None = Field(default=None, max_length=300, index=True)
    pmcid: str | None = Field(default=None, max_length=20, index=True)
    comments_corrections: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    flags: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    is_retracted: bool = Field(default=False, index=True)
    has_expression_of_concern: bool = False
    has_erratum: bool = False
    design: str | None = Field(default=None, max_length=40, index=True)
    evidence_level: str | None = Field(default=None, max_length=10)
    design_rank: int | None = None
    design_reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    deleted: bool = False
    record_sha256: str | None = Field(default=None, max_length=64)
    raw_record_id: int | None = Field(default=None, foreign_key="raw_record.id",
                                      ondelete="SET NULL")


class EvidenceLink(Versioned, table=True):
    """Claim ↔ study, with how it was found, its score, rank and explanation."""

    __tablename__ = "evidence_link"
    __table_args__ = (UniqueConstraint("claim_id", "study_id", name="uq_link_claim_study"),)

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(foreign_key="claim.id", index=True, ondelete="CASCADE")
    study_id: int = Field(foreign_key="study.id", index=True, ondelete="CASCADE")
    origin: str = Field(max_length=20, index=True)
    also_found_by: list[str] = Field(default_factory=list, sa_type=JSON)
    score: float = 0.0
    rank: int | None = None
    explanation: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    indirect: bool = False
    indirectness: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    fits: bool | None = None
    created_by: str = Field(default="system", max_length=120)


class ClaimSource(Versioned, table=True):
    """A non-PubMed source a reviewer attached to a claim: a drug label, a regulatory
    decision, a guideline. Stored, audited and exported like a study link."""

    __tablename__ = "claim_source"

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(foreign_key="claim.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=30)
    url: str = Field(max_length=2000)
    title: str = Field(default="", max_length=1000)
    note: str = Field(default="", sa_type=Text)
    created_by: str = Field(default="system", max_length=120)


class AppUser(Versioned, table=True):
    """A person who uses the app, with a role and an argon2 password hash."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=120, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)
    role: str = Field(default="viewer", max_length=20)
    password_hash: str | None = Field(default=None, max_length=300)
    oidc_subject: str | None = Field(default=None, max_length=300, index=True)
    active: bool = True


class Assessment(Versioned, table=True):
    """One reviewer's reading of one evidence link: stance, relevance, note."""

    __tablename__ = "assessment"
    __table_args__ = (UniqueConstraint("link_id", "reviewer_id", name="uq_assessment_reviewer"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="evidence_link.id", index=True, ondelete="CASCADE")
    reviewer_id: int = Field(foreign_key="app_user.id", index=True)
    stance: str = Field(max_length=30)
    relevance: str = Field(default="medium", max_length=10)
    note: str = Field(default="", sa_type=Text)


class Verdict(Versioned, table=True):
    """A reviewer's (kind ``review``) or the adjudicated (kind ``final``) verdict on a claim."""

    __tablename__ = "verdict"
    __table_args__ = (
        UniqueConstraint("claim_id", "reviewer_id", "kind", name="uq_verdict_claim_reviewer"),
    )

    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(foreign_key="claim.id", index=True, ondelete="CASCADE")
    canonical_claim_id: int | None = Field(default=None, foreign_key="canonical_claim.id",
                                           ondelete="SET NULL")
    reviewer_id: int = Field(foreign_key="app_user.id", index=True)
    kind: str = Field(default="review", max_length=10)
    substantiation: str = Field(max_length=30)
    certainty: str = Field(max_length=20)
    domains: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    suggested_certainty: str | None = Field(default=None, max_length=20)
    suggestion_reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    rationale: str = Field(default="", sa_type=Text)
    action: str = Field(default="approve", max_length=20)
    submitted: bool = True
    # Set when the verdict was applied from another claim's verdict on the same canonical
    # claim (review.apply_verdict_to_group); None for a verdict recorded on this claim.
    applied_from_id: int | None = Field(default=None, foreign_key="verdict.id",
                                        ondelete="SET NULL")


class AuditEvent(Timestamped, table=True):
    """An append-only, hash-chained record of one change. Never updated or deleted."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_entity_row", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=60, index=True)
    entity: str = Field(max_length=40, index=True)
    entity_id: str = Field(max_length=60, index=True)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AppSession(Timestamped, table=True):
    """A browser signed in with a password: the sha256 of its random token, never the token.

    Valid while not revoked and seen within the idle limit (``evidence.auth``).
    """

    __tablename__ = "app_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)
    client: str = Field(default="", max_length=300)


class SignInFailure(Timestamped, table=True):
    """One failed password sign-in, counted by ``evidence.auth`` to throttle guessing.

    Kept apart from the audit trail (which records every failure too) so old rows can be
    pruned; the password is never stored.
    """

    __tablename__ = "sign_in_failure"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=120, index=True)
    client: str = Field(max_length=300, index=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=TZ, index=True)
