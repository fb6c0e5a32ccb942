"""The review workflow: assessments, verdicts, adjudication, manual links and agreement.

Every write here takes the acting user (an ``AppUser``, of which only the id is read, or a
user id) and checks it with ``crud.acting_user``: the user's role and ``active`` flag are
read from the database in the write's own transaction, so a viewer, a deactivated user or
a forged object is refused with ``PermissionDenied`` whatever the page shows, and a role
changed since the page loaded the user is the one that counts. Each write validates its
input against the vocabularies in ``evidence.models`` and is audited with the user's stored
username as actor in the same transaction.

Edits are optimistic: the caller passes the ``version`` of the row it showed the user
(``None`` when it showed no row). If the row has moved on, or was created meanwhile, the
write is refused with ``StaleWrite`` naming who changed it and to what; nothing is
silently overwritten.

Claim status
------------
A claim's status follows its verdicts (see ``claim_status``)::

    unreviewed --first review--> in_review --reviews differ--> disagreement
                                     |                              |
                                     +--adjudicator's final verdict-+--> final

Two reviews *differ* when their substantiation or their certainty differ. A claim in
``in_review`` with as many reviews as the workflow requires (``required_reviews``: two
under dual independent review, one otherwise) and no disagreement is ready for its final
verdict; ``review_stage`` names these stages for the screens.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from sqlmodel import Session, col, select

from evidence import audit, crud, linking
from evidence.config import Settings, get_settings
from evidence.errors import InputError, NotFound, PermissionDenied, StaleWrite
from evidence.grading import CertaintySuggestion, certainty_departs
from evidence.models import (
    ACTIONS,
    ADJUDICATE_ROLES,
    ADMIN,
    CERTAINTY,
    CLAIM_SOURCE_KINDS,
    DOMAIN_RATINGS,
    GRADE_DOMAINS,
    RELEVANCE,
    REVIEW_ROLES,
    STANCES,
    SUBSTANTIATION,
    AppUser,
    Assessment,
    AuditEvent,
    CanonicalClaim,
    Claim,
    ClaimSource,
    EvidenceLink,
    Study,
    Verdict,
)

# Queue priority = check-worthiness x (1 + the sum of the weights of the claim's flags).
# A claim resting on retracted evidence is twice as urgent as the same claim unflagged; a
# regulatory statement that needs the regulator's record comes next; no fitting citation,
# or no fitting evidence found at all, next (a claim with neither is as urgent as
# retracted evidence); indirect evidence (another population or condition) is the mildest signal.
PRIORITY_FLAG_WEIGHTS: dict[str, float] = {
    "retracted_evidence": 1.0,
    "needs_regulatory_source": 0.75,
    "no_fitting_citation": 0.5,
    "no_evidence": 0.5,
    "indirect_evidence": 0.25,
    "new_evidence": 0.5,
}
FLAG_LABELS: dict[str, str] = {
    "no_fitting_citation": "no fitting citation",
    "needs_regulatory_source": "needs a regulatory source",
    "retracted_evidence": "retracted evidence",
    "indirect_evidence": "indirect evidence",
    "no_evidence": "no fitting evidence",
    "new_evidence": "new evidence",
}
STAGES = ("awaiting review", "awaiting second review", "disagreement", "ready for final",
          "reopened", "final")

# Editable fields shown in a conflict message, in the order a reviewer reads them.
_VERDICT_FIELDS = ("substantiation", "certainty", "domains", "action", "rationale")
_ASSESSMENT_FIELDS = ("stance", "relevance", "note")
_PMID_RE = re.compile(r"^\d{1,9}$")

FetchStudy = Callable[[Session, str], Study | None]
"""A hook that fetches one PMID from PubMed into the ``study`` table, writing through the
session it is given (not a transaction of its own), and returns the row."""


# --------------------------------------------------------------------------- rules


def priority(checkworthiness: float, flags: Iterable[str]) -> float:
    """A claim's place in the review queue (higher first).

    Parameters
    ----------
    checkworthiness
        The claim's check-worthiness, 0-1.
    flags
        The claim's risk flags; the ones in ``PRIORITY_FLAG_WEIGHTS`` raise the priority.

    Returns
    -------
    float
        ``checkworthiness * (1 + sum of the flags' weights)``.
    """
    weight = sum(PRIORITY_FLAG_WEIGHTS.get(f, 0.0) for f in set(flags))
    return checkworthiness * (1.0 + weight)


def required_reviews(settings: Settings | None = None) -> int:
    """How many independent reviews a claim needs before its final verdict (2 or 1)."""
    return 2 if (settings or get_settings()).independent_review else 1


def claim_status(reviews: Sequence[tuple[str, str]], *, has_final: bool,
                 reopened: bool = False) -> str:
    """The status a claim's verdicts put it in.

    Parameters
    ----------
    reviews
        ``(substantiation, certainty)`` of each submitted review verdict.
    has_final
        Whether a final verdict stands: one exists and, for a re-opened claim, it was
        recorded after the re-opening.
    reopened
        Whether surveillance re-opened the claim.

    Returns
    -------
    str
        ``final`` once a final verdict stands; ``reopened`` for a re-opened claim until one
        does (whatever reviewers record meanwhile); otherwise ``unreviewed`` with no review,
        ``disagreement`` when two reviews differ in substantiation or certainty, and
        ``in_review`` otherwise.
    """
    if has_final:
        return "final"
    if reopened:
        return "reopened"
    if not reviews:
        return "unreviewed"
    if len(set(reviews)) > 1:
        return "disagreement"
    return "in_review"


def review_stage(status: str, n_reviews: int, required: int) -> str:
    """A reviewer-facing name for where a claim is (one of ``STAGES``)."""
    if status in ("final", "reopened"):
        return status
    if status == "disagreement":
        return "disagreement"
    if n_reviews == 0:
        return "awaiting review"
    if n_reviews < required:
        return "awaiting second review"
    return "ready for final"


def rationale_required(suggested: str | None, chosen: str) -> bool:
    """Whether a verdict needs a rationale: its certainty departs from the suggestion."""
    return suggested is not None and certainty_departs(suggested, chosen)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa between two raters' labels of the same items.

    Parameters
    ----------
    a, b
        The two raters' labels, item by item (same length).

    Returns
    -------
    float or None
        ``(p_o - p_e) / (1 - p_e)``, where ``p_o`` is the observed agreement and ``p_e``
        the agreement expected from each rater's label frequencies. ``None`` when it is
        undefined: no items, or both raters used one and the same label throughout
        (``p_e = 1``).

    Raises
    ------
    ValueError
        The sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"kappa needs paired labels; got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


@dataclass(frozen=True)
class PairAgreement:
    """Agreement on substantiation between two reviewers over the claims both reviewed."""

    reviewer_a: str
    reviewer_b: str
    claims: int
    agreed: int
    kappa: float | None

    @property
    def percent_agreement(self) -> float | None:
        """Share of claims on which they agreed, or ``None`` with no shared claim."""
        return self.agreed / self.claims if self.claims else None


OVERALL = "all pairs"


def agreement(ratings: Iterable[tuple[int, str, str]]) -> tuple[list[PairAgreement],
                                                                  PairAgreement]:
    """Cohen's kappa per reviewer pair, and overall.

    Parameters
    ----------
    ratings
        ``(claim_id, reviewer, substantiation)`` for every review verdict.

    Returns
    -------
    pairs, overall
        One ``PairAgreement`` per pair of reviewers that share at least one claim (names in
        alphabetical order), and the pooled agreement over every pair's shared claims
        (``reviewer_a`` = ``reviewer_b`` = ``OVERALL``): each pair of reviews of the same
        claim counts once, the alphabetically first reviewer as rater A.
    """
    by_claim: dict[int, dict[str, str]] = {}
    for claim_id, reviewer, label in ratings:
        by_claim.setdefault(claim_id, {})[reviewer] = label
    pairs: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for labels in by_claim.values():
        for ra, rb in combinations(sorted(labels), 2):
            la, lb = pairs.setdefault((ra, rb), ([], []))
            la.append(labels[ra])
            lb.append(labels[rb])
    out = []
    all_a: list[str] = []
    all_b: list[str] = []
    for (ra, rb), (la, lb) in sorted(pairs.items()):
        out.append(PairAgreement(ra, rb, len(la), sum(x == y for x, y in zip(la, lb, strict=True)),
                                 cohen_kappa(la, lb)))
        all_a.extend(la)
        all_b.extend(lb)
    overall = PairAgreement(OVERALL, OVERALL, len(all_a),
                            sum(x == y for x, y in zip(all_a, all_b, strict=True)),
                            cohen_kappa(all_a, all_b))
    return out, overall


# --------------------------------------------------------------------------- validation


def _check(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; expected one of: {', '.join(allowed)}")
    return value


def _domains(domains: Mapping[str, str] | None) -> dict[str, str]:
    given = dict(domains or {})
    unknown = set(given) - set(GRADE_DOMAINS)
    if unknown:
        raise InputError(f"unknown GRADE domain(s) {sorted(unknown)}; "
                         f"expected: {', '.join(GRADE_DOMAINS)}")
    out = {}
    for d in GRADE_DOMAINS:
        out[d] = _check(given.get(d, "not_serious"), DOMAIN_RATINGS, f"rating for {d}")
    return out


def _label(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_label(v)}" for k, v in value.items())
    if isinstance(value, str):
        return value.replace("_", " ") if value else "(empty)"
    return str(value)


# --------------------------------------------------------------------------- conflicts


def _conflict(session: Session, *, entity: str, row_id: int, current: dict[str, Any],
              fields: Sequence[str], loaded: int | None) -> StaleWrite:
    """A ``StaleWrite`` that says who changed the row, when, and to what."""
    last = session.exec(
        select(AuditEvent)
        .where(AuditEvent.entity == entity, AuditEvent.entity_id == str(row_id))
        .order_by(col(AuditEvent.id).desc()).limit(1)
    ).first()
    who = last.actor if last else "someone"
    when = last.occurred_at.strftime("%Y-%m-%d %H:%M UTC") if last else "meanwhile"
    what = "; ".join(f"{f.replace('_', ' ')}: {_label(current.get(f))}" for f in fields)
    opened = "a new one" if loaded is None else f"version {loaded}"
    message = (
        f"Not saved: {who} saved this {entity} at {when} after you opened it "
        f"(you edited {opened}; it is now version {current.get('version')}). "
        f"Their {entity}: {what}."
    )
    return StaleWrite(message, current={**current, "changed_by": who,
                                        "changed_at": last.occurred_at if last else None})


def _lock_claim(session: Session, claim_id: int) -> Claim:
    # One writer per claim at a time on PostgreSQL (SQLite already holds its write lock);
    # populate_existing so a long-lived session sees the row's current version.
    claim = session.exec(
        select(Claim).where(Claim.id == claim_id).with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    return claim


def _write_row(
    session: Session,
    *,
    model: type[Assessment] | type[Verdict],
    existing: Assessment | Verdict | None,
    values: dict[str, Any],
    expected_version: int | None,
    actor: str,
    entity: str,
    fields: Sequence[str],
) -> Any:
    if existing is None:
        if expected_version is not None:
            raise NotFound(f"the {entity} you edited (version {expected_version}) no longer "
                           "exists")
        row = model(**values)
        session.add(row)
        session.flush()
        audit.record(session, actor=actor, action=f"{entity}.create", entity=entity,
                     entity_id=row.id, after=audit.snapshot(row))
        return row
    assert existing.id is not None
    session.refresh(existing)
    if expected_version is None or expected_version != existing.version:
        raise _conflict(session, entity=entity, row_id=existing.id,
                        current=audit.snapshot(existing), fields=fields,
                        loaded=expected_version)
    try:
        return crud.update_versioned(session, model, existing.id,
                                     expected_version=expected_version, changes=values,
                                     actor=actor, action=f"{entity}.update")
    except StaleWrite as e:
        raise _conflict(session, entity=entity, row_id=existing.id, current=e.current,
                        fields=fields, loaded=expected_version) from e


# --------------------------------------------------------------------------- writes


def save_assessment(
    session: Session,
    *,
    user: crud.Acting,
    link_id: int,
    stance: str,
    relevance: str = "medium",
    note: str = "",
    expected_version: int | None = None,
) -> Assessment:
    """Create or edit the signed-in reviewer's assessment of one evidence link.

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting user (reviewer, adjudicator or admin).
    link_id
        The evidence link assessed.
    stance, relevance, note
        One of ``STANCES``, one of ``RELEVANCE``, free text.
    expected_version
        The version of this user's assessment the form showed, ``None`` if it showed none.

    Returns
    -------
    Assessment

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    InputError
        Unknown stance or relevance.
    NotFound
        No such link.
    StaleWrite
        The assessment changed (or was created) since the form showed it.
    """
    user = crud.acting_user(session, user, *REVIEW_ROLES)
    assert user.id is not None
    _check(stance, STANCES, "stance")
    _check(relevance, RELEVANCE, "relevance")
    link = session.get(EvidenceLink, link_id)
    if link is None:
        raise NotFound(f"evidence link {link_id} does not exist")
    _lock_claim(session, link.claim_id)
    existing = session.exec(
        select(Assessment).where(Assessment.link_id == link_id,
                                 Assessment.reviewer_id == user.id)
    ).first()
    values: dict[str, Any] = {"stance": stance, "relevance": relevance, "note": note.strip()}
    if existing is None:
        values.update(link_id=link_id, reviewer_id=user.id)
    row: Assessment = _write_row(session, model=Assessment, existing=existing, values=values,
                                 expected_version=expected_version, actor=user.username,
                                 entity="assessment", fields=_ASSESSMENT_FIELDS)
    # The suggestion follows the reviewers' work: recomputed from the assessed links.
    linking.refresh_claim_derived(session, link.claim_id, actor=user.username)
    return row


def save_verdict(
    session: Session,
    *,
    user: crud.Acting,
    claim_id: int,
    substantiation: str,
    certainty: str,
    action: str,
    domains: Mapping[str, str] | None = None,
    rationale: str = "",
    expected_version: int | None = None,
    required: int | None = None,
) -> Verdict:
    """Create or edit the signed-in reviewer's own verdict on a claim, and move its status.

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting user (reviewer, adjudicator or admin).
    claim_id
        The claim judged.
    substantiation, certainty, action
        One of ``SUBSTANTIATION``, ``CERTAINTY``, ``ACTIONS``.
    domains
        GRADE domain -> rating (``GRADE_DOMAINS`` -> ``DOMAIN_RATINGS``); a domain left out
        is ``not_serious``.
    rationale
        Required when ``certainty`` departs from the claim's suggested certainty.
    expected_version
        The version of this user's verdict the form showed, ``None`` if it showed none.
    required
        Reviews a claim needs (default ``required_reviews()``); only names the stage.

    Returns
    -------
    Verdict
        The saved row; it records the suggestion (and its reasons) next to the choice.

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    InputError
        An unknown value, or no rationale for a departure from the suggestion.
    NotFound
        No such claim.
    StaleWrite
        The verdict changed (or was created, e.g. in another tab) since the form showed it.
    """
    user = crud.acting_user(session, user, *REVIEW_ROLES)
    return _save(session, user=user, claim_id=claim_id, kind="review",
                 substantiation=substantiation, certainty=certainty, action=action,
                 domains=domains, rationale=rationale, expected_version=expected_version)


def save_final_verdict(
    session: Session,
    *,
    user: crud.Acting,
    claim_id: int,
    substantiation: str,
    certainty: str,
    action: str,
    domains: Mapping[str, str] | None = None,
    rationale: str = "",
    expected_version: int | None = None,
) -> Verdict:
    """Record (or revise) the adjudicated final verdict on a claim; its status becomes final.

    A claim has one final verdict whoever records it: a second adjudicator edits the same
    row, so two adjudicators working at once conflict (``StaleWrite``) instead of leaving
    two finals. Parameters, returns and errors are those of ``save_verdict``, except that
    the role must be adjudicator (or admin).
    """
    user = crud.acting_user(session, user, *ADJUDICATE_ROLES)
    return _save(session, user=user, claim_id=claim_id, kind="final",
                 substantiation=substantiation, certainty=certainty, action=action,
                 domains=domains, rationale=rationale, expected_version=expected_version)


def _save(
    session: Session,
    *,
    user: AppUser,
    claim_id: int,
    kind: str,
    substantiation: str,
    certainty: str,
    action: str,
    domains: Mapping[str, str] | None,
    rationale: str,
    expected_version: int | None,
) -> Verdict:
    assert user.id is not None
    _check(substantiation, SUBSTANTIATION, "substantiation")
    _check(certainty, CERTAINTY, "certainty")
    _check(action, ACTIONS, "action")
    ratings = _domains(domains)
    claim = _lock_claim(session, claim_id)
    rationale = rationale.strip()
    suggestion = suggestion_for(session, claim=claim, user=user, kind=kind)
    suggested = suggestion.level if suggestion else None
    if rationale_required(suggested, certainty) and not rationale:
        assert suggested is not None
        raise InputError(
            f"a rationale is required: the certainty you chose ({_label(certainty)}) departs "
            f"from the suggested certainty ({_label(suggested)})"
        )
    stmt = select(Verdict).where(Verdict.claim_id == claim_id, Verdict.kind == kind)
    if kind == "review":
        stmt = stmt.where(Verdict.reviewer_id == user.id)
    existing = session.exec(stmt.order_by(col(Verdict.id))).first()
    values: dict[str, Any] = {
        "substantiation": substantiation, "certainty": certainty, "domains": ratings,
        "rationale": rationale, "action": action, "submitted": True,
        "reviewer_id": user.id, "canonical_claim_id": claim.canonical_id,
        "suggested_certainty": suggested,
        "suggestion_reasons": list(suggestion.reasons) if suggestion else [],
    }
    if existing is None:
        values.update(claim_id=claim_id, kind=kind)
    verdict: Verdict = _write_row(session, model=Verdict, existing=existing, values=values,
                                  expected_version=expected_version, actor=user.username,
                                  entity="verdict", fields=_VERDICT_FIELDS)
    _update_status(session, claim=claim, actor=user.username, deciding=kind == "final")
    return verdict


def suggestion_for(
    session: Session, *, claim: Claim, user: AppUser | None, kind: str = "review",
    settings: Settings | None = None,
) -> CertaintySuggestion | None:
    """The certainty suggestion a user sees on a claim's verdict form.

    Under dual independent review a reviewer's suggestion comes from their own
    assessments only (another reviewer's stances would unblind them); an adjudicator's
    final verdict, and every verdict when review is not independent, uses every
    assessment. With no assessment the suggestion rests on the linked records alone.

    Returns
    -------
    CertaintySuggestion or None
        None for a claim that has never been linked (nothing to suggest from).
    """
    independent = (settings or get_settings()).independent_review
    own = kind == "review" and independent and user is not None and user.id is not None
    suggestion = linking.claim_certainty(session, claim,
                                         reviewer_id=user.id if own and user else None)
    if suggestion.basis == "metadata":
        # Nothing assessed in this view: the record-only suggestion the last link run
        # stored is the one to show (None when the claim was never linked).
        if claim.suggested_certainty is None:
            return None
        if claim.suggestion_basis == "metadata":
            return CertaintySuggestion(claim.suggested_certainty, claim.suggested_certainty,
                                       (), tuple(claim.suggestion_reasons or []), "metadata")
    return suggestion


def _update_status(session: Session, *, claim: Claim, actor: str,
                   deciding: bool = False) -> Claim:
    """Move a claim's status after a verdict was saved (``deciding``: a final one).

    A re-opened claim stays re-opened until a final verdict is recorded again; then its
    re-opening reasons are cleared (the audit trail keeps them).
    """
    assert claim.id is not None
    rows = session.exec(
        select(Verdict.kind, Verdict.substantiation, Verdict.certainty)
        .where(Verdict.claim_id == claim.id, col(Verdict.submitted))
    ).all()
    reviews = [(s, c) for k, s, c in rows if k == "review"]
    reopened = claim.status == "reopened"
    has_final = any(k == "final" for k, _, _ in rows) and (deciding or not reopened)
    status = claim_status(reviews, has_final=has_final, reopened=reopened)
    if status == claim.status:
        return claim
    changes: dict[str, Any] = {"status": status}
    if reopened:
        changes.update(reopen_reasons=[], reopened_at=None)
    return crud.update_versioned(session, Claim, claim.id, expected_version=claim.version,
                                 changes=changes, actor=actor, action="claim.status")


@dataclass(frozen=True)
class GroupVerdicts:
    """What applying a verdict across a canonical claim did.

    Attributes
    ----------
    source : Verdict
        The verdict applied.
    applied : list[Verdict]
        The member claims' verdicts written (created or replaced), by claim id.
    skipped : list[tuple[int, str]]
        ``(claim_id, reason)`` for each member left as it was.
    """

    source: Verdict
    applied: list[Verdict]
    skipped: list[tuple[int, str]]


def apply_verdict_to_group(
    *,
    session: Session,
    user: crud.Acting,
    verdict_id: int,
    expected_version: int,
    overwrite: bool = False,
) -> GroupVerdicts:
    """Apply one verdict to every other claim of its claim's canonical claim.

    Each member gets its own verdict row (same kind and reviewer, same substantiation,
    certainty, GRADE domains, action and rationale), recording ``applied_from_id`` and the
    member's own suggested certainty; each member's status is updated. A member that
    already has its own verdict of that kind by this reviewer (a final verdict, for a
    final) keeps it unless ``overwrite``; a verdict applied earlier from a group verdict is
    replaced. A member whose suggested certainty the verdict departs from is skipped when
    the verdict has no rationale, as ``save_verdict`` would refuse it.

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting user: the verdict's own reviewer (reviewer, adjudicator or admin); for a
        final verdict, an adjudicator or admin.
    verdict_id
        The verdict to apply.
    expected_version
        The verdict's version the user saw; a verdict changed since is refused.
    overwrite
        Replace members' own verdicts too.

    Returns
    -------
    GroupVerdicts

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, a viewer, a review verdict of another
        reviewer, or a final verdict applied by a reviewer.
    NotFound
        No such verdict.
    InputError
        The claim belongs to no canonical claim.
    StaleWrite
        The verdict changed since ``expected_version``.
    """
    user = crud.acting_user(session, user, *REVIEW_ROLES)
    assert user.id is not None
    source = session.get(Verdict, verdict_id)
    if source is None:
        raise NotFound(f"verdict {verdict_id} does not exist")
    if source.kind == "final":
        crud.acting_user(session, user, *ADJUDICATE_ROLES)
    elif source.reviewer_id != user.id:
        raise PermissionDenied("you can apply only your own verdict to a canonical claim")
    claim = _lock_claim(session, source.claim_id)
    session.refresh(source)
    if source.version != expected_version:
        raise _conflict(session, entity="verdict", row_id=verdict_id,
                        current=audit.snapshot(source), fields=_VERDICT_FIELDS,
                        loaded=expected_version)
    if claim.canonical_id is None:
        raise InputError(f"claim {claim.id} belongs to no canonical claim")
    member_ids = session.exec(
        select(Claim.id).where(Claim.canonical_id == claim.canonical_id, Claim.id != claim.id)
        .order_by(col(Claim.id))
    ).all()
    applied: list[Verdict] = []
    skipped: list[tuple[int, str]] = []
    for member_id in member_ids:
        assert member_id is not None
        member = _lock_claim(session, member_id)
        stmt = select(Verdict).where(Verdict.claim_id == member_id, Verdict.kind == source.kind)
        if source.kind == "review":
            stmt = stmt.where(Verdict.reviewer_id == user.id)
        existing = session.exec(stmt.order_by(col(Verdict.id))).first()
        reason = _apply_refusal(member, existing, source, overwrite=overwrite)
        if reason:
            skipped.append((member_id, reason))
            continue
        values: dict[str, Any] = {
            "substantiation": source.substantiation, "certainty": source.certainty,
            "domains": dict(source.domains), "rationale": source.rationale,
            "action": source.action, "submitted": True, "reviewer_id": user.id,
            "canonical_claim_id": claim.canonical_id, "applied_from_id": source.id,
            "suggested_certainty": member.suggested_certainty,
            "suggestion_reasons": list(member.suggestion_reasons or []),
        }
        if existing is None:
            values.update(claim_id=member_id, kind=source.kind)
        row: Verdict = _write_row(session, model=Verdict, existing=existing, values=values,
                                  expected_version=existing.version if existing else None,
                                  actor=user.username, entity="verdict",
                                  fields=_VERDICT_FIELDS)
        _update_status(session, claim=member, actor=user.username,
                       deciding=source.kind == "final")
        applied.append(row)
    return GroupVerdicts(source, applied, skipped)


def _apply_refusal(member: Claim, existing: Verdict | None, source: Verdict, *,
                   overwrite: bool) -> str | None:
    """Why a group verdict is not applied to one member, or ``None``."""
    if existing is not None and existing.applied_from_id is None and not overwrite:
        return "has its own verdict (kept)"
    if rationale_required(member.suggested_certainty, source.certainty) and not source.rationale:
        return (f"its suggested certainty ({_label(member.suggested_certainty)}) differs: "
                "the verdict needs a rationale")
    return None


def merge_groups(*, session: Session, user: crud.Acting, source_id: int,
                 target_id: int) -> list[Claim]:
    """Move every claim of one canonical claim into another (versioned, audited).

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting reviewer, adjudicator or admin.
    source_id, target_id
        The canonical claim emptied, and the one its claims join.

    Returns
    -------
    list[Claim]
        The moved claims.

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    InputError
        The two are the same canonical claim.
    NotFound
        Either canonical claim does not exist.
    """
    user = crud.acting_user(session, user, *REVIEW_ROLES)
    if source_id == target_id:
        raise InputError("a canonical claim cannot be merged into itself")
    for cid in (source_id, target_id):
        if session.get(CanonicalClaim, cid) is None:
            raise NotFound(f"canonical claim {cid} does not exist")
    members = session.exec(
        select(Claim).where(Claim.canonical_id == source_id).order_by(col(Claim.id))
    ).all()
    moved = []
    for member in members:
        assert member.id is not None
        locked = _lock_claim(session, member.id)
        moved.append(crud.regroup_claim(session=session, claim_id=member.id,
                                        canonical_id=target_id,
                                        expected_version=locked.version,
                                        user=user))
    return moved


def split_claim(*, session: Session, user: crud.Acting, claim_id: int,
                expected_version: int, statement: str | None = None) -> Claim:
    """Move a claim out of its canonical claim into a new one of its own.

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting reviewer, adjudicator or admin.
    claim_id, expected_version
        The claim, and its version the user saw.
    statement
        The new canonical claim's wording (default: the claim's).

    Returns
    -------
    Claim

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    NotFound
        No such claim.
    StaleWrite
        The claim changed since ``expected_version``.
    """
    return crud.regroup_claim(session=session, claim_id=claim_id, canonical_id=None,
                              expected_version=expected_version, user=user,
                              new_statement=(statement or "").strip() or None)


def require_reviewer(session: Session, user: crud.Acting) -> AppUser:
    """The acting user's row if they may write reviews (reviewer, adjudicator, admin).

    For a screen that is about to start work that writes (fetching a study) before the
    write itself: role and ``active`` are read from the database (``crud.acting_user``).

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    """
    return crud.acting_user(session, user, *REVIEW_ROLES)


def clean_pmid(pmid: str) -> str:
    """A PMID as typed (``" PMID: 31109201"``) reduced to its digits.

    Raises
    ------
    InputError
        It is not a PubMed id.
    """
    cleaned = re.sub(r"(?i)^\s*pmid:?\s*", "", pmid).strip()
    if not _PMID_RE.match(cleaned):
        raise InputError(f"{pmid.strip()!r} is not a PubMed id (PMIDs are digits, e.g. 31109201)")
    return cleaned


_SOURCE_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def add_claim_source(
    session: Session,
    *,
    user: crud.Acting,
    claim_id: int,
    kind: str,
    url: str,
    title: str = "",
    note: str = "",
) -> ClaimSource:
    """Attach a non-PubMed source (drug label, regulatory decision, guideline) to a claim.

    Stored, audited and exported like a study link; attaching a drug label or a regulatory
    decision answers the claim's ``needs_regulatory_source`` flag.

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting reviewer (or adjudicator / admin).
    claim_id
        The claim.
    kind
        One of ``vocabulary.SOURCE_KINDS``.
    url
        Where the source is (http or https).
    title, note
        What it is; what it shows about the claim.

    Returns
    -------
    ClaimSource

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    InputError
        Unknown kind, a URL that is not http(s), or the same URL already attached.
    NotFound
        No such claim.
    """
    user = crud.acting_user(session, user, *REVIEW_ROLES)
    _check(kind, CLAIM_SOURCE_KINDS, "source kind")
    url = url.strip()
    if not _SOURCE_URL_RE.match(url) or len(url) > 2000:
        raise InputError(f"{url[:80]!r} is not an http(s) URL")
    _lock_claim(session, claim_id)
    if session.exec(select(ClaimSource).where(ClaimSource.claim_id == claim_id,
                                              ClaimSource.url == url)).first():
        raise InputError(f"{url[:80]} is already attached to this claim")
    source = ClaimSource(claim_id=claim_id, kind=kind, url=url, title=title.strip()[:1000],
                         note=note.strip(), created_by=user.username)
    session.add(source)
    session.flush()
    audit.record(session, actor=user.username, action="claim_source.add", entity="claim_source",
                 entity_id=source.id, after=audit.snapshot(source))
    linking.refresh_claim_derived(session, claim_id, actor=user.username)
    return source


def add_manual_link(
    session: Session,
    *,
    user: crud.Acting,
    claim_id: int,
    pmid: str,
    fetch: FetchStudy | None = None,
) -> EvidenceLink:
    """Link a study to a claim by hand (origin ``manual``).

    Parameters
    ----------
    session
        Open session; the caller commits.
    user
        The acting reviewer (or adjudicator / admin).
    claim_id
        The claim.
    pmid
        The study's PubMed id (digits; surrounding space and a ``PMID:`` prefix are allowed).
    fetch
        Called as ``fetch(session, pmid)`` when the PMID is not in the database yet; it
        should store the PubMed record through ``session`` and return its ``Study`` (or
        ``None``). Without it, an unknown PMID is refused with instructions to fetch it
        first. (A fetcher with its own transactions must run before this call instead: on
        SQLite it would wait on this transaction's write lock.)

    Returns
    -------
    EvidenceLink
        The new link, ranked after the claim's existing links.

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    InputError
        The PMID is malformed, or the study is already linked to the claim.
    NotFound
        No such claim, or the PMID is not in the database (and could not be fetched).
    """
    user = crud.acting_user(session, user, *REVIEW_ROLES)
    cleaned = clean_pmid(pmid)
    _lock_claim(session, claim_id)
    study = session.exec(select(Study).where(Study.pmid == cleaned)).first()
    if study is None and fetch is not None:
        study = fetch(session, cleaned)
    if study is None:
        raise NotFound(f"PMID {cleaned} is not in the database; fetch it first with "
                       f"`substantiate ingest pubmed --pmid {cleaned}`")
    assert study.id is not None
    if session.exec(select(EvidenceLink).where(EvidenceLink.claim_id == claim_id,
                                               EvidenceLink.study_id == study.id)).first():
        raise InputError(f"PMID {cleaned} is already linked to claim {claim_id}")
    ranks = session.exec(select(EvidenceLink.rank).where(EvidenceLink.claim_id == claim_id)).all()
    link = EvidenceLink(claim_id=claim_id, study_id=study.id, origin="manual",
                        rank=max((r for r in ranks if r is not None), default=0) + 1,
                        created_by=user.username,
                        explanation={"sentences": [], "terms": [],
                                     "note": f"linked by hand by {user.username}"})
    session.add(link)
    session.flush()
    audit.record(session, actor=user.username, action="link.manual", entity="evidence_link",
                 entity_id=link.id, after=audit.snapshot(link))
    return link


# --------------------------------------------------------------------------- users


def add_user(
    session: Session,
    *,
    actor: crud.Acting,
    username: str,
    role: str,
    password: str | None,
    display_name: str = "",
) -> AppUser:
    """Create a user (admins only): ``crud.add_user``.

    Raises
    ------
    PermissionDenied
        No actor, an unknown or deactivated actor, or a non-admin.
    InputError
        Unknown role, empty or taken username, or a password shorter than 8 characters.
    """
    if actor is None:  # the app has no bootstrap: ``ensure_first_admin`` creates the first
        raise PermissionDenied("sign in first")
    return crud.add_user(session=session, username=username, role=role, password=password,
                         actor=actor, display_name=display_name)


def set_role(session: Session, *, actor: crud.Acting, user_id: int, role: str,
             expected_version: int) -> AppUser:
    """Change a user's role (admins only; versioned and audited): ``crud.set_user_role``.

    Raises
    ------
    PermissionDenied
        No actor, an unknown or deactivated actor, or a non-admin.
    InputError
        Unknown role, or the change would leave no active admin.
    StaleWrite
        The user row changed since it was shown.
    """
    return crud.set_user_role(session=session, user_id=user_id, role=role,
                              expected_version=expected_version, actor=actor)


def ensure_first_admin(session: Session, *, username: str = "admin") -> tuple[str, str] | None:
    """Create the first admin with a random password when the database has no user yet.

    Parameters
    ----------
    session
        Open session; the caller commits (and shows the password once).
    username
        The admin's username.

    Returns
    -------
    tuple of (username, password), or None
        The new admin's credentials, or ``None`` when users already exist.
    """
    if not crud.no_users_yet(session):
        return None
    password = secrets.token_urlsafe(12)
    crud.add_user(session=session, username=username, role=ADMIN, password=password,
                  actor=None, display_name="Administrator")
    return username, password
