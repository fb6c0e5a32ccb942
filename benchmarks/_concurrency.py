"""Concurrent reviewers on shared claims: count what was applied, refused and lost.

:func:`review_race` runs writers, each with its own engine, that save assessments and
verdicts through ``evidence.review`` (``save_assessment`` / ``save_verdict``, each with the
``expected_version`` a form would have shown) on a few claims that several writers edit as
the same reviewers, so writes overlap and many are stale. It then compares the database with
what each writer was told, and verifies the audit trail. The tests and the reliability
benchmark both call it.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from evidence import audit, db, review
from evidence.errors import DatabaseBusy, StaleWrite
from evidence.models import AppUser, Article, Assessment, Claim, EvidenceLink, Study, Verdict

#: Hand-made studies use PMIDs from here on (never a real PubMed record).
PMID_BASE = 90_000_000
CLAIM_TEXT = "Ketamine relieves depression within hours."


@dataclass
class RaceCount:
    """What a :func:`review_race` did.

    ``attempted == applied + refused_stale + locked + other_errors``; ``lost`` counts applied
    writes the final database does not reflect (it must be 0), ``audit_ok`` whether
    ``evidence.audit.verify`` passed afterwards.
    """

    attempted: int = 0
    applied: int = 0
    refused_stale: int = 0
    lost: int = 0
    locked: int = 0  # "database is locked" errors (or DB_LOCK_WAIT exceeded) seen
    other_errors: list[str] = field(default_factory=list)
    audit_ok: bool = False
    audit_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def seed_race(engine: Engine, *, claims: int = 3,
              reviewers: int = 2) -> tuple[list[int], list[int]]:
    """Add one article with ``claims`` claims (each linked to a study) and ``reviewers``.

    Returns
    -------
    (link ids, reviewer ids)
    """
    with db.session_scope(engine) as s:
        text = "\n".join(f"{i}. {CLAIM_TEXT}" for i in range(claims))
        article = Article(source=f"race://{random.getrandbits(48):x}", title="race", text=text,
                          sha256=hashlib.sha256(text.encode()).hexdigest())
        s.add(article)
        s.flush()
        assert article.id is not None
        links: list[EvidenceLink] = []
        for i in range(claims):
            start = text.index(f"{i}. ") + len(f"{i}. ")
            claim = Claim(article_id=article.id, start=start, end=start + len(CLAIM_TEXT),
                          text=CLAIM_TEXT, category="efficacy", checkworthiness=0.8)
            study = Study(pmid=str(PMID_BASE + random.getrandbits(20) * 100 + i),
                          title="Ketamine for depression: a randomized trial", design="rct",
                          evidence_level="1b", design_rank=90)
            s.add(claim)
            s.add(study)
            s.flush()
            assert claim.id is not None and study.id is not None
            link = EvidenceLink(claim_id=claim.id, study_id=study.id, origin="cited",
                                score=1.0, rank=1, fits=True)
            s.add(link)
            links.append(link)
        users = [AppUser(username=f"race{random.getrandbits(32):x}{n}", role="reviewer")
                 for n in range(reviewers)]
        for u in users:
            s.add(u)
        s.flush()
        return [k.id for k in links if k.id], [u.id for u in users if u.id]


def review_race(url: str, *, writers: int = 8, writes: int = 1000, claims: int = 3,
                reviewers: int = 2, seed: int = 0) -> RaceCount:
    """Run ``writers`` threads making ``writes`` saves in total, then count the outcome.

    Each write picks a reviewer and an assessment (of a link) or a verdict (on a claim),
    reads the row's current version in a read session, and saves a unique value with that
    ``expected_version`` in its own transaction. The database at ``url`` must have the
    schema; the race adds its own article, claims, studies and reviewers.

    Returns
    -------
    RaceCount
    """
    main = db.make_engine(url)
    link_ids, user_ids = seed_race(main, claims=claims, reviewers=reviewers)
    with db.read_session(main) as s:
        claim_of = {lk.id: lk.claim_id for lk in s.exec(
            select(EvidenceLink).where(EvidenceLink.id.in_(link_ids))).all()}  # type: ignore[union-attr]
        users = {u.id: u for u in s.exec(select(AppUser).where(
            AppUser.id.in_(user_ids))).all()}  # type: ignore[union-attr]
    count = RaceCount()
    applied: dict[tuple[str, int, int], list[tuple[int, str]]] = {}  # row -> (version, value)
    guard = threading.Lock()

    def writer(n: int, share: int) -> None:
        rng = random.Random(seed * 1000 + n)
        engine = db.make_engine(url)
        try:
            for i in range(share):
                kind = rng.choice(("assessment", "verdict"))
                uid = rng.choice(user_ids)
                link_id = rng.choice(link_ids)
                target = link_id if kind == "assessment" else claim_of[link_id]
                value = f"w{n}-{i}"
                outcome, version = _one_write(engine, kind=kind, user=users[uid],
                                              target=target, value=value)
                with guard:
                    count.attempted += 1
                    if outcome == "applied":
                        count.applied += 1
                        applied.setdefault((kind, uid, target), []).append((version, value))
                    elif outcome == "stale":
                        count.refused_stale += 1
                    elif outcome == "locked":
                        count.locked += 1
                    else:
                        count.other_errors.append(outcome)
        finally:
            engine.dispose()

    shares = [writes // writers + (1 if n < writes % writers else 0) for n in range(writers)]
    threads = [threading.Thread(target=writer, args=(n, shares[n])) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count.lost = _lost(main, applied)
    with db.read_session(main) as s:
        result = audit.verify(s)
    count.audit_ok, count.audit_checked = result.ok, result.checked
    main.dispose()
    return count


def _one_write(engine: Engine, *, kind: str, user: AppUser, target: int,
               value: str) -> tuple[str, int]:
    """One save as a form would do it: read the version shown, save with it."""
    try:
        with db.read_session(engine) as s:
            row = _row(s, kind=kind, user_id=user.id, target=target)
            shown = row.version if row is not None else None
        with db.session_scope(engine) as s:
            if kind == "assessment":
                saved: Assessment | Verdict = review.save_assessment(
                    s, user=user, link_id=target, stance="supports", note=value,
                    expected_version=shown)
            else:
                saved = review.save_verdict(
                    s, user=user, claim_id=target, substantiation="substantiated",
                    certainty="moderate", action="approve", rationale=value,
                    expected_version=shown)
            version = saved.version
    except StaleWrite:
        return "stale", 0
    except DatabaseBusy:  # waited longer than DB_LOCK_WAIT: the queue's "database is locked"
        return "locked", 0
    except OperationalError as e:
        if "database is locked" in str(e):
            return "locked", 0
        return f"{type(e).__name__}: {str(e).splitlines()[0]}", 0
    except Exception as e:  # noqa: BLE001  (counted and reported, the race goes on)
        return f"{type(e).__name__}: {e}", 0
    return "applied", version


def _row(s: Session, *, kind: str, user_id: int | None, target: int) -> Assessment | Verdict | None:
    if kind == "assessment":
        return s.exec(select(Assessment).where(Assessment.link_id == target,
                                               Assessment.reviewer_id == user_id)).first()
    return s.exec(select(Verdict).where(Verdict.claim_id == target, Verdict.kind == "review",
                                        Verdict.reviewer_id == user_id)).first()


def _lost(engine: Engine, applied: dict[tuple[str, int, int], list[tuple[int, str]]]) -> int:
    """Applied writes the database does not reflect.

    Every applied write produced its own version of its row (1 on creation, then one more
    per edit), so a row written ``k`` times is at version ``k`` with versions 1..k each told
    to exactly one writer, and holds the value of the write told version ``k``.
    """
    lost = 0
    with db.read_session(engine) as s:
        for (kind, uid, target), done in applied.items():
            row = _row(s, kind=kind, user_id=uid, target=target)
            if row is None:
                lost += len(done)
                continue
            versions = {v for v, _ in done}
            lost += len(done) - len(versions & set(range(1, row.version + 1)))
            last = max(done)[1]
            final = row.note if isinstance(row, Assessment) else row.rationale
            if final != last or row.version != len(done):
                lost += 1
    return lost
