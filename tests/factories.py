"""Factories that write rows through the models, shared by every test.

Each ``make_*`` adds one row to ``session``, flushes it (so it has an id) and returns it;
the caller commits. Defaults are realistic enough that a row made with no arguments is
valid; pass keyword arguments for what a test is about.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session

from evidence import crud, surveillance
from evidence.models import (
    AppUser,
    Article,
    Assessment,
    CanonicalClaim,
    Claim,
    EvidenceLink,
    Study,
    Verdict,
)

# Unique per process too, so factories can add to a database another process seeded.
_seq = itertools.count(1 + uuid.uuid4().int % 10**6 * 100)
#: Default PMIDs start here: a factory-made study must never carry a real PubMed id.
SYNTHETIC_PMID_BASE = 90_000_000
_hashes: dict[str, str] = {}  # argon2 is slow on purpose; hash each test password once


def _hash(password: str) -> str:
    if password not in _hashes:
        _hashes[password] = crud.hash_password(password)
    return _hashes[password]

ARTICLE_TEXT = (
    "Ketamine therapy for depression\n"
    "\n"
    "Many patients feel relief within hours of their first infusion. "
    "Ketamine has a high success rate for treatment-resistant depression.\n"
    "\n"
    "Side effects are minimal and pass quickly.\n"
)
CLAIM_SENTENCE = "Many patients feel relief within hours of their first infusion."


def make_article(
    session: Session,
    *,
    text: str = ARTICLE_TEXT,
    title: str = "Ketamine therapy for depression",
    source: str | None = None,
    **fields: Any,
) -> Article:
    """An article (current revision) with ``text``."""
    n = next(_seq)
    article = Article(
        source=source or f"https://clinic.example/blog/post-{n}",
        title=title,
        text=text,
        sha256=hashlib.sha256(f"{n}:{text}".encode()).hexdigest(),
        **fields,
    )
    session.add(article)
    session.flush()
    return article


def make_canonical(session: Session, *, statement: str = "ketamine relieves depression "
                   "within hours", category: str = "efficacy") -> CanonicalClaim:
    """A canonical claim."""
    cc = CanonicalClaim(statement=statement, category=category)
    session.add(cc)
    session.flush()
    return cc


def make_claim(
    session: Session,
    *,
    article: Article | None = None,
    sentence: str = CLAIM_SENTENCE,
    category: str = "efficacy",
    checkworthiness: float = 0.8,
    **fields: Any,
) -> Claim:
    """A claim whose span is the first occurrence of ``sentence`` in the article's text.

    Without an ``article`` a new one is made; if the sentence is not in its text, it is
    appended as a paragraph of its own.
    """
    if article is None:
        text = ARTICLE_TEXT if sentence in ARTICLE_TEXT else f"{ARTICLE_TEXT}\n{sentence}\n"
        article = make_article(session, text=text)
    start = article.text.find(sentence)
    if start < 0:
        raise ValueError(f"sentence not in article {article.id}: {sentence!r}")
    assert article.id is not None
    claim = Claim(article_id=article.id, start=start, end=start + len(sentence),
                  text=sentence, category=category, checkworthiness=checkworthiness, **fields)
    session.add(claim)
    session.flush()
    return claim


def make_study(
    session: Session,
    *,
    pmid: str | None = None,
    title: str = "Rapid antidepressant effects of ketamine: a randomized controlled trial",
    abstract: str = (
        "Background: Depression is common. Methods: We randomised 60 adults. "
        "Results: Ketamine reduced depressive symptoms within 24 hours compared with "
        "placebo. Conclusions: Ketamine has rapid antidepressant effects."
    ),
    design: str | None = "rct",
    evidence_level: str | None = "1b",
    design_rank: int | None = 90,
    **fields: Any,
) -> Study:
    """A PubMed study record."""
    n = next(_seq)
    fields.setdefault("journal", "Journal of Affective Disorders")
    fields.setdefault("pub_year", 2020)
    study = Study(pmid=pmid or str(SYNTHETIC_PMID_BASE + n), title=title, abstract=abstract,
                  design=design, evidence_level=evidence_level, design_rank=design_rank,
                  **fields)
    session.add(study)
    session.flush()
    return study


def make_link(
    session: Session,
    *,
    claim: Claim,
    study: Study | None = None,
    origin: str = "cited",
    score: float = 10.0,
    rank: int | None = 1,
    fits: bool | None = True,
    **fields: Any,
) -> EvidenceLink:
    """An evidence link between ``claim`` and ``study`` (a new study if none is given);
    a fitting one unless ``fits`` says otherwise."""
    study = study or make_study(session)
    assert claim.id is not None and study.id is not None
    link = EvidenceLink(claim_id=claim.id, study_id=study.id, origin=origin, score=score,
                        rank=rank, fits=fits, **fields)
    session.add(link)
    session.flush()
    return link


def make_user(
    session: Session,
    *,
    username: str | None = None,
    role: str = "reviewer",
    password: str | None = "correct horse battery",
) -> AppUser:
    """A user with an argon2-hashed password (``None``: no password, SSO only)."""
    user = AppUser(
        username=username or f"user{next(_seq)}",
        role=role,
        display_name=username or "",
        password_hash=_hash(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def make_verdict(
    session: Session,
    *,
    claim: Claim,
    reviewer: AppUser,
    substantiation: str = "substantiated",
    certainty: str = "moderate",
    kind: str = "review",
    **fields: Any,
) -> Verdict:
    """A verdict row written directly (no workflow rules; use ``review.save_verdict`` for those)."""
    assert claim.id is not None and reviewer.id is not None
    verdict = Verdict(claim_id=claim.id, reviewer_id=reviewer.id, kind=kind,
                      substantiation=substantiation, certainty=certainty, **fields)
    session.add(verdict)
    session.flush()
    return verdict


def make_assessment(
    session: Session,
    *,
    link: EvidenceLink,
    reviewer: AppUser,
    stance: str = "supports",
    relevance: str = "high",
    note: str = "",
) -> Assessment:
    """An assessment row written directly."""
    assert link.id is not None and reviewer.id is not None
    a = Assessment(link_id=link.id, reviewer_id=reviewer.id, stance=stance,
                   relevance=relevance, note=note)
    session.add(a)
    session.flush()
    return a


def reopen_by_surveillance(
    session: Session,
    *,
    claims: list[Claim],
    adjudicator: AppUser,
    notice_source: str = "Nature. 2026 May 2",
    now: datetime | None = None,
) -> list[surveillance.Reopening]:
    """Decide each claim (final verdict, a fitting linked study), then re-open it the way
    surveillance does when it finds that study retracted (``reopen_for_changes``)."""
    changes = []
    for claim in claims:
        claim.status = "final"
        session.add(claim)
        make_verdict(session, claim=claim, reviewer=adjudicator, kind="final")
        study = make_study(session)
        make_link(session, claim=claim, study=study, rank=None)
        assert study.id is not None
        changes.append(surveillance.StudyChange(
            pmid=study.pmid, study_id=study.id, changes=("retracted",),
            notices=({"code": "retracted", "pmid": "90000499", "source": notice_source},)))
    reopened, _ = surveillance.reopen_for_changes(session, changes, actor="surveil", now=now)
    return reopened
