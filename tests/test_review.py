"""The review workflow library: roles, rules, status, blinding, adjudication, agreement.

Every test runs on SQLite and on PostgreSQL (the ``session`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, col, select

from evidence import crud, queries, review
from evidence.errors import InputError, NotFound, PermissionDenied, StaleWrite
from evidence.models import AppUser, AuditEvent, Claim, EvidenceLink, Verdict
from tests.factories import (
    make_article,
    make_assessment,
    make_canonical,
    make_claim,
    make_link,
    make_study,
    make_user,
    make_verdict,
)

VERDICT = {"substantiation": "substantiated", "certainty": "moderate", "action": "approve"}


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)
                             .order_by(col(AuditEvent.id))).all())


def _status(session: Session, claim_id: int) -> str:
    claim = session.get(Claim, claim_id, populate_existing=True)
    assert claim is not None
    return claim.status


# --------------------------------------------------------------------------- roles


def _writes(session: Session) -> dict[str, Callable[[AppUser | None], Any]]:
    claim = make_claim(session)
    link = make_link(session, claim=claim)
    study = make_study(session, pmid="90000306")
    other = make_user(session, username="other", role="reviewer")
    assert claim.id and link.id and other.id
    session.commit()
    return {
        "save_assessment": lambda u: review.save_assessment(
            session, user=u, link_id=link.id, stance="supports"),
        "save_verdict": lambda u: review.save_verdict(
            session, user=u, claim_id=claim.id, rationale="read the trial", **VERDICT),
        "save_final_verdict": lambda u: review.save_final_verdict(
            session, user=u, claim_id=claim.id, rationale="read the trial", **VERDICT),
        "add_manual_link": lambda u: review.add_manual_link(
            session, user=u, claim_id=claim.id, pmid=study.pmid),
        "add_user": lambda u: review.add_user(
            session, actor=u, username="mallory", role="admin", password="long enough pw"),
        "set_role": lambda u: review.set_role(
            session, actor=u, user_id=other.id, role="admin", expected_version=other.version),
    }


WRITES = ["save_assessment", "save_verdict", "save_final_verdict", "add_manual_link",
          "add_user", "set_role"]


@pytest.mark.parametrize("write", WRITES)
def test_viewer_is_refused_every_write_and_nothing_is_written(session: Session,
                                                              write: str) -> None:
    writes = _writes(session)
    viewer = make_user(session, username="vera", role="viewer")
    session.commit()
    n_events = len(queries.audit_log(session))
    with pytest.raises(PermissionDenied, match="vera is a viewer"):
        writes[write](viewer)
    session.rollback()
    assert len(queries.audit_log(session)) == n_events
    assert queries.verdicts(session).empty
    assert (queries.links(session)["origin"] != "manual").all()


@pytest.mark.parametrize("write", WRITES)
def test_signed_out_user_is_refused_every_write(session: Session, write: str) -> None:
    writes = _writes(session)
    with pytest.raises(PermissionDenied, match="sign in"):
        writes[write](None)


@pytest.mark.parametrize("write", ["save_final_verdict", "add_user", "set_role"])
def test_reviewer_is_refused_adjudication_and_user_admin(session: Session, write: str) -> None:
    writes = _writes(session)
    reviewer = make_user(session, username="rita", role="reviewer")
    session.commit()
    with pytest.raises(PermissionDenied, match="rita is a reviewer"):
        writes[write](reviewer)


def test_admin_may_do_every_write(session: Session) -> None:
    writes = _writes(session)
    admin = make_user(session, username="root", role="admin")
    session.commit()
    for name in WRITES:
        writes[name](admin)
        session.commit()
    assert {e.actor for e in _events(session, "verdict.create")} == {"root"}


# --------------------------------------------------------------------------- rules


def test_rationale_required_when_certainty_departs_from_suggestion(session: Session) -> None:
    claim = make_claim(session, suggested_certainty="low",
                       suggestion_reasons=["1 RCT supports the claim: starts high",
                                           "indirect population: -1", "imprecision: -1"])
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    for rationale in ("", "   \n "):
        with pytest.raises(InputError, match=r"rationale is required.*\(moderate\).*\(low\)"):
            review.save_verdict(session, user=rita, claim_id=claim.id, rationale=rationale,
                                **VERDICT)
        session.rollback()
    assert queries.verdicts(session).empty

    v = review.save_verdict(session, user=rita, claim_id=claim.id,
                            rationale="  The RCT enrolled the claimed population.  ", **VERDICT)
    session.commit()
    assert v.rationale == "The RCT enrolled the claimed population."
    assert v.suggested_certainty == "low"
    assert v.suggestion_reasons[0].startswith("1 RCT")
    row = queries.verdicts(session).iloc[0]
    assert (row["certainty"], row["suggested_certainty"]) == ("moderate", "low")


def test_no_rationale_needed_when_verdict_follows_suggestion(session: Session) -> None:
    claim = make_claim(session, suggested_certainty="moderate")
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    v = review.save_verdict(session, user=rita, claim_id=claim.id, **VERDICT)
    assert v.rationale == ""


def test_rationale_rule_without_a_suggestion() -> None:
    assert review.rationale_required(None, "high") is False
    assert review.rationale_required("low", "low") is False
    assert review.rationale_required("low", "very_low") is True


@pytest.mark.parametrize(("field", "value"), [
    ("substantiation", "true"), ("certainty", "medium"), ("action", "ignore"),
])
def test_unknown_vocabulary_is_refused(session: Session, field: str, value: str) -> None:
    claim = make_claim(session)
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    with pytest.raises(InputError, match=f"unknown {field}"):
        review.save_verdict(session, user=rita, claim_id=claim.id, **{**VERDICT, field: value})


def test_domains_default_to_not_serious_and_unknown_ones_are_refused(session: Session) -> None:
    claim = make_claim(session)
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    with pytest.raises(InputError, match="unknown GRADE domain"):
        review.save_verdict(session, user=rita, claim_id=claim.id,
                            domains={"vibes": "serious"}, **VERDICT)
    with pytest.raises(InputError, match="rating for imprecision"):
        review.save_verdict(session, user=rita, claim_id=claim.id,
                            domains={"imprecision": "fatal"}, **VERDICT)
    v = review.save_verdict(session, user=rita, claim_id=claim.id,
                            domains={"indirectness": "serious"}, **VERDICT)
    assert v.domains == {"risk_of_bias": "not_serious", "inconsistency": "not_serious",
                         "indirectness": "serious", "imprecision": "not_serious",
                         "publication_bias": "not_serious"}


def test_unknown_stance_and_relevance_are_refused(session: Session) -> None:
    link = make_link(session, claim=make_claim(session))
    rita = make_user(session, username="rita")
    session.commit()
    assert link.id is not None
    with pytest.raises(InputError, match="unknown stance"):
        review.save_assessment(session, user=rita, link_id=link.id, stance="likes")
    with pytest.raises(InputError, match="unknown relevance"):
        review.save_assessment(session, user=rita, link_id=link.id, stance="supports",
                               relevance="huge")


def test_missing_claim_and_link_are_not_found(session: Session) -> None:
    rita = make_user(session, username="rita")
    session.commit()
    with pytest.raises(NotFound, match="claim 999"):
        review.save_verdict(session, user=rita, claim_id=999, **VERDICT)
    with pytest.raises(NotFound, match="link 999"):
        review.save_assessment(session, user=rita, link_id=999, stance="supports")


# --------------------------------------------------------------------------- status


def test_claim_status_rule() -> None:
    s, m = "substantiated", "moderate"
    assert review.claim_status([], has_final=False) == "unreviewed"
    assert review.claim_status([(s, m)], has_final=False) == "in_review"
    assert review.claim_status([(s, m), (s, m)], has_final=False) == "in_review"
    assert review.claim_status([(s, m), (s, "low")], has_final=False) == "disagreement"
    assert review.claim_status([(s, m), ("contradicted", m)], has_final=False) == "disagreement"
    assert review.claim_status([(s, m), (s, "low")], has_final=True) == "final"
    assert review.review_stage("unreviewed", 0, 2) == "awaiting review"
    assert review.review_stage("in_review", 1, 2) == "awaiting second review"
    assert review.review_stage("in_review", 2, 2) == "ready for final"
    assert review.review_stage("in_review", 1, 1) == "ready for final"


def test_status_moves_unreviewed_in_review_disagreement_final(session: Session) -> None:
    claim = make_claim(session)
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    ada = make_user(session, username="ada", role="adjudicator")
    session.commit()
    assert claim.id is not None
    assert _status(session, claim.id) == "unreviewed"

    review.save_verdict(session, user=rita, claim_id=claim.id, **VERDICT)
    session.commit()
    assert _status(session, claim.id) == "in_review"

    review.save_verdict(session, user=ravi, claim_id=claim.id,
                        **{**VERDICT, "certainty": "low"}, rationale="small trial")
    session.commit()
    assert _status(session, claim.id) == "disagreement"
    adj = queries.adjudication_queue(session, viewer=ada, required=2)
    assert adj["claim_id"].tolist() == [claim.id]
    assert adj.iloc[0]["stage"] == "disagreement"
    assert sorted(adj.iloc[0]["certainties"]) == ["low", "moderate"]

    final = review.save_final_verdict(session, user=ada, claim_id=claim.id,
                                      **{**VERDICT, "certainty": "low"}, rationale="RoB")
    session.commit()
    assert final.kind == "final"
    assert _status(session, claim.id) == "final"
    assert queries.adjudication_queue(session, viewer=ada, required=2).empty
    moves = [(e.before or {}).get("status", "?") + "->" + (e.after or {}).get("status", "?")
             for e in _events(session, "claim.status")]
    assert moves == ["unreviewed->in_review", "in_review->disagreement", "disagreement->final"]
    assert [e.actor for e in _events(session, "claim.status")] == ["rita", "ravi", "ada"]


def test_agreeing_reviews_are_ready_for_final(session: Session) -> None:
    claim = make_claim(session)
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    ada = make_user(session, username="ada", role="adjudicator")
    session.commit()
    assert claim.id is not None
    review.save_verdict(session, user=rita, claim_id=claim.id, **VERDICT)
    session.commit()
    assert queries.adjudication_queue(session, viewer=ada, required=2).empty
    assert not queries.adjudication_queue(session, viewer=ada, required=1).empty
    review.save_verdict(session, user=ravi, claim_id=claim.id, **VERDICT)
    session.commit()
    assert _status(session, claim.id) == "in_review"
    adj = queries.adjudication_queue(session, viewer=ada, required=2, independent=True)
    assert adj[["claim_id", "stage", "n_reviews"]].values.tolist() == [
        [claim.id, "ready for final", 2]]
    assert adj.iloc[0]["substantiations"] == ["substantiated", "substantiated"]
    # A reviewer asking the same query under independent review sees no one's values.
    blind = queries.adjudication_queue(session, viewer=rita, required=2, independent=True)
    assert (blind.iloc[0]["substantiations"], blind.iloc[0]["certainties"]) == ([], [])
    open_ = queries.adjudication_queue(session, viewer=rita, required=2, independent=False)
    assert open_.iloc[0]["certainties"] == ["moderate", "moderate"]


def test_editing_a_review_back_into_agreement_leaves_disagreement(session: Session) -> None:
    claim = make_claim(session)
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    session.commit()
    assert claim.id is not None
    review.save_verdict(session, user=rita, claim_id=claim.id, **VERDICT)
    v = review.save_verdict(session, user=ravi, claim_id=claim.id,
                            **{**VERDICT, "substantiation": "unsubstantiated"})
    session.commit()
    assert _status(session, claim.id) == "disagreement"
    review.save_verdict(session, user=ravi, claim_id=claim.id, expected_version=v.version,
                        **VERDICT)
    session.commit()
    assert _status(session, claim.id) == "in_review"


def test_every_write_is_audited_with_the_username(session: Session) -> None:
    claim = make_claim(session)
    link = make_link(session, claim=claim)
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id and link.id
    a = review.save_assessment(session, user=rita, link_id=link.id, stance="supports",
                               relevance="high", note="n=60 RCT")
    v = review.save_verdict(session, user=rita, claim_id=claim.id,
                            **{**VERDICT, "certainty": "high"})
    review.save_assessment(session, user=rita, link_id=link.id, stance="contradicts",
                           expected_version=a.version)
    session.commit()
    log = queries.audit_log(session)
    mine = log[log["actor"] == "rita"]
    # Each assessment re-derives the claim's suggestion, audited as the reviewer.
    assert mine["action"].tolist() == ["assessment.create", "claim.derive", "verdict.create",
                                       "claim.status", "assessment.update", "claim.derive"]
    assert mine.iloc[0]["entity_id"] == str(a.id)
    assert mine.iloc[1]["after"]["suggestion_basis"] == "assessments"
    assert mine.iloc[2]["after"]["substantiation"] == "substantiated"
    assert mine.iloc[2]["entity_id"] == str(v.id)
    assert mine.iloc[4]["before"]["stance"] == "supports"
    assert mine.iloc[4]["after"]["stance"] == "contradicts"


# --------------------------------------------------------------------------- blinding


def test_blinding_hides_others_reviews_until_own_is_submitted(session: Session) -> None:
    claim = make_claim(session)
    link = make_link(session, claim=claim)
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    ada = make_user(session, username="ada", role="adjudicator")
    vera = make_user(session, username="vera", role="viewer")
    session.commit()
    assert claim.id and link.id
    review.save_assessment(session, user=rita, link_id=link.id, stance="supports",
                           note="rita's note")
    review.save_verdict(session, user=rita, claim_id=claim.id, rationale="small trial",
                        **VERDICT)
    session.commit()

    def seen(user: AppUser, independent: bool | None = True) -> tuple[list[str], list[str]]:
        v = queries.claim_verdicts(session, claim.id, viewer=user, independent=independent)
        a = queries.claim_assessments(session, claim.id, viewer=user, independent=independent)
        return v["reviewer"].tolist(), a["reviewer"].tolist()

    assert seen(ravi) == ([], [])
    assert seen(vera) == ([], [])
    assert seen(rita) == (["rita"], ["rita"])
    assert seen(ada) == (["rita"], ["rita"])
    assert seen(ravi, independent=False) == (["rita"], ["rita"])

    # ravi's own assessment alone does not lift the blind; his verdict does.
    review.save_assessment(session, user=ravi, link_id=link.id, stance="contradicts")
    session.commit()
    assert seen(ravi) == ([], ["ravi"])
    review.save_verdict(session, user=ravi, claim_id=claim.id, rationale="small trial",
                        **VERDICT)
    session.commit()
    assert seen(ravi) == (["rita", "ravi"], ["rita", "ravi"])
    assert seen(vera) == ([], [])

    # Each reviewer's suggestion came from their own reading only: ravi's shows no trace of
    # rita's opposite stance; the adjudicator's, from both, is rated down for inconsistency.
    by_reviewer = queries.verdicts(session).set_index("reviewer")
    assert by_reviewer.loc["ravi", "suggested_certainty"] == "high"
    assert not any("inconsistency" in r for r in by_reviewer.loc["ravi", "suggestion_reasons"])
    review.save_final_verdict(session, user=ada, claim_id=claim.id, **VERDICT)
    session.commit()
    assert seen(vera)[0] == ["ada", "rita", "ravi"]
    final = queries.verdicts(session).set_index("reviewer").loc["ada"]
    assert final["suggested_certainty"] == "moderate"
    assert any("rated down one level for inconsistency" in r
               for r in final["suggestion_reasons"])


def test_blinding_follows_the_setting(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidence import config

    claim = make_claim(session)
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    session.commit()
    assert claim.id is not None
    review.save_verdict(session, user=rita, claim_id=claim.id, **VERDICT)
    session.commit()
    assert queries.claim_verdicts(session, claim.id, viewer=ravi).empty
    monkeypatch.setenv("INDEPENDENT_REVIEW", "false")
    config.reset_settings()
    assert queries.claim_verdicts(session, claim.id, viewer=ravi)["reviewer"].tolist() == ["rita"]
    assert review.required_reviews() == 1


# --------------------------------------------------------------------------- concurrency


def test_same_reviewer_in_two_tabs_cannot_overwrite_silently(session: Session) -> None:
    claim = make_claim(session)
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    # Both tabs opened the claim before any verdict existed (version None).
    review.save_verdict(session, user=rita, claim_id=claim.id, **VERDICT)
    session.commit()
    with pytest.raises(StaleWrite, match=r"rita saved this verdict .* substantiation: "
                                         r"substantiated; certainty: moderate") as info:
        review.save_verdict(session, user=rita, claim_id=claim.id,
                            **{**VERDICT, "substantiation": "contradicted"})
    session.rollback()
    assert info.value.current["changed_by"] == "rita"
    assert info.value.current["substantiation"] == "substantiated"

    # Tab 1 edits version 1 -> 2; tab 2 still holds version 1.
    review.save_verdict(session, user=rita, claim_id=claim.id, expected_version=1,
                        **{**VERDICT, "substantiation": "unsubstantiated"})
    session.commit()
    with pytest.raises(StaleWrite, match=r"you edited version 1; it is now version 2"):
        review.save_verdict(session, user=rita, claim_id=claim.id, expected_version=1,
                            **{**VERDICT, "substantiation": "contradicted"})
    session.rollback()
    rows = queries.verdicts(session)
    assert rows[["substantiation", "version"]].values.tolist() == [["unsubstantiated", 2]]
    assert len(_events(session, "verdict.update")) == 1


def test_two_adjudicators_on_one_final_verdict(session: Session) -> None:
    claim = make_claim(session)
    ada, abe = (make_user(session, username="ada", role="adjudicator"),
                make_user(session, username="abe", role="adjudicator"))
    session.commit()
    assert claim.id is not None
    review.save_final_verdict(session, user=ada, claim_id=claim.id, **VERDICT)
    session.commit()
    with pytest.raises(StaleWrite, match=r"ada saved this verdict") as info:
        review.save_final_verdict(session, user=abe, claim_id=claim.id,
                                  **{**VERDICT, "substantiation": "unsubstantiated"})
    session.rollback()
    assert info.value.current["changed_by"] == "ada"
    finals = queries.verdicts(session)
    assert finals[["reviewer", "substantiation"]].values.tolist() == [["ada", "substantiated"]]

    # Having seen ada's final (version 1), abe may revise it: still one final row.
    review.save_final_verdict(session, user=abe, claim_id=claim.id, expected_version=1,
                              **{**VERDICT, "substantiation": "unsubstantiated"})
    session.commit()
    finals = queries.verdicts(session)
    assert finals[["reviewer", "kind", "substantiation", "version"]].values.tolist() == [
        ["abe", "final", "unsubstantiated", 2]]


def test_stale_assessment_is_refused(session: Session) -> None:
    link = make_link(session, claim=make_claim(session))
    rita = make_user(session, username="rita")
    session.commit()
    assert link.id is not None
    a = review.save_assessment(session, user=rita, link_id=link.id, stance="supports")
    session.commit()
    review.save_assessment(session, user=rita, link_id=link.id, stance="contradicts",
                           note="second tab", expected_version=a.version)
    session.commit()
    with pytest.raises(StaleWrite, match=r"rita saved this assessment.*stance: contradicts; "
                                         r"relevance: medium; note: second tab"):
        review.save_assessment(session, user=rita, link_id=link.id, stance="does_not_address",
                               expected_version=1)
    session.rollback()
    rows = queries.claim_assessments(session, link.claim_id, viewer=rita)
    assert rows[["stance", "version"]].values.tolist() == [["contradicts", 2]]


def test_editing_a_deleted_verdict_is_not_found(session: Session) -> None:
    claim = make_claim(session)
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    with pytest.raises(NotFound, match="no longer exists"):
        review.save_verdict(session, user=rita, claim_id=claim.id, expected_version=3,
                            **VERDICT)


# --------------------------------------------------------------------------- kappa


def test_kappa_matches_hand_computed_two_by_two() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = 0.70; p_e = 0.5*0.6 + 0.5*0.4 = 0.50; kappa = 0.20/0.50 = 0.40.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert review.cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_matches_hand_computed_three_categories() -> None:
    # 10 items. Agreements: s,s,s,u,u,c = 6 -> p_o = 0.6.
    # A: s 4, u 3, c 3; B: s 5, u 4, c 1.
    # p_e = (4*5 + 3*4 + 3*1) / 100 = 0.35; kappa = (0.6-0.35)/(0.65) = 0.384615...
    a = ["s", "s", "s", "u", "u", "c", "s", "u", "c", "c"]
    b = ["s", "s", "s", "u", "u", "c", "u", "s", "u", "s"]
    assert review.cohen_kappa(a, b) == pytest.approx(0.25 / 0.65)


def test_kappa_edge_cases() -> None:
    assert review.cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    assert review.cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert review.cohen_kappa([], []) is None
    assert review.cohen_kappa(["a", "a"], ["a", "a"]) is None
    with pytest.raises(ValueError, match="paired"):
        review.cohen_kappa(["a"], [])


def test_agreement_per_pair_and_overall() -> None:
    ratings = [
        (1, "rita", "s"), (1, "ravi", "s"), (1, "rosa", "u"),
        (2, "rita", "u"), (2, "ravi", "u"),
        (3, "rita", "s"), (3, "ravi", "u"),
        (4, "rosa", "s"),
    ]
    pairs, overall = review.agreement(ratings)
    got = {(p.reviewer_a, p.reviewer_b): (p.claims, p.agreed) for p in pairs}
    assert got == {("ravi", "rita"): (3, 2), ("ravi", "rosa"): (1, 0), ("rita", "rosa"): (1, 0)}
    ravi_rita = next(p for p in pairs if p.reviewer_b == "rita")
    # ravi: s,u,u  rita: s,u,s -> p_o = 2/3; p_e = (1*2 + 2*1)/9 = 4/9; kappa = (2/9)/(5/9)
    assert ravi_rita.kappa == pytest.approx(0.4)
    assert ravi_rita.percent_agreement == pytest.approx(2 / 3)
    # Pooled: A = ravi,ravi,ravi,ravi,rita ; B = rita,rita,rita,rosa,rosa
    # labels A: s,u,u,s,s  B: s,u,s,u,u -> p_o = 2/5; A s3 u2, B s2 u3 -> p_e = 12/25
    assert (overall.claims, overall.agreed) == (5, 2)
    assert overall.kappa == pytest.approx((0.4 - 12 / 25) / (1 - 12 / 25))


def test_agreement_from_the_database(session: Session) -> None:
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    labels = [("substantiated", "substantiated"), ("unsubstantiated", "unsubstantiated"),
              ("substantiated", "unsubstantiated")]
    for la, lb in labels:
        claim = make_claim(session)
        make_verdict(session, claim=claim, reviewer=rita, substantiation=la)
        make_verdict(session, claim=claim, reviewer=ravi, substantiation=lb)
    session.commit()
    df = queries.agreement(session)
    assert df.columns.tolist() == queries.AGREEMENT_COLUMNS
    assert df[["reviewer_a", "reviewer_b", "claims", "agreed"]].values.tolist() == [
        ["ravi", "rita", 3, 2], [review.OVERALL, review.OVERALL, 3, 2]]
    assert df.iloc[0]["kappa"] == pytest.approx(0.4)


# --------------------------------------------------------------------------- queue


def test_priority_weights_flags() -> None:
    assert review.priority(0.5, []) == pytest.approx(0.5)
    assert review.priority(0.5, ["retracted_evidence"]) == pytest.approx(1.0)
    assert review.priority(0.4, ["no_fitting_citation", "indirect_evidence", "other"]) == (
        pytest.approx(0.4 * 1.75))


def test_queue_sorts_by_priority_pages_in_sql_and_counts(session: Session) -> None:
    article = make_article(session, text="\n".join(f"Claim number {i} is true." for i in range(7)),
                           title="Seven claims")
    flags = [[], ["retracted_evidence"], ["indirect_evidence"], [], ["no_fitting_citation"],
             ["needs_regulatory_source", "indirect_evidence"], []]
    made = [make_claim(session, article=article, sentence=f"Claim number {i} is true.",
                       checkworthiness=0.3 + 0.1 * i, flags=flags[i]) for i in range(7)]
    session.commit()
    expected = sorted(made, key=lambda c: (-review.priority(c.checkworthiness, c.flags), c.id))
    page1, total = queries.claim_queue(session, page=1, page_size=3, required=2)
    page3, _ = queries.claim_queue(session, page=3, page_size=3, required=2)
    assert total == 7
    assert page1.columns.tolist() == queries.QUEUE_COLUMNS
    assert page1["claim_id"].tolist() == [c.id for c in expected[:3]]
    assert page3["claim_id"].tolist() == [expected[6].id]
    assert page1["priority"].tolist() == pytest.approx(
        [review.priority(c.checkworthiness, c.flags) for c in expected[:3]], abs=1e-4)
    assert (page1["article_title"] == "Seven claims").all()
    assert (page1["stage"] == "awaiting review").all()


def test_queue_filters_and_search(session: Session) -> None:
    a1 = make_article(session, title="Clinic A", text="Relief within hours.\nFDA approved.")
    a2 = make_article(session, title="Clinic B", text="Minimal side effects 100% of the time.")
    c1 = make_claim(session, article=a1, sentence="Relief within hours.", category="efficacy",
                    flags=["no_fitting_citation"])
    c2 = make_claim(session, article=a1, sentence="FDA approved.", category="regulatory",
                    flags=["retracted_evidence", "indirect_evidence"])
    c3 = make_claim(session, article=a2, sentence="Minimal side effects 100% of the time.",
                    category="safety")
    rita = make_user(session, username="rita")
    make_link(session, claim=c1)
    make_link(session, claim=c1)
    session.commit()
    assert c1.id and c2.id and c3.id

    def ids(**kw: Any) -> list[int]:
        df, total = queries.claim_queue(session, **kw)
        assert total == len(df)
        return sorted(df["claim_id"].tolist())

    assert ids(article_id=a1.id) == [c1.id, c2.id]
    assert ids(category="safety") == [c3.id]
    assert ids(flags=["indirect_evidence"]) == [c2.id]
    assert ids(flags=["indirect_evidence", "no_fitting_citation"]) == [c1.id, c2.id]
    assert ids(search="WITHIN") == [c1.id]
    assert ids(search="clinic b") == [c3.id]
    assert ids(search="100%") == [c3.id]
    assert ids(search="0_") == []
    df, _ = queries.claim_queue(session, article_id=a1.id)
    assert dict(zip(df["claim_id"], df["n_links"], strict=True)) == {c1.id: 2, c2.id: 0}

    review.save_verdict(session, user=rita, claim_id=c1.id, **VERDICT)
    session.commit()
    assert ids(status="in_review") == [c1.id]
    assert ids(status="unreviewed") == [c2.id, c3.id]
    assert ids(unreviewed_by=rita.id) == [c2.id, c3.id]
    df, _ = queries.claim_queue(session, status="in_review", required=2)
    assert df[["n_reviews", "stage"]].values.tolist() == [[1, "awaiting second review"]]


def test_queue_leaves_out_superseded_article_revisions(session: Session) -> None:
    old = make_article(session, is_current=False)
    make_claim(session, article=old)
    session.commit()
    assert queries.claim_queue(session)[1] == 0
    assert queries.claim_queue(session, current_only=False)[1] == 1


def test_next_claim_follows_queue_order_and_wraps(session: Session) -> None:
    article = make_article(session, text="A one.\nB two.\nC three.")
    a = make_claim(session, article=article, sentence="A one.", checkworthiness=0.9)
    b = make_claim(session, article=article, sentence="B two.", checkworthiness=0.5)
    c = make_claim(session, article=article, sentence="C three.", checkworthiness=0.5)
    rita = make_user(session, username="rita")
    session.commit()
    assert a.id and b.id and c.id
    assert queries.next_claim_id(session, after_claim_id=a.id) == b.id
    assert queries.next_claim_id(session, after_claim_id=b.id) == c.id
    assert queries.next_claim_id(session, after_claim_id=c.id) == a.id
    review.save_verdict(session, user=rita, claim_id=b.id, **VERDICT)
    session.commit()
    assert queries.next_claim_id(session, after_claim_id=a.id, unreviewed_by=rita.id) == c.id
    assert queries.next_claim_id(session, after_claim_id=a.id, status="in_review") == b.id
    assert queries.next_claim_id(session, after_claim_id=b.id, status="in_review") is None


# --------------------------------------------------------------------------- claim screen reads


def test_paragraph_bounds() -> None:
    text = "Title\n\nFirst sentence. The claim here. Last one.\nNext paragraph."
    start = text.index("The claim")
    p0, p1 = queries.paragraph_bounds(text, start, start + len("The claim here."))
    assert text[p0:p1] == "First sentence. The claim here. Last one."
    assert queries.paragraph_bounds("only", 0, 4) == (0, 4)


def test_claim_context_and_siblings(session: Session) -> None:
    cc = make_canonical(session)
    c1 = make_claim(session, canonical_id=cc.id, suggested_certainty="low",
                    suggestion_reasons=["why"])
    other = make_article(session, title="Another clinic",
                         text="Intro.\nMany patients feel relief within hours of their first "
                              "infusion.")
    c2 = make_claim(session, article=other, canonical_id=cc.id)
    session.commit()
    assert c1.id and c2.id
    ctx = queries.claim_context(session, c1.id)
    assert ctx is not None
    assert ctx.paragraph.startswith("Many patients") and ctx.paragraph.endswith("depression.")
    assert ctx.paragraph[ctx.claim_start:ctx.claim_end] == c1.text
    assert (ctx.canonical_statement, ctx.suggested_certainty) == (cc.statement, "low")
    sib = queries.canonical_siblings(session, c1.id)
    assert sib[["claim_id", "article_title"]].values.tolist() == [[c2.id, "Another clinic"]]
    assert queries.claim_context(session, 999) is None


def test_claim_studies_ranked_with_flags(session: Session) -> None:
    claim = make_claim(session)
    s_low = make_study(session, title="Case report", design="case_report", evidence_level="4")
    s_top = make_study(session, title="Retracted RCT", is_retracted=True, doi="10.1/x")
    make_link(session, claim=claim, study=s_low, rank=2, score=3.0, indirect=True)
    make_link(session, claim=claim, study=s_top, rank=1, score=9.0,
              explanation={"sentences": [[0, 11, "Background:", 1.2]], "terms": ["ketamine"]})
    session.commit()
    assert claim.id is not None
    df = queries.claim_studies(session, claim.id)
    assert df.columns.tolist() == queries.STUDY_LINK_COLUMNS
    assert df["title"].tolist() == ["Retracted RCT", "Case report"]
    assert df["retracted"].tolist() == [True, False]
    assert df["indirect"].tolist() == [False, True]
    assert df.iloc[0]["explanation"]["terms"] == ["ketamine"]


# --------------------------------------------------------------------------- manual links


def test_add_manual_link_for_a_known_study(session: Session) -> None:
    claim = make_claim(session)
    make_link(session, claim=claim, rank=1)
    make_study(session, pmid="90000303")
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    link = review.add_manual_link(session, user=rita, claim_id=claim.id, pmid=" PMID: 90000303")
    session.commit()
    assert (link.origin, link.rank, link.created_by) == ("manual", 2, "rita")
    ev = _events(session, "link.manual")
    assert [(e.actor, e.entity_id) for e in ev] == [("rita", str(link.id))]
    with pytest.raises(InputError, match="already linked"):
        review.add_manual_link(session, user=rita, claim_id=claim.id, pmid="90000303")


def test_add_manual_link_for_an_unknown_pmid(session: Session) -> None:
    claim = make_claim(session)
    rita = make_user(session, username="rita")
    session.commit()
    assert claim.id is not None
    with pytest.raises(NotFound, match=r"substantiate ingest pubmed --pmid 90000312"):
        review.add_manual_link(session, user=rita, claim_id=claim.id, pmid="90000312")
    with pytest.raises(InputError, match="not a PubMed id"):
        review.add_manual_link(session, user=rita, claim_id=claim.id, pmid="10.5555/xyz")

    fetched: list[str] = []

    def fetch(s: Session, pmid: str) -> Any:
        fetched.append(pmid)
        return make_study(s, pmid=pmid)

    link = review.add_manual_link(session, user=rita, claim_id=claim.id, pmid="90000312",
                                  fetch=fetch)
    session.commit()
    assert fetched == ["90000312"]
    assert session.get(EvidenceLink, link.id) is not None


# --------------------------------------------------------------------------- users


def test_ensure_first_admin_creates_one_admin_once(session: Session) -> None:
    created = review.ensure_first_admin(session)
    session.commit()
    assert created is not None
    username, password = created
    user = crud.authenticate(session=session, username=username, password=password)
    assert user is not None and user.role == "admin"
    assert review.ensure_first_admin(session) is None
    assert crud.count_users(session) == 1


def test_admin_adds_users_and_changes_roles(session: Session) -> None:
    root = make_user(session, username="root", role="admin")
    session.commit()
    with pytest.raises(InputError, match="at least 8"):
        review.add_user(session, actor=root, username="x", role="viewer", password="short")
    u = review.add_user(session, actor=root, username="nina", role="viewer",
                        password="long enough pw")
    session.commit()
    assert u.id is not None
    review.set_role(session, actor=root, user_id=u.id, role="reviewer", expected_version=1)
    session.commit()
    with pytest.raises(StaleWrite):
        review.set_role(session, actor=root, user_id=u.id, role="admin", expected_version=1)
    session.rollback()
    df = queries.users(session)
    assert df.set_index("username").loc["nina", "role"] == "reviewer"
    assert [e.actor for e in _events(session, "user.add")] == ["root"]


def test_user_for_oidc(session: Session) -> None:
    a = make_user(session, username="Alice@Example.org", password=None)
    b = make_user(session, username="bob")
    b.oidc_subject = "sub-123"
    gone = make_user(session, username="gone@example.org")
    gone.active = False
    session.commit()
    assert queries.user_for_oidc(session, subject=None, email="alice@example.org",
                                 email_verified=True) == a
    # An address the provider did not verify matches no one (the subject still does).
    assert queries.user_for_oidc(session, subject=None, email="alice@example.org") is None
    assert queries.user_for_oidc(session, subject="idp|9", email="alice@example.org",
                                 email_verified=False) is None
    assert queries.user_for_oidc(session, subject="sub-123", email="x@y") == b
    assert queries.user_for_oidc(session, subject="nope", email="gone@example.org",
                                 email_verified=True) is None
    assert queries.get_user(session, gone.id or 0) is None


# --------------------------------------------------------------------------- dashboard / exports


def test_dashboard_reads(session: Session) -> None:
    a1 = make_article(session, title="Clinic A")
    c1 = make_claim(session, article=a1, category="efficacy")
    c2 = make_claim(session, sentence="Side effects are minimal and pass quickly.",
                    article=a1, category="safety")
    c3 = make_claim(session, category="efficacy")
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    ada = make_user(session, username="ada", role="adjudicator")
    make_link(session, claim=c1, study=make_study(session, evidence_level="1b", design="rct"),
              fits=True)
    make_link(session, claim=c2, study=make_study(session, evidence_level=None, design=None),
              fits=False)
    make_link(session, claim=c3, study=make_study(session, evidence_level="4",
                                                  design="case_report"), origin="pubmed")
    session.commit()
    assert c1.id and c2.id and c3.id
    review.save_verdict(session, user=rita, claim_id=c1.id, **VERDICT)
    review.save_verdict(session, user=ravi, claim_id=c1.id,
                        **{**VERDICT, "substantiation": "unsubstantiated"})
    review.save_final_verdict(session, user=ada, claim_id=c1.id,
                              **{**VERDICT, "substantiation": "unsubstantiated"})
    review.save_verdict(session, user=rita, claim_id=c2.id,
                        **{**VERDICT, "substantiation": "contradicted"})
    session.commit()

    counts = queries.status_counts(session)
    assert counts.values.tolist() == [["unreviewed", 1], ["in_review", 1], ["disagreement", 0],
                                      ["final", 1], ["reopened", 0]]
    by_article = queries.outcomes_by(session, "article_title")
    assert by_article[by_article["article_title"] == "Clinic A"][["outcome", "claims"]] \
        .values.tolist() == [["contradicted", 1], ["unsubstantiated", 1]]
    by_cat = queries.outcomes_by(session, "category")
    assert by_cat.values.tolist() == [["efficacy", "unreviewed", 1],
                                      ["efficacy", "unsubstantiated", 1],
                                      ["safety", "contradicted", 1]]
    levels = queries.evidence_levels(session)
    assert levels[["evidence_level", "studies"]].values.tolist() == [["1b", 1], ["4", 1],
                                                                     ["unknown", 1]]
    fit = queries.citation_fit(session)
    assert fit[["article_title", "fit", "links"]].values.tolist() == [
        ["Clinic A", "does not fit", 1], ["Clinic A", "fits", 1]]
    flags = queries.flag_counts(session)
    assert flags["flag"].tolist() == list(review.FLAG_LABELS)


def test_empty_database_reads(session: Session) -> None:
    df, total = queries.claim_queue(session)
    assert (total, df.columns.tolist()) == (0, queries.QUEUE_COLUMNS)
    assert queries.status_counts(session)["claims"].sum() == 0
    for frame in (queries.outcomes_by(session, "category"), queries.evidence_levels(session),
                  queries.citation_fit(session), queries.links(session),
                  queries.verdicts(session), queries.assessments(session),
                  queries.adjudication_queue(session, viewer=None)):
        assert frame.empty
    agreement = queries.agreement(session)
    assert agreement.values.tolist() == [[review.OVERALL, review.OVERALL, 0, 0, None, None]]


def test_export_reads_links_and_verdicts(session: Session) -> None:
    claim = make_claim(session, suggested_certainty="moderate", suggestion_reasons=["r"])
    link = make_link(session, claim=claim, study=make_study(session, pmid="90000313"),
                     indirect=True, fits=False)
    rita = make_user(session, username="rita")
    make_assessment(session, link=link, reviewer=rita, note="n")
    session.commit()
    assert claim.id is not None
    review.save_verdict(session, user=rita, claim_id=claim.id, rationale="one trial",
                        **VERDICT)
    session.commit()
    links = queries.links(session)
    assert links.columns.tolist() == queries.LINK_COLUMNS
    assert links[["claim_id", "pmid", "origin", "rank", "indirect", "fits"]].values.tolist() == [
        [claim.id, "90000313", "cited", 1, True, False]]
    v = queries.verdicts(session)
    assert v.columns.tolist()[:11] == ["claim_id", "reviewer", "kind", "substantiation",
                                       "certainty", "domains", "suggested_certainty",
                                       "rationale", "action", "version", "updated_at"]
    # rita assessed the link, so her suggestion rests on her assessment, not the stored
    # one: an RCT (high) on an indirect link (down one).
    assert v.iloc[0][["reviewer", "kind", "suggested_certainty", "version"]].tolist() == [
        "rita", "review", "moderate", 1]
    assert v.iloc[0]["suggestion_reasons"][0] == "from reviewers' assessments of 1 study " \
        "(PMID 90000313)"
    a = queries.assessments(session)
    assert a[["claim_id", "pmid", "reviewer", "note"]].values.tolist() == [
        [claim.id, "90000313", "rita", "n"]]
    assert session.exec(select(Verdict)).one().canonical_claim_id is None
