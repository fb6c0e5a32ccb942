"""Review across the claim library: one verdict applied to a canonical claim, merge, split.

Every test runs on SQLite and on PostgreSQL (the ``session`` fixture).
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from evidence import review
from evidence.errors import InputError, PermissionDenied, StaleWrite
from evidence.models import AppUser, AuditEvent, CanonicalClaim, Claim, Verdict
from tests.factories import make_canonical, make_claim, make_user

VERDICT = {"substantiation": "unsubstantiated", "certainty": "low", "action": "revise_wording",
           "rationale": "no trial in this population"}


def _group(session: Session, n: int = 3) -> tuple[CanonicalClaim, list[Claim]]:
    cc = make_canonical(session)
    claims = [make_claim(session, canonical_id=cc.id) for _ in range(n)]
    return cc, claims


def _verdict(session: Session, user: AppUser, claim: Claim) -> Verdict:
    assert claim.id is not None
    return review.save_verdict(session, user=user, claim_id=claim.id, **VERDICT)


def _mine(session: Session, claim: Claim, user: AppUser) -> Verdict | None:
    return session.exec(select(Verdict).where(Verdict.claim_id == claim.id,
                                              Verdict.reviewer_id == user.id)
                        .execution_options(populate_existing=True)).first()


def test_apply_verdict_to_every_member_keeping_their_own(session: Session) -> None:
    alice = make_user(session, username="alice")
    _, (first, second, third) = _group(session)
    own = review.save_verdict(session, user=alice, claim_id=second.id,  # type: ignore[arg-type]
                              substantiation="substantiated", certainty="moderate",
                              action="approve")
    source = _verdict(session, alice, first)
    session.commit()
    assert source.id is not None
    result = review.apply_verdict_to_group(session=session, user=alice, verdict_id=source.id,
                                           expected_version=source.version)
    session.commit()
    assert [v.claim_id for v in result.applied] == [third.id]
    assert result.skipped == [(second.id, "has its own verdict (kept)")]
    copy = _mine(session, third, alice)
    assert copy is not None and copy.applied_from_id == source.id
    assert (copy.substantiation, copy.certainty, copy.rationale) == (
        "unsubstantiated", "low", "no trial in this population")
    kept = _mine(session, second, alice)
    assert kept is not None and kept.id == own.id and kept.substantiation == "substantiated"
    assert session.get(Claim, third.id).status == "in_review"  # type: ignore[union-attr]
    creates = session.exec(select(AuditEvent).where(AuditEvent.action == "verdict.create")
                           .order_by(col(AuditEvent.id))).all()
    assert creates[-1].after is not None and creates[-1].after["applied_from_id"] == source.id


def test_apply_with_overwrite_replaces_members_own_verdicts(session: Session) -> None:
    alice = make_user(session, username="alice")
    _, (first, second) = _group(session, 2)
    review.save_verdict(session, user=alice, claim_id=second.id,  # type: ignore[arg-type]
                        substantiation="substantiated", certainty="moderate", action="approve")
    source = _verdict(session, alice, first)
    session.commit()
    assert source.id is not None
    result = review.apply_verdict_to_group(session=session, user=alice, verdict_id=source.id,
                                           expected_version=source.version, overwrite=True)
    session.commit()
    assert [v.claim_id for v in result.applied] == [second.id] and result.skipped == []
    replaced = _mine(session, second, alice)
    assert replaced is not None and replaced.substantiation == "unsubstantiated"
    assert replaced.applied_from_id == source.id and replaced.version == 2


def test_reapplying_updates_applied_copies_and_other_reviewers_are_untouched(
    session: Session,
) -> None:
    alice = make_user(session, username="alice")
    bob = make_user(session, username="bob")
    _, (first, second) = _group(session, 2)
    bobs = _verdict(session, bob, second)
    source = _verdict(session, alice, first)
    session.commit()
    assert source.id is not None
    review.apply_verdict_to_group(session=session, user=alice, verdict_id=source.id,
                                  expected_version=source.version)
    session.commit()
    edited = review.save_verdict(session, user=alice, claim_id=first.id,  # type: ignore[arg-type]
                                 substantiation="contradicted", certainty="low",
                                 action="remove", rationale="contradicted by an RCT",
                                 expected_version=source.version)
    session.commit()
    again = review.apply_verdict_to_group(session=session, user=alice, verdict_id=source.id,
                                          expected_version=edited.version)
    session.commit()
    assert [v.substantiation for v in again.applied] == ["contradicted"]
    bob_row = _mine(session, second, bob)
    assert bob_row is not None and bob_row.id == bobs.id and bob_row.applied_from_id is None


def test_apply_refuses_a_stale_verdict_and_other_reviewers_verdicts(session: Session) -> None:
    alice = make_user(session, username="alice")
    bob = make_user(session, username="bob")
    viewer = make_user(session, username="vera", role="viewer")
    _, (first, _second) = _group(session, 2)
    source = _verdict(session, alice, first)
    session.commit()
    assert source.id is not None
    with pytest.raises(StaleWrite, match="alice saved this verdict"):
        review.apply_verdict_to_group(session=session, user=alice, verdict_id=source.id,
                                      expected_version=source.version + 1)
    with pytest.raises(PermissionDenied, match="only your own verdict"):
        review.apply_verdict_to_group(session=session, user=bob, verdict_id=source.id,
                                      expected_version=source.version)
    with pytest.raises(PermissionDenied, match="vera is a viewer"):
        review.apply_verdict_to_group(session=session, user=viewer, verdict_id=source.id,
                                      expected_version=source.version)
    session.rollback()
    assert session.exec(select(Verdict)).all() == [source]


def test_apply_skips_members_whose_suggestion_needs_a_rationale(session: Session) -> None:
    alice = make_user(session, username="alice")
    cc = make_canonical(session)
    first = make_claim(session, canonical_id=cc.id)
    second = make_claim(session, canonical_id=cc.id, suggested_certainty="high")
    assert first.id is not None
    source = review.save_verdict(session, user=alice, claim_id=first.id,
                                 substantiation="unsubstantiated", certainty="very_low",
                                 action="remove")
    session.commit()
    assert source.id is not None
    result = review.apply_verdict_to_group(session=session, user=alice, verdict_id=source.id,
                                           expected_version=source.version)
    assert result.applied == []
    [(claim_id, reason)] = result.skipped
    assert claim_id == second.id and "needs a rationale" in reason


def test_merge_moves_every_claim_and_split_starts_a_new_group(session: Session) -> None:
    alice = make_user(session, username="alice")
    a, (a1, a2) = _group(session, 2)
    b, (b1,) = _group(session, 1)
    session.commit()
    assert a.id is not None and b.id is not None and a1.id is not None
    moved = review.merge_groups(session=session, user=alice, source_id=a.id, target_id=b.id)
    session.commit()
    assert {c.id for c in moved} == {a1.id, a2.id}
    members = session.exec(select(Claim.id).where(Claim.canonical_id == b.id)).all()
    assert set(members) == {a1.id, a2.id, b1.id}
    with pytest.raises(InputError, match="into itself"):
        review.merge_groups(session=session, user=alice, source_id=b.id, target_id=b.id)
    claim = session.get(Claim, a1.id, populate_existing=True)
    assert claim is not None
    seen = claim.version
    split = review.split_claim(session=session, user=alice, claim_id=a1.id,
                               expected_version=seen, statement="  my wording ")
    session.commit()
    new = session.get(CanonicalClaim, split.canonical_id)
    assert new is not None and new.statement == "my wording" and new.id not in (a.id, b.id)
    with pytest.raises(StaleWrite):
        review.split_claim(session=session, user=alice, claim_id=a1.id, expected_version=seen)
    viewer = make_user(session, username="vera", role="viewer")
    with pytest.raises(PermissionDenied):
        review.merge_groups(session=session, user=viewer, source_id=b.id, target_id=a.id)
