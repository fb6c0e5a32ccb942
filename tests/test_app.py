"""The reviewer app, screen by screen, through ``streamlit.testing.v1.AppTest``.

Each test points the app at its own SQLite file (``DATABASE_URL``), seeds it with the
factories, drives the real ``app.py`` and checks what reached the database.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import markdown_it
import pyarrow as pa
import pytest
from sqlalchemy import Engine, inspect
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from evidence import auth, config, crud, db, queries, review
from evidence.models import AppSession, AppUser, AuditEvent, CanonicalClaim, Claim, Verdict
from tests.factories import (
    make_article,
    make_claim,
    make_link,
    make_study,
    make_user,
    make_verdict,
    reopen_by_surveillance,
)

APP = Path(__file__).resolve().parents[1] / "app.py"
PASSWORD = "correct horse battery"
VERDICT = {"substantiation": "substantiated", "certainty": "moderate", "action": "approve"}


@pytest.fixture
def app_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The app's database: a fresh SQLite file named by DATABASE_URL (no schema yet)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    config.reset_settings()
    return url


@pytest.fixture
def engine(app_url: str) -> Iterator[Engine]:
    """The app's database with the schema (by migrations, as the app makes it)."""
    eng = db.get_engine()
    db.upgrade(eng)
    yield eng


@pytest.fixture
def seeded(engine: Engine) -> dict[str, Any]:
    """Two articles, three claims (one with two studies), and one user per role."""
    with Session(engine) as s:
        a1 = make_article(s, title="Ketamine clinic blog")
        c1 = make_claim(s, article=a1, checkworthiness=0.9, suggested_certainty="moderate",
                        suggestion_reasons=["1 RCT supports the claim: starts high",
                                            "imprecision: -1"],
                        flags=["no_fitting_citation"])
        c2 = make_claim(s, article=a1, sentence="Side effects are minimal and pass quickly.",
                        checkworthiness=0.7, category="safety")
        c3 = make_claim(s, checkworthiness=0.2)
        l1 = make_link(s, claim=c1, rank=1, study=make_study(s, doi="10.1016/j.jad.2020.01.001"),
                       explanation={"sentences": [[68, 152, "Results: Ketamine reduced "
                                                   "depressive symptoms within 24 hours "
                                                   "compared with placebo.", 2.5]],
                                    "terms": ["ketamine", "hours"]})
        l2 = make_link(s, claim=c1, rank=2, study=make_study(
            s, title="Ketamine for depression: a narrative review", design=
            "narrative_review", evidence_level="5", is_retracted=True, pub_year=None,
            journal=None), fits=True)
        make_link(s, claim=c1, rank=3, study=make_study(
            s, title="Ketamine for anorexia nervosa: a case series", design="case_series",
            evidence_level="4"), fits=False)
        users = {role: make_user(s, username=name, role=role) for name, role in [
            ("vera", "viewer"), ("rita", "reviewer"), ("ada", "adjudicator"),
            ("root", "admin")]}
        users["ravi"] = make_user(s, username="ravi", role="reviewer")
        users["abe"] = make_user(s, username="abe", role="adjudicator")
        s.commit()
        return {"claims": [c1.id, c2.id, c3.id], "links": [l1.id, l2.id],
                "users": {u.username: u.id for u in users.values()}}


def _app(user_id: int | None = None, **session: Any) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if user_id is not None:
        at.session_state["user_id"] = user_id
    for k, v in session.items():
        at.session_state[k] = v
    return at


def _open_claim(user_id: int, claim_id: int) -> AppTest:
    at = _app(user_id, claim_id=claim_id).run()
    at.switch_page("app_pages/claim.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == f"Claim #{claim_id}"
    return at


def _radio(at: AppTest, label: str, n: int = 0) -> Any:
    return [r for r in at.radio if r.label == label][n]


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "warning", "success")
             for e in getattr(at, kind)]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def _verdicts(engine: Engine) -> list[Verdict]:
    with Session(engine) as s:
        return list(s.exec(select(Verdict).order_by(Verdict.id)).all())  # type: ignore[arg-type]


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _grade(at: AppTest, *, substantiation: str = "unsubstantiated",
           certainty: str | None = None, action: str = "add_reference",
           rationale: str | None = None) -> None:
    _radio(at, "Substantiation").set_value(substantiation)
    if certainty is not None:
        _radio(at, "GRADE certainty").set_value(certainty)
    _radio(at, "Action").set_value(action)
    if rationale is not None:
        next(t for t in at.text_area if t.label.startswith("Rationale")).input(rationale)


# --------------------------------------------------------------------------- sign-in


def test_app_creates_the_schema_and_offers_sign_in_on_an_empty_database(app_url: str) -> None:
    at = _app().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Substantiate"
    assert [b.label for b in at.button] == ["Sign in"]
    assert "audit_event" in inspect(db.get_engine()).get_table_names()


def test_bad_database_url_is_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://db.example/substantiate")
    config.reset_settings()
    at = _app().run()
    assert not at.exception
    message = _rendered_text(at.error[0].value)
    assert message == ("The database cannot be opened: DATABASE_URL uses 'mysql'; "
                       "supported: sqlite, postgresql (+psycopg)")


def test_sign_in_with_password(seeded: dict[str, Any]) -> None:
    at = _app().run()
    at.text_input(key="sign_in_username").input("rita")
    at.text_input(key="sign_in_password").input("wrong password")
    at.button(key="sign_in_submit").click().run()
    assert at.error[0].value == "Unknown username or wrong password."
    assert "user_id" not in at.session_state

    at.text_input(key="sign_in_password").input(PASSWORD)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception
    assert at.session_state["user_id"] == seeded["users"]["rita"]
    assert at.title[0].value == "Review queue"
    assert "Signed in as **rita** · reviewer" in [m.value for m in at.sidebar.markdown]

    at.button(key="sign_out").click().run()
    assert at.title[0].value == "Substantiate"
    assert "user_id" not in at.session_state


def _sign_in(at: AppTest, username: str = "rita", password: str = PASSWORD) -> AppTest:
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(password)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception, at.exception
    return at


def _app_sessions(engine: Engine) -> list[AppSession]:
    with Session(engine) as s:
        return list(s.exec(select(AppSession).order_by(AppSession.id)).all())  # type: ignore[arg-type]


def test_a_password_sign_in_is_kept_by_a_token_until_sign_out(
    seeded: dict[str, Any], engine: Engine
) -> None:
    at = _sign_in(_app().run())
    token = at.session_state["session_token"]
    (row,) = _app_sessions(engine)
    assert row.user_id == seeded["users"]["rita"] and row.revoked_at is None
    assert row.token_hash == auth.hash_token(token) != token
    # The token goes to the browser's cookie (our one script), never into the URL.
    cookie_script = [h.proto.body for h in at.html if "substantiate_session" in h.proto.body]
    assert len(cookie_script) == 1 and json.dumps(token) in cookie_script[0]
    assert "SameSite=Strict" in cookie_script[0] and "Path=/" in cookie_script[0]
    assert all(token not in str(v) for v in at.query_params.values())

    # A new tab brings the token (from the cookie) and is signed in without a password.
    tab = _app(session_token=token).run()
    assert not tab.exception, tab.exception
    assert tab.title[0].value == "Review queue"
    assert tab.session_state["user_id"] == seeded["users"]["rita"]

    at.button(key="sign_out").click().run()
    assert at.title[0].value == "Substantiate"
    (row,) = _app_sessions(engine)
    assert row.revoked_at is not None
    clear = [h.proto.body for h in at.html if "substantiate_session" in h.proto.body]
    assert len(clear) == 1 and "Max-Age=0" in clear[0]
    # The other tab is signed out on its next run; the revoked token signs no one in.
    tab.run()
    assert tab.title[0].value == "Substantiate"
    assert _app(session_token=token).run().title[0].value == "Substantiate"


def test_an_idle_or_revoked_session_asks_to_sign_in_again(
    seeded: dict[str, Any], engine: Engine
) -> None:
    at = _sign_in(_app().run())
    token = at.session_state["session_token"]
    with Session(engine) as s:
        row = s.exec(select(AppSession)).one()
        row.last_seen_at = row.last_seen_at - timedelta(hours=8, minutes=1)
        s.add(row)
        s.commit()
    at.run()
    assert at.title[0].value == "Substantiate"
    assert "user_id" not in at.session_state

    # An admin signs rita out everywhere from the Users screen.
    at = _sign_in(_app().run())
    assert at.title[0].value == "Review queue"
    admin = _app(seeded["users"]["root"]).run()
    admin.switch_page("app_pages/users.py").run()
    admin.selectbox(key="users_access_target").set_value(seeded["users"]["rita"])
    admin.button(key="users_sign_out_everywhere").click().run()
    assert not admin.exception, admin.exception
    assert "Signed rita out of 2 sessions." in admin.success[0].value  # idle one too
    at.run()
    assert at.title[0].value == "Substantiate"
    assert _app(session_token=token).run().title[0].value == "Substantiate"


def test_a_link_to_a_claim_opens_it_after_sign_in(seeded: dict[str, Any]) -> None:
    c2 = seeded["claims"][1]
    at = _app()
    at.query_params["claim"] = str(c2)
    at.run()
    assert at.title[0].value == "Substantiate"
    _sign_in(at)
    assert at.title[0].value == f"Claim #{c2}"


def test_repeated_failed_sign_ins_are_refused_with_a_clear_message(
    seeded: dict[str, Any], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN_IN_MAX_FAILURES", "2")
    config.reset_settings()
    at = _app().run()
    for _ in range(2):
        _sign_in(at, password="wrong password")
        assert at.error[0].value == "Unknown username or wrong password."
    _sign_in(at)  # the right password, too late
    assert at.error[0].value.startswith("Too many failed sign-ins")
    assert "user_id" not in at.session_state
    assert [e.action for e in _events(engine, "user.sign_in_failed")] == [
        "user.sign_in_failed"] * 2
    assert len(_events(engine, "user.sign_in_throttled")) == 1


def test_sso_button_only_when_configured(seeded: dict[str, Any]) -> None:
    at = _app().run()
    assert "Sign in with SSO" not in [b.label for b in at.button]

    at = _app()
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "s", "client_id": "id", "client_secret": "x",
                          "server_metadata_url": "https://idp.example/.well-known/x"}
    at.run()
    assert "Sign in with SSO" in [b.label for b in at.button]


def test_sso_identity_maps_to_a_user_or_is_refused(engine: Engine) -> None:
    with Session(engine) as s:
        alice = make_user(s, username="alice@example.org", role="reviewer", password=None)
        s.commit()
        alice_id = alice.id
    auth = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
            "client_id": "id", "client_secret": "x",
            "server_metadata_url": "https://idp.example/.well-known/x"}

    at = _app()
    at.secrets["auth"] = auth
    at.user = {"is_logged_in": True, "email": "Alice@Example.org", "sub": "idp|1",
               "email_verified": True}
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["user_id"] == alice_id
    assert at.title[0].value == "Review queue"

    # The same address, not verified by the provider, matches no one.
    at = _app()
    at.secrets["auth"] = auth
    at.user = {"is_logged_in": True, "email": "alice@example.org", "sub": "idp|3",
               "email_verified": False}
    at.run()
    assert not at.exception, at.exception
    assert "user_id" not in at.session_state
    assert "has not verified this e-mail address" in at.error[0].value

    at = _app()
    at.secrets["auth"] = auth
    at.user = {"is_logged_in": True, "email": "mallory@example.org", "sub": "idp|2"}
    at.run()
    assert "no active Substantiate account for mallory" in at.error[0].value.replace("\\", "")
    assert "user_id" not in at.session_state


# --------------------------------------------------------------------------- empty states


def test_every_screen_works_before_there_are_claims_or_studies(engine: Engine) -> None:
    with Session(engine) as s:
        created = review.ensure_first_admin(s)
        s.commit()
    assert created is not None
    with Session(engine) as s:
        admin_id = queries.users(s).iloc[0]["user_id"]
    at = _app(int(admin_id)).run()
    assert not at.exception, at.exception
    assert "There are no claims yet" in at.info[0].value
    expected = {
        "app_pages/claim.py": "Pick a claim in the queue",
        "app_pages/dashboard.py": "There are no claims yet",
        "app_pages/adjudication.py": "No claim is waiting for adjudication",
    }
    for page, message in expected.items():
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert message in at.info[0].value, page
    at.switch_page("app_pages/users.py").run()
    assert not at.exception
    assert at.dataframe[0].value["username"].tolist() == ["admin"]


def test_claim_without_studies_says_so(seeded: dict[str, Any]) -> None:
    at = _open_claim(seeded["users"]["rita"], seeded["claims"][1])
    assert any("No fitting study is linked to this claim" in i.value for i in at.info)


# --------------------------------------------------------------------------- roles


def test_viewer_browses_but_every_save_is_refused(seeded: dict[str, Any], engine: Engine) -> None:
    c1 = seeded["claims"][0]
    at = _open_claim(seeded["users"]["vera"], c1)
    n_events = len(_events(engine, "verdict.create"))
    _grade(at)
    at.button(key="claim_save_next").click().run()
    assert any("vera is a viewer" in e.value for e in at.error)
    _radio(at, "Stance").set_value("supports")
    at.button(key=f"claim_assess_save_{seeded['links'][0]}").click().run()
    assert any("vera is a viewer" in e.value for e in at.error)
    at.text_input(key=f"claim_pmid_{c1}").input("12345")
    at.button(key="claim_add_link").click().run()
    assert any("vera is a viewer" in e.value for e in at.error)
    assert _verdicts(engine) == []
    assert len(_events(engine, "verdict.create")) == n_events
    with Session(engine) as s:
        assert queries.assessments(s).empty


def test_navigation_follows_the_role(seeded: dict[str, Any]) -> None:
    at = _app(seeded["users"]["rita"]).run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/adjudication.py")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/users.py")
    at = _app(seeded["users"]["ada"]).run()
    at.switch_page("app_pages/adjudication.py").run()
    assert at.title[0].value == "Adjudication"


# --------------------------------------------------------------------------- queue


def test_queue_lists_claims_by_priority_with_filters(seeded: dict[str, Any]) -> None:
    at = _app(seeded["users"]["rita"]).run()
    table = at.dataframe[0].value
    assert table["claim_id"].tolist() == seeded["claims"]
    assert "3 claims · page 1 of 1" in at.caption[0].value
    at.selectbox(key="queue_category").set_value("safety").run()
    assert at.dataframe[0].value["claim_id"].tolist() == [seeded["claims"][1]]
    at.selectbox(key="queue_category").set_value(None).run()
    at.text_input(key="queue_search").input("relief within").run()
    assert at.dataframe[0].value["claim_id"].tolist() == [seeded["claims"][0],
                                                         seeded["claims"][2]]
    at.text_input(key="queue_search").input("").run()
    at.multiselect(key="queue_flags").set_value(["no_fitting_citation"]).run()
    assert at.dataframe[0].value["claim_id"].tolist() == [seeded["claims"][0]]
    at.multiselect(key="queue_flags").set_value(["retracted_evidence"]).run()
    assert at.info[0].value == "No claim matches these filters."


def test_queue_pages(engine: Engine) -> None:
    with Session(engine) as s:
        text = "\n".join(f"Claim {i} works." for i in range(60))
        article = make_article(s, text=text)
        for i in range(60):
            make_claim(s, article=article, sentence=f"Claim {i} works.",
                       checkworthiness=1 - i / 100)
        rita = make_user(s, username="rita")
        s.commit()
        rita_id = rita.id
    at = _app(rita_id).run()
    assert len(at.dataframe[0].value) == 50
    assert "60 claims · page 1 of 2" in at.caption[0].value
    at.button(key="queue_next").click().run()
    assert len(at.dataframe[0].value) == 10
    assert at.dataframe[0].value["text"].iloc[0] == "Claim 50 works."


# --------------------------------------------------------------------------- grading


def test_full_grading_flow_ends_with_the_verdict_and_its_audit_event(
    seeded: dict[str, Any], engine: Engine
) -> None:
    c1, c2, _ = seeded["claims"]
    at = _app().run()
    at.text_input(key="sign_in_username").input("rita")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at.button(key="sign_in_submit").click().run()
    at.button(key="queue_start").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == f"Claim #{c1}"
    md = _texts(at)
    # The claim highlighted in its paragraph, the retracted study impossible to miss, the
    # matching sentence highlighted, the suggestion with its reasons, the links out.
    assert ":orange-background[**Many patients feel relief within hours" in md
    assert "RETRACTED" in md
    assert ":orange-background[Results\\: **Ketamine** reduced" in md
    assert "Suggested certainty: **moderate**" in md
    assert "imprecision\\: \\-1" in md
    assert "(https://pubmed.ncbi.nlm.nih.gov/" in md
    assert "(https://doi.org/10.1016/j.jad.2020.01.001)" in md
    assert "Journal of Affective Disorders · 2020 ·" in md

    _radio(at, "Stance", 0).set_value("supports")
    _radio(at, "Relevance", 0).set_value("high")
    at.text_input(key=f"claim_assess_{seeded['links'][0]}_1_note").input("n=60, 24 h")
    at.button(key=f"claim_assess_save_{seeded['links'][0]}").click().run()
    assert any("Assessment saved" in s.value for s in at.success)
    # The suggestion now rests on rita's assessment: the RCT supports the claim.
    md = _texts(at)
    assert "Suggested certainty: **high** (from the assessed studies)" in md
    assert "assessments of 1 study" in md

    _grade(at, substantiation="partially_substantiated", certainty="high",
           action="revise_wording")
    at.button(key="claim_save_next").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == f"Claim #{c2}"
    assert f"Verdict on claim #{c1} saved (version 1)." in at.success[0].value

    (v,) = _verdicts(engine)
    assert (v.claim_id, v.kind, v.substantiation, v.certainty, v.action) == (
        c1, "review", "partially_substantiated", "high", "revise_wording")
    assert v.suggested_certainty == "high"
    assert v.domains["risk_of_bias"] == "not_serious"
    (event,) = _events(engine, "verdict.create")
    assert (event.actor, event.entity_id) == ("rita", str(v.id))
    assert event.after is not None and event.after["substantiation"] == "partially_substantiated"
    with Session(engine) as s:
        a = queries.assessments(s)
        assert a[["reviewer", "stance", "relevance", "note"]].values.tolist() == [
            ["rita", "supports", "high", "n=60, 24 h"]]
        claim = s.get(Claim, c1)
        assert claim is not None and claim.status == "in_review"


def test_missing_choices_and_rationale_are_required(seeded: dict[str, Any],
                                                     engine: Engine) -> None:
    c1 = seeded["claims"][0]
    at = _open_claim(seeded["users"]["rita"], c1)
    at.button(key="claim_save").click().run()
    assert at.error[-1].value == "Choose a substantiation, an action."
    _grade(at, certainty="low")
    at.button(key="claim_save").click().run()
    assert "a rationale is required" in at.error[-1].value
    assert _verdicts(engine) == []
    _grade(at, certainty="low", rationale="Only one small trial; imprecise.")
    at.button(key="claim_save").click().run()
    assert [e.value for e in at.error if "RETRACTED" not in e.value] == []
    (v,) = _verdicts(engine)
    assert (v.certainty, v.rationale) == ("low", "Only one small trial; imprecise.")


def test_manual_link_by_pmid(seeded: dict[str, Any], engine: Engine,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from app_pages import ui

    # The fetch finds no record for 90000998: it stores nothing.
    monkeypatch.setattr(ui, "FETCH_STUDY", lambda pmid: None)
    c2 = seeded["claims"][1]
    with Session(engine) as s:
        make_study(s, pmid="90000303", title="Esketamine nasal spray")
        s.commit()
    at = _open_claim(seeded["users"]["rita"], c2)
    at.text_input(key=f"claim_pmid_{c2}").input("90000998")
    at.button(key="claim_add_link").click().run()
    assert "substantiate ingest pubmed \\-\\-pmid 90000998" in at.warning[0].value
    at.text_input(key=f"claim_pmid_{c2}").input("90000303")
    at.button(key="claim_add_link").click().run()
    assert not at.exception
    assert "Study linked" in at.success[0].value
    assert "Esketamine nasal spray" in _texts(at)
    with Session(engine) as s:
        links = queries.links(s)
    assert links[links["claim_id"] == c2][["pmid", "origin"]].values.tolist() == [
        ["90000303", "manual"]]


# --------------------------------------------------------------------------- concurrency


def test_same_reviewer_in_two_tabs_gets_a_clear_conflict(seeded: dict[str, Any],
                                                         engine: Engine) -> None:
    c1, rita = seeded["claims"][0], seeded["users"]["rita"]
    tab1, tab2 = _open_claim(rita, c1), _open_claim(rita, c1)
    _grade(tab1, substantiation="contradicted", action="remove")
    tab1.button(key="claim_save").click().run()
    _grade(tab2, substantiation="substantiated", action="approve")
    tab2.button(key="claim_save").click().run()
    message = tab2.error[-1].value.replace("\\", "")
    assert "Not saved: rita saved this verdict" in message
    assert "substantiation: contradicted" in message and "action: remove" in message
    (v,) = _verdicts(engine)
    assert (v.substantiation, v.version) == ("contradicted", 1)
    # Their input is still in the form; saving again, knowing, replaces the other version.
    assert _radio(tab2, "Substantiation").value == "substantiated"
    tab2.button(key="claim_save").click().run()
    (v,) = _verdicts(engine)
    assert (v.substantiation, v.version) == ("substantiated", 2)
    # The first tab, still on version 1, is now the stale one.
    _grade(tab1, substantiation="unsubstantiated")
    tab1.button(key="claim_save").click().run()
    assert "you edited version 1; it is now version 2" in tab1.error[-1].value.replace("\\", "")
    assert _verdicts(engine)[0].substantiation == "substantiated"
    tab1.button(key="claim_load_theirs").click().run()
    assert _radio(tab1, "Substantiation").value == "substantiated"


def test_two_adjudicators_on_one_final_verdict(seeded: dict[str, Any], engine: Engine) -> None:
    c1 = seeded["claims"][0]
    with Session(engine) as s:
        claim = s.get(Claim, c1)
        assert claim is not None
        for name, sub in (("rita", "substantiated"), ("ravi", "unsubstantiated")):
            user = queries.get_user(s, seeded["users"][name])
            review.save_verdict(s, user=user, claim_id=c1, **{**VERDICT, "substantiation": sub})
        s.commit()

    def adjudicate(name: str, substantiation: str) -> AppTest:
        at = _app(seeded["users"][name]).run()
        at.switch_page("app_pages/adjudication.py").run()
        assert at.selectbox(key="adjudication_claim").value == c1
        _radio(at, "Substantiation").set_value(substantiation)
        _radio(at, "Action").set_value("revise_wording")
        return at

    ada, abe = adjudicate("ada", "partially_substantiated"), adjudicate("abe", "unsubstantiated")
    ada.button(key="adjudication_save").click().run()
    assert "Final verdict on claim" in ada.success[0].value
    abe.button(key="adjudication_save").click().run()
    assert "Not saved: ada saved this verdict" in abe.error[0].value.replace("\\", "")
    finals = [v for v in _verdicts(engine) if v.kind == "final"]
    assert [(v.substantiation, v.version) for v in finals] == [("partially_substantiated", 1)]
    with Session(engine) as s:
        claim = s.get(Claim, c1)
        assert claim is not None and claim.status == "final"
    assert [e.actor for e in _events(engine, "verdict.create")][-1] == "ada"


# --------------------------------------------------------------------------- dual review


def test_blinding_until_own_verdict_is_submitted(seeded: dict[str, Any],
                                                 engine: Engine) -> None:
    c1 = seeded["claims"][0]
    with Session(engine) as s:
        rita = queries.get_user(s, seeded["users"]["rita"])
        review.save_assessment(s, user=rita, link_id=seeded["links"][0], stance="contradicts",
                               note="rita-private-note")
        review.save_verdict(s, user=rita, claim_id=c1, rationale="rita-private-rationale",
                            **{**VERDICT, "certainty": "low"})
        s.commit()
    at = _open_claim(seeded["users"]["ravi"], c1)
    text = _texts(at)
    assert "rita-private" not in text
    assert any("Independent review" in i.value for i in at.info)
    _grade(at, substantiation="substantiated", action="approve")
    at.button(key="claim_save").click().run()
    text = _texts(at)
    assert "rita-private-rationale" in text and "rita-private-note" in text
    with Session(engine) as s:
        claim = s.get(Claim, c1)
        assert claim is not None and claim.status == "disagreement"

    # The adjudicator is not blinded.
    at = _open_claim(seeded["users"]["ada"], c1)
    assert "rita-private-rationale" in _texts(at)


def test_adjudicator_records_final_verdict(seeded: dict[str, Any], engine: Engine) -> None:
    c2 = seeded["claims"][1]

    def review_as(name: str) -> None:
        with Session(engine) as s:
            review.save_verdict(s, user=queries.get_user(s, seeded["users"][name]),
                                claim_id=c2, **VERDICT)
            s.commit()

    review_as("rita")
    # One agreed review is not enough under dual review: the claim is not listed yet.
    at = _app(seeded["users"]["ada"]).run()
    at.switch_page("app_pages/adjudication.py").run()
    assert "No claim is waiting" in at.info[0].value
    review_as("ravi")
    at.run()
    assert at.selectbox(key="adjudication_claim").value == c2
    # Both reviews agree, so the form comes pre-filled; one click records it.
    assert _radio(at, "Substantiation").value == "substantiated"
    assert _radio(at, "GRADE certainty").value == "moderate"
    _radio(at, "Action").set_value("approve")
    at.button(key="adjudication_save").click().run()
    assert not at.exception, at.exception
    assert "No claim is waiting" in at.info[0].value
    with Session(engine) as s:
        claim = s.get(Claim, c2)
        assert claim is not None and claim.status == "final"
        final = queries.final_verdict(s, c2)
    assert final is not None and final["reviewer"] == "ada"


# --------------------------------------------------------------------------- untrusted text


HOSTILE_TITLE = '<script>alert("x")</script> **bold** [link](javascript:alert(1)) :red[red] $x$'


def _rendered_text(markdown: str) -> str:
    """What a CommonMark renderer shows for ``markdown``, as plain text (tags removed)."""
    rendered = markdown_it.MarkdownIt("commonmark").render(markdown)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def test_untrusted_titles_are_shown_literally(engine: Engine) -> None:
    with Session(engine) as s:
        article = make_article(s, title=HOSTILE_TITLE)
        claim = make_claim(s, article=article)
        make_link(s, claim=claim, study=make_study(s, title=HOSTILE_TITLE,
                                                   abstract="<img src=x onerror=alert(1)>"))
        rita = make_user(s, username="rita")
        s.commit()
        ids = (rita.id, claim.id)
    at = _open_claim(*ids)
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption]
    title_md = next(m for m in shown if "script" in m and m.startswith("**1. "))
    assert "<script>" not in title_md
    assert _rendered_text(title_md) == f"1. {HOSTILE_TITLE}"
    source_md = next(c for c in shown if c.startswith("From "))
    assert _rendered_text(source_md).startswith(f"From {HOSTILE_TITLE} ·")
    abstract_md = next(m for m in shown if "img" in m)
    assert _rendered_text(abstract_md) == "<img src=x onerror=alert(1)>"
    # The app never asks Streamlit to render HTML.
    assert not any(m.proto.allow_html for m in at.markdown)


def test_md_escape_and_highlight_keep_text_literal() -> None:
    from app_pages import ui

    text = "a *b* <i>c</i> [d](e) # f `g` \\ h_i_ 1. j | k ~~l~~ $m$ :n: &amp;"
    assert _rendered_text(ui.md_escape(text)) == text
    marked = ui.highlight("Before <b>. The claim [1]. After *x*.", [(12, 26)],
                          terms=["after"], bold_spans=True)
    assert marked == ("Before \\<b\\>\\. :orange-background[**The claim \\[1\\]\\.**] "
                      "**After** \\*x\\*\\.")


# --------------------------------------------------------------------------- dashboard, users


def test_dashboard_charts_carry_their_numbers(seeded: dict[str, Any], engine: Engine) -> None:
    c1, c2, _ = seeded["claims"]
    with Session(engine) as s:
        for name, pairs in (("rita", [(c1, "substantiated"), (c2, "contradicted")]),
                            ("ravi", [(c1, "substantiated"), (c2, "unsubstantiated")])):
            user = queries.get_user(s, seeded["users"][name])
            for cid, sub in pairs:
                review.save_verdict(s, user=user, claim_id=cid,
                                    **{**VERDICT, "substantiation": sub})
        s.commit()
    at = _app(seeded["users"]["vera"]).run()
    at.switch_page("app_pages/dashboard.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Claims"] == "3"
    assert metrics["Disagreements"] == "1"
    # kappa: 2 claims, 1 agreement; rita s,c / ravi s,u -> p_o 0.5, p_e 0.25 -> 0.33
    assert metrics["Overall kappa"] == "0.33"
    charts = at.get("vega_lite_chart")
    assert len(charts) == 6
    specs = [json.loads(c.proto.spec) for c in charts]
    assert all(any(layer["mark"]["type"] == "text" for layer in spec["layer"])
               for spec in specs)
    status = next(df.value for df in at.dataframe if list(df.value.columns) == ["status",
                                                                              "claims"])
    assert status.values.tolist() == [["unreviewed", 1], ["in_review", 1],
                                      ["disagreement", 1], ["final", 0], ["reopened", 0]]
    card = next(df.value for df in at.dataframe if "citations_addressing_no_claim"
                in df.value.columns)
    first = card.iloc[0]
    assert (first["title"], first["claims"], first["with_fitting_citation"]) == (
        "Ketamine clinic blog", 2, 1)
    assert card["claims"].sum() == 3


def test_admin_adds_a_user_and_changes_a_role(seeded: dict[str, Any], engine: Engine) -> None:
    at = _app(seeded["users"]["root"]).run()
    at.switch_page("app_pages/users.py").run()
    at.text_input(key="users_username").input("nina")
    at.selectbox(key="users_role").set_value("viewer")
    at.text_input(key="users_password").input("short")
    at.button(key="users_add_submit").click().run()
    assert "at least 8 characters" in at.error[0].value
    at.text_input(key="users_username").input("nina")
    at.text_input(key="users_password").input("long enough password")
    at.button(key="users_add_submit").click().run()
    assert "Added nina" in at.success[0].value
    with Session(engine) as s:
        nina = queries.users(s).set_index("username").loc["nina"]
    at.selectbox(key="users_target").set_value(int(nina["user_id"]))
    at.selectbox(key="users_new_role").set_value("reviewer")
    at.button(key="users_role_submit").click().run()
    with Session(engine) as s:
        assert queries.users(s).set_index("username").loc["nina", "role"] == "reviewer"
    assert [e.actor for e in _events(engine, "user.role")] == ["root"]


def test_stale_assessment_in_a_second_tab_is_refused(seeded: dict[str, Any],
                                                      engine: Engine) -> None:
    c1, rita, link = seeded["claims"][0], seeded["users"]["rita"], seeded["links"][0]
    tab1, tab2 = _open_claim(rita, c1), _open_claim(rita, c1)
    _radio(tab1, "Stance", 0).set_value("contradicts")
    tab1.button(key=f"claim_assess_save_{link}").click().run()
    _radio(tab2, "Stance", 0).set_value("supports")
    tab2.button(key=f"claim_assess_save_{link}").click().run()
    assert "Not saved: rita saved this assessment" in tab2.error[0].value.replace("\\", "")
    assert "stance: contradicts" in tab2.error[0].value.replace("\\", "")
    with Session(engine) as s:
        assert queries.assessments(s)["stance"].tolist() == ["contradicts"]
    tab2.button(key=f"claim_assess_reload_{link}").click().run()
    assert _radio(tab2, "Stance", 0).value == "contradicts"
    assert not [e for e in tab2.error if "Not saved" in e.value]


def test_manual_link_fetches_an_unknown_pmid_through_the_hook(
    seeded: dict[str, Any], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app_pages import ui

    fetched: list[str] = []

    def fetch(pmid: str) -> None:
        # Like ingest.pubmed.fetch_studies: its own transaction on the app's database.
        fetched.append(pmid)
        with db.session_scope(engine) as s:
            make_study(s, pmid=pmid, title="Fetched from PubMed")

    monkeypatch.setattr(ui, "FETCH_STUDY", fetch)
    c2 = seeded["claims"][1]
    viewer = _open_claim(seeded["users"]["vera"], c2)
    viewer.text_input(key=f"claim_pmid_{c2}").input("90004242")
    viewer.button(key="claim_add_link").click().run()
    assert "vera is a viewer" in viewer.error[0].value
    assert fetched == []
    at = _open_claim(seeded["users"]["rita"], c2)
    at.text_input(key=f"claim_pmid_{c2}").input("PMID: 90004242")
    at.button(key="claim_add_link").click().run()
    assert not at.exception, at.exception
    assert fetched == ["90004242"]
    assert "Study linked" in at.success[0].value
    assert "Fetched from PubMed" in _texts(at)


def test_claim_screen_shows_the_canonical_claim_and_its_repeats(engine: Engine) -> None:
    from tests.factories import make_canonical

    with Session(engine) as s:
        cc = make_canonical(s, statement="ketamine relieves depression within hours")
        here = make_claim(s, canonical_id=cc.id)
        there = make_claim(s, canonical_id=cc.id, article=make_article(
            s, title="Another clinic", text="Many patients feel relief within hours of "
            "their first infusion."))
        rita = make_user(s, username="rita")
        s.commit()
        ids = (rita.id, here.id, there.id)
        cc_id = cc.id
    at = _open_claim(ids[0], ids[1])
    assert any(m.value == f"**Canonical claim #{cc_id}:** ketamine relieves depression within "
               "hours" for m in at.markdown)
    assert at.expander[0].label == "Repeated in 1 other article(s)"
    repeats = at.expander[0].dataframe[0].value
    assert repeats[["claim_id", "article_title"]].values.tolist() == [[ids[2], "Another clinic"]]


def test_manual_link_fetches_from_pubmed_for_real(
    seeded: dict[str, Any], engine: Engine, monkeypatch: pytest.MonkeyPatch, fake_eutils: Any
) -> None:
    """The app's own fetch hook: real HTTP to the fake E-utilities server, then the link."""
    from app_pages import ui
    from tests.pubmed_records import ESKETAMINE_SPRAY, article_xml

    monkeypatch.setattr(ui, "FETCH_STUDY", None)  # app.py installs the real one
    monkeypatch.setenv("EUTILS_BASE_URL", fake_eutils.url)
    config.reset_settings()
    fake_eutils.add_record(str(ESKETAMINE_SPRAY["pmid"]), article_xml(**ESKETAMINE_SPRAY))
    c2 = seeded["claims"][1]
    at = _open_claim(seeded["users"]["rita"], c2)
    at.text_input(key=f"claim_pmid_{c2}").input(str(ESKETAMINE_SPRAY["pmid"]))
    at.button(key="claim_add_link").click().run()
    assert not at.exception, at.exception
    assert "Study linked" in at.success[0].value
    assert [r.utility for r in fake_eutils.requests] == ["efetch"]
    with Session(engine) as s:
        from evidence.models import EvidenceLink, RawRecord, Study

        study = s.exec(select(Study).where(Study.pmid == ESKETAMINE_SPRAY["pmid"])).one()
        assert study.raw_record_id is not None and s.get(RawRecord, study.raw_record_id)
        link = s.exec(select(EvidenceLink).where(EvidenceLink.study_id == study.id)).one()
        assert (link.origin, link.created_by) == ("manual", "rita")


# --------------------------------------------------------------------------- claim library


def _library_group(engine: Engine) -> dict[str, Any]:
    from tests.factories import make_canonical

    with Session(engine) as s:
        cc = make_canonical(s, statement="ketamine relieves depression within hours")
        other = make_canonical(s, statement="ketamine blocks NMDA receptors")
        here = make_claim(s, canonical_id=cc.id)
        there = make_claim(s, canonical_id=cc.id, article=make_article(
            s, title="Another clinic", text="Many patients feel relief within hours of "
            "their first infusion."))
        rita = make_user(s, username="rita")
        vera = make_user(s, username="vera", role="viewer")
        s.commit()
        return {"cc": cc.id, "other": other.id, "here": here.id, "there": there.id,
                "rita": rita.id, "vera": vera.id}


def test_claim_screen_applies_a_verdict_to_the_whole_canonical_claim(engine: Engine) -> None:
    ids = _library_group(engine)
    with Session(engine) as s:
        rita = s.get(AppUser, ids["rita"])
        review.save_verdict(s, user=rita, claim_id=ids["here"], **VERDICT)
        s.commit()
    at = _open_claim(ids["rita"], ids["here"])
    at.button(key="claim_apply_group").click().run()
    assert not at.exception, at.exception
    assert "Verdict applied to 1 claim(s)." in _texts(at)
    source, applied = _verdicts(engine)
    assert (applied.claim_id, applied.applied_from_id) == (ids["there"], source.id)
    assert applied.substantiation == "substantiated"


def test_claim_screen_splits_and_merges_canonical_claims(engine: Engine) -> None:
    ids = _library_group(engine)
    at = _open_claim(ids["rita"], ids["here"])
    at.number_input(key=f"claim_merge_target_{ids['here']}").set_value(ids["other"])
    at.button(key="claim_merge").click().run()
    assert not at.exception, at.exception
    assert f"2 claim(s) moved into canonical claim #{ids['other']}." in _texts(at)
    with Session(engine) as s:
        groups = {c.id: c.canonical_id for c in s.exec(select(Claim)).all()}
    assert groups[ids["here"]] == groups[ids["there"]] == ids["other"]

    at.text_input(key=f"claim_split_statement_{ids['here']}").input("relief within hours")
    at.button(key="claim_split").click().run()
    assert not at.exception, at.exception
    with Session(engine) as s:
        claim = s.get(Claim, ids["here"])
        assert claim is not None and claim.canonical_id not in (ids["cc"], ids["other"])
        assert s.get(CanonicalClaim, claim.canonical_id).statement == (  # type: ignore[union-attr]
            "relief within hours")


def test_viewer_sees_no_claim_library_controls(engine: Engine) -> None:
    ids = _library_group(engine)
    at = _open_claim(ids["vera"], ids["here"])
    keys = {b.key for b in at.button}
    assert not keys & {"claim_apply_group", "claim_split", "claim_merge"}


def test_weaker_matches_stay_behind_a_switch(seeded: dict[str, Any]) -> None:
    at = _open_claim(seeded["users"]["rita"], seeded["claims"][0])
    assert "anorexia nervosa" not in _texts(at)
    assert at.subheader[0].value == "Linked studies (2)"
    at.toggle(key=f"claim_weaker_{seeded['claims'][0]}").set_value(True).run()
    md = _texts(at)
    assert "anorexia nervosa" in md
    assert "weaker match: does not fit the claim" in md


def test_reviewer_attaches_a_regulatory_source(seeded: dict[str, Any], engine: Engine) -> None:
    claim_id = seeded["claims"][0]
    at = _open_claim(seeded["users"]["rita"], claim_id)
    at.selectbox(key=f"claim_source_kind_{claim_id}").set_value("drug_label")
    at.text_input(key=f"claim_source_url_{claim_id}").input(
        "https://labels.example.org/spravato.pdf")
    at.text_input(key=f"claim_source_title_{claim_id}").input("Spravato label")
    at.button(key="claim_source_attach").click().run()
    assert not at.exception, at.exception
    assert any("Source attached" in s.value for s in at.success)
    assert "Spravato label" in _texts(at)
    with Session(engine) as s:
        src = queries.claim_sources(s, claim_id)
        assert src[["kind", "url", "created_by"]].values.tolist() == [
            ["drug_label", "https://labels.example.org/spravato.pdf", "rita"]]
    assert _events(engine, "claim_source.add")[0].actor == "rita"
    # A bad URL is refused in one line, and nothing is stored.
    at.text_input(key=f"claim_source_url_{claim_id}").input("javascript:alert(1)")
    at.button(key="claim_source_attach").click().run()
    assert any("is not an http" in e.value for e in at.error)
    with Session(engine) as s:
        assert len(queries.claim_sources(s, claim_id)) == 1


# --------------------------------------------------------------------------- surveillance

REOPENED_AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
# PubMed notice citations are untrusted text: Markdown and HTML must show as typed.
NOTICE_SOURCE = "*Nature*. 2026 <b>May</b>"


def _reopen(engine: Engine, claim_ids: list[int]) -> None:
    with Session(engine) as s:
        claims = [c for cid in claim_ids if (c := s.get(Claim, cid)) is not None]
        reopened = reopen_by_surveillance(s, claims=claims,
                                          adjudicator=make_user(s, role="adjudicator"),
                                          notice_source=NOTICE_SOURCE, now=REOPENED_AT)
        s.commit()
    assert sorted(r.claim_id for r in reopened) == sorted(claim_ids)


def _banner(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "re-opened by surveillance" in w.value]


def test_reopened_banner_counts_the_claims_and_opens_the_queue_filtered_to_them(
    seeded: dict[str, Any], engine: Engine
) -> None:
    c1, _, c3 = seeded["claims"]
    at = _app(seeded["users"]["rita"]).run()
    assert not at.exception, at.exception
    assert _banner(at) == [] and not [b for b in at.button if b.key == "reopened_banner_show"]

    # rita reviewed c3 before it was decided: the filtered queue still shows it to her.
    with Session(engine) as s:
        claim, rita = s.get(Claim, c3), s.get(AppUser, seeded["users"]["rita"])
        assert claim is not None and rita is not None
        make_verdict(s, claim=claim, reviewer=rita)
        s.commit()
    _reopen(engine, [c1, c3])
    at.switch_page("app_pages/dashboard.py").run()
    assert not at.exception, at.exception
    assert _banner(at) == ["2 claims re-opened by surveillance"]
    assert {m.label: m.value for m in at.metric}["Re-opened"] == "2"

    at.button(key="reopened_banner_show").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Review queue"
    assert at.selectbox(key="queue_status").value == "reopened"
    assert at.toggle(key="queue_not_mine").value is False
    table = at.dataframe[0].value
    assert sorted(table["claim_id"]) == sorted([c1, c3])
    assert set(table["status"]) == {"re-opened"}
    assert set(table["reopened"]) == {"retracted"}
    assert "2 claims · page 1 of 1" in at.caption[0].value
    assert _banner(at) == ["2 claims re-opened by surveillance"]

    # Recording the final verdict again closes a claim: the count follows.
    with Session(engine) as s:
        review.save_final_verdict(s, user=seeded["users"]["ada"], claim_id=c1, **VERDICT,
                                  rationale="re-checked without the retracted study",
                                  expected_version=_final_version(s, c1))
        s.commit()
    at.switch_page("app_pages/queue.py").run()  # the page the button opened, again
    assert _banner(at) == ["1 claim re-opened by surveillance"]
    assert at.dataframe[0].value["claim_id"].tolist() == [c3]


def _final_version(s: Session, claim_id: int) -> int:
    verdict = s.exec(select(Verdict).where(Verdict.claim_id == claim_id,
                                           Verdict.kind == "final")).one()
    return verdict.version


def test_claim_screen_says_why_the_claim_was_reopened_literally(
    seeded: dict[str, Any], engine: Engine
) -> None:
    c1 = seeded["claims"][0]
    _reopen(engine, [c1])
    with Session(engine) as s:
        claim = s.get(Claim, c1)
        assert claim is not None
        make_link(s, claim=claim, origin="surveillance", rank=5, study=make_study(
            s, title="Ketamine for depression: a meta-analysis", design="meta_analysis",
            evidence_level="1a"))
        s.commit()
    at = _open_claim(seeded["users"]["rita"], c1)
    (notice,) = [w.value for w in at.warning if "Re-opened by surveillance" in w.value]
    shown = _rendered_text(notice)
    assert shown.startswith("Re-opened by surveillance on 2026-12-02 09:30 UTC.")
    assert re.search(r"retracted: PMID \d+ retracted \(notice PMID 90000499: "
                     + re.escape(NOTICE_SOURCE) + r"\), found on 2026-12-02; ", shown), shown
    assert "a final verdict is recorded again" in shown
    assert "<b>" not in notice and "*Nature*" not in notice  # escaped, not interpreted
    assert not any(m.proto.allow_html for m in at.markdown)
    assert ":blue-badge[found by surveillance]" in "\n".join(m.value for m in at.markdown)
    assert at.markdown[0].value.startswith(":blue-badge[re\\-opened]")


def _surveil_run(engine: Engine, **counts: int) -> None:
    with crud.ingest_run(engine, kind="surveil", actor="surveil", params={}) as run:
        run.stats = {"since": None, "counts": {"studies_checked": 4, "records_fetched": 4,
                                               "studies_changed": 0, **counts}}


def test_dashboard_charts_surveillance_runs(seeded: dict[str, Any], engine: Engine) -> None:
    at = _app(seeded["users"]["vera"]).run()
    at.switch_page("app_pages/dashboard.py").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("No surveillance run yet") for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 6

    _surveil_run(engine)
    _surveil_run(engine, studies_changed=2, retracted=1, changed=1, claims_reopened=3,
                 new_evidence_links=1)
    at.run()
    assert not at.exception, at.exception
    assert not any(c.value.startswith("No surveillance run yet") for c in at.caption)
    charts = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    (spec,) = [c for c in charts if "xOffset" in json.dumps(c)]
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "text"]
    (data,) = [d for c in at.get("vega_lite_chart") if "xOffset" in c.proto.spec
               for d in c.proto.datasets]
    values = pa.ipc.open_stream(data.data.data).read_pandas()
    found = {(run.split(" · ")[1], measure): count
             for run, measure, count in values[["run", "measure", "count"]].itertuples(
                 index=False)}
    assert found == {("run 2", "studies: retracted"): 1,
                     ("run 2", "studies: title or abstract changed"): 1,
                     ("run 2", "claims re-opened"): 3, ("run 2", "new evidence links"): 1}
    # The empty first run keeps its place on the axis.
    domain = spec["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert [d.split(" · ")[1] for d in domain] == ["run 1", "run 2"]
    table = next(df.value for df in at.dataframe if "claims_reopened" in df.value.columns)
    assert table["claims_reopened"].tolist() == [0, 3]
    assert table["status"].tolist() == ["ok", "ok"]
