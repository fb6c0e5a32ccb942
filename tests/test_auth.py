"""App sessions and sign-in throttling (``evidence.auth``) on both databases.

Time is passed in (``now=``), never waited for; the constant-time path is checked by
counting argon2 verifications, not by timing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session, select

from evidence import auth, config, crud
from evidence.errors import InputError, PermissionDenied
from evidence.models import AppSession, AuditEvent, SignInFailure, utcnow
from tests.factories import make_user

PASSWORD = "correct horse battery"


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting its verifications."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(crud, "_hasher", counting)
    return counting


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)
                             .order_by(AuditEvent.id)).all())  # type: ignore[arg-type]


def _sign_in(session: Session, username: str, password: str, client: str = "10.0.0.1",
             **kw: Any) -> auth.SignInResult:
    result = auth.sign_in(session, username=username, password=password, client=client, **kw)
    session.commit()
    return result


# --------------------------------------------------------------------------- sessions


def test_a_session_token_is_random_stored_hashed_and_finds_its_user(session: Session) -> None:
    rita = make_user(session, username="rita")
    session.commit()
    token = auth.start_session(session, user_id=rita.id or 0, client="10.0.0.1 Chromium")
    other = auth.start_session(session, user_id=rita.id or 0)
    session.commit()
    assert token != other and len(token) >= 43
    rows = session.exec(select(AppSession)).all()
    assert {r.token_hash for r in rows} == {auth.hash_token(token), auth.hash_token(other)}
    assert all(token not in r.token_hash for r in rows)
    found = auth.session_user(session, token)
    assert found is not None and found.user.id == rita.id
    assert auth.session_user(session, token + "x") is None
    assert auth.session_user(session, "") is None


def test_a_session_expires_after_the_idle_limit_and_activity_extends_it(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_IDLE_HOURS", "8")
    config.reset_settings()
    rita = make_user(session, username="rita")
    t0 = utcnow()
    token = auth.start_session(session, user_id=rita.id or 0, now=t0)
    session.commit()
    assert auth.session_user(session, token, now=t0 + timedelta(hours=7, minutes=59))
    assert auth.session_user(session, token, now=t0 + timedelta(hours=8)) is None

    # Activity is written at most every few minutes, and moves the idle limit on.
    found = auth.session_user(session, token, now=t0 + timedelta(minutes=1))
    assert found is not None
    assert not auth.needs_touch(found, now=t0 + timedelta(minutes=1))
    assert auth.needs_touch(found, now=t0 + timedelta(hours=6))
    auth.touch(session, found.session_id, now=t0 + timedelta(hours=6))
    session.commit()
    assert auth.session_user(session, token, now=t0 + timedelta(hours=13))
    assert auth.session_user(session, token, now=t0 + timedelta(hours=14)) is None

    # A tiny idle limit (as the browser test uses) ends it at once.
    monkeypatch.setenv("SESSION_IDLE_HOURS", "0.0001")
    config.reset_settings()
    assert auth.session_user(session, token, now=t0 + timedelta(hours=6, seconds=1)) is None


def test_sign_out_and_admin_actions_revoke_sessions(session: Session) -> None:
    root = make_user(session, username="root", role="admin")
    rita = make_user(session, username="rita")
    ravi = make_user(session, username="ravi")
    session.commit()
    laptop = auth.start_session(session, user_id=rita.id or 0)
    phone = auth.start_session(session, user_id=rita.id or 0)
    tablet = auth.start_session(session, user_id=rita.id or 0)
    ravis = auth.start_session(session, user_id=ravi.id or 0)
    session.commit()

    assert auth.end_session(session, laptop) is True
    session.commit()
    assert auth.session_user(session, laptop) is None
    assert auth.session_user(session, phone) is not None
    assert auth.end_session(session, laptop) is False

    with pytest.raises(PermissionDenied):
        auth.sign_out_everywhere(session, actor=ravi, user_id=rita.id or 0)
    assert auth.sign_out_everywhere(session, actor=root, user_id=rita.id or 0) == 2
    session.commit()
    assert auth.session_user(session, phone) is None
    assert auth.session_user(session, tablet) is None
    assert auth.session_user(session, ravis) is not None
    (event,) = _events(session, crud.SESSIONS_REVOKED)
    assert (event.actor, event.entity_id, event.after) == (
        "root", str(rita.id), {"revoked_sessions": 2})

    # Deactivating a user revokes their sessions; reactivating does not bring them back.
    with pytest.raises(InputError, match="last active admin"):
        crud.set_user_active(session=session, actor=root, user_id=root.id or 0, active=False,
                             expected_version=root.version)
    crud.set_user_active(session=session, actor=root, user_id=ravi.id or 0, active=False,
                         expected_version=ravi.version)
    session.commit()
    assert auth.session_user(session, ravis) is None
    ravi_row = session.get(type(ravi), ravi.id)
    assert ravi_row is not None and ravi_row.active is False
    crud.set_user_active(session=session, actor=root, user_id=ravi.id or 0, active=True,
                         expected_version=ravi_row.version)
    session.commit()
    assert auth.session_user(session, ravis) is None
    assert [e.action for e in session.exec(select(AuditEvent).where(
        AuditEvent.actor == "root")).all()] == [
        crud.SESSIONS_REVOKED, "user.deactivate", crud.SESSIONS_REVOKED, "user.activate"]


def test_a_deactivated_users_session_is_refused(session: Session) -> None:
    rita = make_user(session, username="rita")
    token = auth.start_session(session, user_id=rita.id or 0)
    rita.active = False  # however it was deactivated
    session.commit()
    assert auth.session_user(session, token) is None


# --------------------------------------------------------------------------- sign-in


def test_sign_in_starts_a_session_and_failures_are_audited_without_the_password(
    session: Session,
) -> None:
    rita = make_user(session, username="rita")
    session.commit()
    bad = _sign_in(session, "rita", "wrong password 123")
    assert (bad.user_id, bad.token, bad.message) == (None, None, auth.WRONG)
    unknown = _sign_in(session, "nobody", "guess 456")
    assert unknown.message == auth.WRONG
    good = _sign_in(session, " rita ", PASSWORD)
    assert good.user_id == rita.id and good.token
    found = auth.session_user(session, good.token)
    assert found is not None and found.user.username == "rita"

    events = _events(session, auth.FAILED)
    assert [(e.actor, e.entity, e.entity_id) for e in events] == [
        ("anonymous", "app_user", str(rita.id)), ("anonymous", "app_user", "-")]
    assert [e.after for e in events] == [{"username": "rita", "client": "10.0.0.1"},
                                        {"username": "nobody", "client": "10.0.0.1"}]
    everything = json.dumps([e.after for e in session.exec(select(AuditEvent)).all()])
    assert "wrong password 123" not in everything and "guess 456" not in everything
    # A success clears the username's failures.
    assert session.exec(select(SignInFailure).where(SignInFailure.username == "rita")).all() \
        == []


def test_unknown_inactive_and_password_less_users_cost_one_verification(
    session: Session, hasher: CountingHasher
) -> None:
    make_user(session, username="sso@example.org", password=None)
    gone = make_user(session, username="gone")
    gone.active = False
    make_user(session, username="rita")
    session.commit()
    for name in ("nobody", "gone", "sso@example.org", "rita"):
        before = hasher.verified
        assert crud.authenticate(session=session, username=name, password="wrong pw") is None
        assert hasher.verified - before == 1, name
    assert crud.authenticate(session=session, username="gone", password=PASSWORD) is None


def test_repeated_failures_for_a_username_are_throttled_unchecked(
    session: Session, hasher: CountingHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN_IN_MAX_FAILURES", "5")
    monkeypatch.setenv("SIGN_IN_WINDOW_MINUTES", "15")
    config.reset_settings()
    rita = make_user(session, username="rita")
    session.commit()
    t0 = utcnow()
    for i in range(5):  # from five different addresses
        result = _sign_in(session, "Rita", "nope nope", client=f"10.0.0.{i}",
                          now=t0 + timedelta(minutes=i))
        assert result.message == auth.WRONG
    checked = hasher.verified
    refused = _sign_in(session, "rita", PASSWORD, client="10.9.9.9",
                       now=t0 + timedelta(minutes=5))
    assert refused.throttled and refused.user_id is None
    assert refused.message == ("Too many failed sign-ins for this username or from this "
                               "address; try again in 10 minutes.")
    assert hasher.verified == checked  # the password was not even checked
    (event,) = _events(session, auth.THROTTLED)
    assert (event.entity_id, event.after) == (str(rita.id),
                                              {"username": "rita", "client": "10.9.9.9"})
    # Once the oldest failure leaves the 15-minute window, the right password works.
    assert _sign_in(session, "rita", PASSWORD, client="10.9.9.9",
                    now=t0 + timedelta(minutes=14, seconds=59)).throttled
    ok = _sign_in(session, "rita", PASSWORD, client="10.9.9.9",
                  now=t0 + timedelta(minutes=15, seconds=1))
    assert ok.user_id == rita.id


def test_repeated_failures_from_a_client_are_throttled_for_every_username(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN_IN_MAX_FAILURES", "3")
    config.reset_settings()
    make_user(session, username="rita")
    session.commit()
    t0 = utcnow()
    for name in ("ann", "bob", "cy"):
        assert not _sign_in(session, name, "guess guess", client="203.0.113.7", now=t0).throttled
    assert _sign_in(session, "rita", PASSWORD, client="203.0.113.7", now=t0).throttled
    # Another client is not affected, and one success does not reset the client's count.
    assert _sign_in(session, "rita", PASSWORD, client="198.51.100.1", now=t0).user_id
    assert _sign_in(session, "dee", "guess guess", client="203.0.113.7", now=t0).throttled
    assert len(_events(session, auth.FAILED)) == 3
    assert len(_events(session, auth.THROTTLED)) == 2


def test_old_failures_are_pruned(session: Session) -> None:
    t0 = utcnow()
    _sign_in(session, "ann", "guess guess", now=t0)
    _sign_in(session, "bob", "guess guess", now=t0 + timedelta(hours=1))
    names = [f.username for f in session.exec(select(SignInFailure)).all()]
    assert names == ["bob"]
    # The audit trail keeps both.
    assert len(_events(session, auth.FAILED)) == 2

