"""Evidence surveillance: the rules and the writes, with no network.

``ingest.surveil`` re-fetches the PubMed records behind the claims and hands this module
what it found; here it is decided what changed in each study, which decided claims go back
to review (status ``reopened``, with reasons), which verdicts passed their review-by date,
and which newly found studies are linked with origin ``surveillance``. Every write is
audited with before/after, and all of one run's writes happen in the caller's one
transaction.

Rules
-----
* A study *changed* when, between the stored version and the re-fetched one, it became
  retracted, got a new expression of concern, a new erratum or correction notice, was
  deleted from PubMed, or its title or abstract changed. Other changes (MeSH indexing,
  author details) are stored as a new version but re-open nothing.
* A decided claim (status ``final`` or ``reopened``, of an article's current revision)
  *rests on* a study when its link to the study fits the claim or a reviewer assessed it as
  bearing on it (a stance other than "does not address", a relevance other than "none").
* A final verdict must be reviewed again ``VERDICT_REVIEW_MONTHS`` after it was recorded
  (``review_by``); surveillance re-opens an older one with reason ``expired``.
* A claim is re-opened once per reason: a second run over the same change adds nothing.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from evidence import audit, crud
from evidence.grading import article_context
from evidence.linking import addresses, refresh_claim_derived
from evidence.models import (
    DECIDED_STATUSES,
    Article,
    Assessment,
    Claim,
    EvidenceLink,
    Study,
    Verdict,
    utcnow,
)
from evidence.vocabulary import (
    ALERT_CHANGES,
    META_ANALYSIS,
    RCT,
    REOPEN_REASONS,
    STUDY_CHANGES,
    SYSTEMATIC_REVIEW,
)

#: Designs surveillance links as new evidence for a decided claim.
NEW_EVIDENCE_DESIGNS: tuple[str, ...] = (META_ANALYSIS, SYSTEMATIC_REVIEW, RCT)
ORIGIN = "surveillance"

# CommentsCorrections RefTypes (lower case) that announce a notice about the record.
_NOTICE_REFTYPES: dict[str, str] = {
    "retractionin": "retracted",
    "retractedandrepublishedin": "retracted",
    "expressionofconcernin": "expression_of_concern",
    "erratumin": "erratum",
    "correctedandrepublishedin": "erratum",
}
_STANCE_WORDS = {"supports": "supporting", "partially_supports": "partly supporting",
                 "contradicts": "contradicting", "does_not_address": "not addressing"}


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class StudyChange:
    """What changed in one linked study between its stored and its re-fetched version.

    ``changes`` are ``vocabulary.STUDY_CHANGES`` codes; ``notices`` the new notices
    (``{"code", "pmid", "source"}``) behind them, as PubMed names them.
    """

    pmid: str
    study_id: int
    changes: tuple[str, ...]
    notices: tuple[dict[str, str | None], ...] = ()

    @property
    def alert(self) -> bool:
        """Whether the change needs attention on its own (retraction, concern)."""
        return any(c in ALERT_CHANGES for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"pmid": self.pmid, "study_id": self.study_id, "changes": list(self.changes),
                "notices": [dict(n) for n in self.notices]}


def _notices(values: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, str | None]]:
    found: dict[tuple[str, str], dict[str, str | None]] = {}
    for cc in values.get("comments_corrections") or []:
        code = _NOTICE_REFTYPES.get(str(cc.get("ref_type") or "").lower())
        if code is None:
            continue
        key = (code, str(cc.get("pmid") or cc.get("ref_source") or ""))
        found[key] = {"code": code, "pmid": cc.get("pmid"), "source": cc.get("ref_source")}
    return found


def _norm(text: Any) -> str:
    return " ".join(str(text or "").split())


def compare(before: Mapping[str, Any], after: Mapping[str, Any] | None
            ) -> tuple[tuple[str, ...], tuple[dict[str, str | None], ...]]:
    """The surveillance changes between a study's stored and re-fetched column values.

    Parameters
    ----------
    before
        The stored study's values (``is_retracted``, ``has_expression_of_concern``,
        ``has_erratum``, ``comments_corrections``, ``title``, ``abstract``, ``deleted``).
    after
        The re-fetched record's values (``ingest.load.study_values``), or ``None`` when
        PubMed no longer has the record.

    Returns
    -------
    (changes, notices)
        ``STUDY_CHANGES`` codes in vocabulary order, and the new notices behind them.
    """
    if after is None:
        return (() if before.get("deleted") else ("deleted",)), ()
    found: set[str] = set()
    old, new = _notices(before), _notices(after)
    fresh = [n for key, n in new.items() if key not in old]
    for n in fresh:
        found.add(str(n["code"]))
    if after.get("is_retracted") and not before.get("is_retracted"):
        found.add("retracted")
    if after.get("has_expression_of_concern") and not before.get("has_expression_of_concern"):
        found.add("expression_of_concern")
    if after.get("has_erratum") and not before.get("has_erratum"):
        found.add("erratum")
    if (_norm(after.get("title")) != _norm(before.get("title"))
            or _norm(after.get("abstract")) != _norm(before.get("abstract"))):
        found.add("changed")
    # A record PubMed had deleted and serves again is not news for a claim.
    codes = tuple(c for c in STUDY_CHANGES if c in found)
    return codes, tuple(fresh)


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months (the 31st becomes the month's last day)."""
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def review_by(decided_at: datetime, months: int) -> datetime:
    """The date a final verdict recorded at ``decided_at`` must be reviewed again by."""
    return add_months(_aware(decided_at), months)


def _day(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).date().isoformat()


def _stance_words(stances: Sequence[str]) -> str:
    if not stances:
        return "it was linked evidence no reviewer had assessed"
    counts: dict[str, int] = {}
    for s in stances:
        counts[s] = counts.get(s, 0) + 1
    if len(counts) == 1:
        word = _STANCE_WORDS.get(next(iter(counts)), next(iter(counts)))
        return f"it was {word} evidence"
    parts = [f"{_STANCE_WORDS.get(s, s)} ({n})" for s, n in counts.items()]
    return "reviewers read it as " + ", ".join(parts)


def reason_text(change: str, pmid: str, *, detected: datetime,
                notices: Sequence[Mapping[str, str | None]] = (),
                stances: Sequence[str] = ()) -> str:
    """The reviewer-facing reason a study change re-opens a claim.

    Example: ``PMID 123 retracted (notice PMID 456: Nature. 2026 May 2), found on
    2026-12-02; it was supporting evidence``.
    """
    verb = {"retracted": "retracted", "expression_of_concern": "under an expression of "
            "concern", "erratum": "corrected (erratum)", "deleted": "deleted from PubMed",
            "changed": "title or abstract changed"}[change]
    notice = next((n for n in notices if n.get("code") == change), None)
    about = ""
    if notice is not None:
        bits = [f"notice PMID {notice['pmid']}" if notice.get("pmid") else "notice",
                str(notice.get("source") or "").strip()]
        about = " (" + ": ".join(b for b in bits if b) + ")"
    return (f"PMID {pmid} {verb}{about}, found on {_day(detected)}; "
            f"{_stance_words(stances)}")


# --------------------------------------------------------------------------- writes


@dataclass
class Reopening:
    """One claim surveillance re-opened (or gave another reason), with the new reasons."""

    claim_id: int
    reasons: list[dict[str, Any]] = field(default_factory=list)
    was: str = "final"

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"claim_id": self.claim_id, "was": self.was,
                "reasons": [dict(r) for r in self.reasons]}


def _reopen(session: Session, claim_id: int, reasons: list[dict[str, Any]], *, actor: str,
            now: datetime) -> Reopening | None:
    claim = session.exec(select(Claim).where(col(Claim.id) == claim_id).with_for_update()
                         .execution_options(populate_existing=True)).first()
    if claim is None or claim.status not in DECIDED_STATUSES:
        return None
    have = {(r.get("code"), r.get("pmid")) for r in claim.reopen_reasons or []}
    new = [r for r in reasons if (r.get("code"), r.get("pmid")) not in have]
    if not new:
        return None  # already re-opened for exactly this: idempotent
    was = claim.status
    changes: dict[str, Any] = {"status": "reopened",
                               "reopen_reasons": [*(claim.reopen_reasons or []), *new]}
    if claim.reopened_at is None or was != "reopened":
        changes["reopened_at"] = now
    crud.update_versioned(session, Claim, claim_id, expected_version=claim.version,
                          changes=changes, actor=actor, action="claim.reopen")
    return Reopening(claim_id=claim_id, reasons=new, was=was)


def reopen_for_changes(session: Session, changes: Sequence[StudyChange], *, actor: str,
                       now: datetime | None = None) -> tuple[list[Reopening], list[int]]:
    """Re-open the decided claims that rest on changed studies; refresh every linked claim.

    Every claim linked to a changed study gets its flags (``retracted_evidence``) and
    suggested certainty recomputed at once, decided or not; a retracted study stops
    counting.

    Returns
    -------
    (reopenings, refreshed)
        The claims re-opened (or given another reason) and the ids of all claims whose
        derived fields were recomputed.
    """
    now = now or utcnow()
    by_study = {c.study_id: c for c in changes if c.changes}
    if not by_study:
        return [], []
    links = list(session.exec(select(EvidenceLink).where(
        col(EvidenceLink.study_id).in_(list(by_study)))).all())
    stances: dict[int, list[str]] = {}
    bears: dict[int, bool] = {}
    link_ids = [ln.id for ln in links if ln.id is not None]
    for chunk in crud.chunked(link_ids, 500):
        for link_id, stance, rel in session.exec(
            select(Assessment.link_id, Assessment.stance, Assessment.relevance)
            .where(col(Assessment.link_id).in_(chunk)).order_by(col(Assessment.id))
        ).all():
            stances.setdefault(link_id, []).append(stance)
            if stance != "does_not_address" and rel != "none":
                bears[link_id] = True
    claim_ids = sorted({ln.claim_id for ln in links})
    # Claims of superseded article revisions are history: refreshed, never re-opened.
    status = dict(session.exec(
        select(Claim.id, Claim.status).join(Article, col(Article.id) == col(Claim.article_id))
        .where(col(Claim.id).in_(claim_ids), col(Article.is_current))).all()) if claim_ids else {}
    wanted: dict[int, list[dict[str, Any]]] = {}
    for ln in sorted(links, key=lambda x: (x.claim_id, x.id or 0)):
        if status.get(ln.claim_id) not in DECIDED_STATUSES:
            continue
        if not (ln.fits or bears.get(ln.id or -1)):
            continue
        change = by_study[ln.study_id]
        for code in change.changes:
            wanted.setdefault(ln.claim_id, []).append({
                "code": code, "pmid": change.pmid, "at": now.isoformat(),
                "text": reason_text(code, change.pmid, detected=now, notices=change.notices,
                                    stances=stances.get(ln.id or -1, [])),
            })
    reopened = [r for cid, reasons in wanted.items()
                if (r := _reopen(session, cid, reasons, actor=actor, now=now)) is not None]
    for cid in claim_ids:
        refresh_claim_derived(session, cid, actor=actor)
    return reopened, claim_ids


def expire_verdicts(session: Session, *, months: int, actor: str,
                    now: datetime | None = None) -> list[Reopening]:
    """Re-open every final claim whose final verdict is past its review-by date.

    The review-by date is ``review_by(verdict recorded, months)``; recording the final
    verdict again starts a new period.
    """
    now = now or utcnow()
    out: list[Reopening] = []
    rows = session.exec(
        select(Claim.id, Verdict.updated_at)
        .join(Verdict, col(Verdict.claim_id) == col(Claim.id))
        .join(Article, col(Article.id) == col(Claim.article_id))
        .where(col(Claim.status) == "final", col(Verdict.kind) == "final",
               col(Verdict.submitted), col(Article.is_current))
        .order_by(col(Claim.id))
    ).all()
    for claim_id, decided in rows:
        due = review_by(decided, months)
        if due > _aware(now):
            continue
        assert claim_id is not None
        reason = {"code": "expired", "pmid": None, "at": now.isoformat(),
                  "text": f"final verdict of {_day(decided)} passed its review-by date "
                          f"{_day(due)} ({months} months)"}
        r = _reopen(session, claim_id, [reason], actor=actor, now=now)
        if r is not None:
            out.append(r)
    return out


def decided_groups(session: Session) -> dict[int, datetime]:
    """Canonical claims with a decided claim, each with its latest final verdict's time."""
    found: dict[int, datetime] = {}
    for canonical_id, decided in session.exec(
        select(Claim.canonical_id, Verdict.updated_at)
        .join(Verdict, col(Verdict.claim_id) == col(Claim.id))
        .join(Article, col(Article.id) == col(Claim.article_id))
        .where(col(Claim.status).in_(DECIDED_STATUSES), col(Verdict.kind) == "final",
               col(Claim.canonical_id).is_not(None), col(Article.is_current))
    ).all():
        if canonical_id is None:
            continue
        moment = _aware(decided)
        if canonical_id not in found or moment > found[canonical_id]:
            found[canonical_id] = moment
    return found


@dataclass(frozen=True)
class NewLink:
    """A study surveillance linked to a decided claim."""

    claim_id: int
    pmid: str
    design: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"claim_id": self.claim_id, "pmid": self.pmid, "design": self.design}


def link_new_evidence(session: Session, found: Mapping[int, Iterable[str]], *,
                      actor: str) -> list[NewLink]:
    """Link newly found studies to the decided claims of each canonical claim they fit.

    Parameters
    ----------
    found
        Canonical claim id -> PMIDs found since the last surveillance (stored already).

    Only systematic reviews, meta-analyses and randomised trials that are not retracted
    or deleted, and that fit the claim by the linking step's rules
    (``linking.addresses``), are linked, with origin ``surveillance``; each claim given
    one is flagged ``new_evidence`` until a reviewer assesses it.
    """
    made: list[NewLink] = []
    touched: set[int] = set()
    for canonical_id, pmids in sorted(found.items()):
        wanted = sorted(set(pmids))
        if not wanted:
            continue
        studies = [s for s in session.exec(select(Study).where(col(Study.pmid).in_(wanted))
                                           ).all()
                   if s.design in NEW_EVIDENCE_DESIGNS and not s.is_retracted
                   and not s.deleted]
        if not studies:
            continue
        claims = session.exec(
            select(Claim, Article).join(Article, col(Article.id) == col(Claim.article_id))
            .where(col(Claim.canonical_id) == canonical_id,
                   col(Claim.status).in_(DECIDED_STATUSES), col(Article.is_current))
            .order_by(col(Claim.id))
        ).all()
        for claim, article in claims:
            assert claim.id is not None
            linked = set(session.exec(select(EvidenceLink.study_id).where(
                EvidenceLink.claim_id == claim.id)).all())
            context = article_context(article.text)
            for study in studies:
                assert study.id is not None
                if study.id in linked:
                    continue
                fits, explanation, indirectness = addresses(
                    claim.text, study, context=context, category=claim.category)
                if not fits:
                    continue
                link = EvidenceLink(
                    claim_id=claim.id, study_id=study.id, origin=ORIGIN, fits=True,
                    explanation=explanation, indirectness=indirectness,
                    indirect=bool(indirectness.get("indirect")), created_by=actor)
                session.add(link)
                session.flush()
                audit.record(session, actor=actor, action="link.surveillance",
                             entity="claim", entity_id=claim.id,
                             after={"link_id": link.id, "pmid": study.pmid,
                                    "design": study.design, "origin": ORIGIN})
                made.append(NewLink(claim.id, study.pmid, str(study.design)))
                touched.add(claim.id)
    for cid in sorted(touched):
        refresh_claim_derived(session, cid, actor=actor)
    return made


__all__ = ["NEW_EVIDENCE_DESIGNS", "REOPEN_REASONS", "NewLink", "Reopening", "StudyChange",
           "add_months", "compare", "decided_groups", "expire_verdicts", "link_new_evidence",
           "reason_text", "reopen_for_changes", "review_by"]
