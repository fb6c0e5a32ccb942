"""App sign-in: password sign-in with throttling, and sessions that survive a reload.

A password sign-in (``sign_in``) checks the throttle first, then the password
(``crud.authenticate``, which costs the same for unknown users), and on success starts an
app session: a random token (``secrets.token_urlsafe(32)``) that the browser keeps in a
cookie and the database keeps only as its sha256. ``session_user`` turns a token back into
its active user while the session is neither revoked nor idle for longer than
``SESSION_IDLE_HOURS``; ``touch`` moves its last-seen time on at most every
``TOUCH_INTERVAL`` so a busy reviewer does not write on every screen refresh.

Throttling: after ``SIGN_IN_MAX_FAILURES`` failed sign-ins for one username (any case), or
from one client, within ``SIGN_IN_WINDOW_MINUTES``, further attempts for that username or
from that client are refused without checking the password, until enough failures have
aged out of the window. Failures are counted in ``sign_in_failure`` (shared by every app
process through the database) and each one is also recorded in the audit trail
(``user.sign_in_failed``; a refused attempt: ``user.sign_in_throttled``), never with the
password.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from evidence import audit, crud
from evidence.config import Settings, get_settings
from evidence.models import ADMIN, AppSession, AppUser, SignInFailure, utcnow

TOKEN_BYTES = 32
# last_seen_at is written at most this often (and at least twice per idle period).
TOUCH_INTERVAL = timedelta(minutes=5)
FAILED = "user.sign_in_failed"
THROTTLED = "user.sign_in_throttled"
WRONG = "Unknown username or wrong password."
ANONYMOUS = "anonymous"
_NAME_MAX = 120
_CLIENT_MAX = 300


@dataclass(frozen=True)
class SignInResult:
    """What a sign-in attempt came to.

    Attributes
    ----------
    user_id
        The signed-in user's id; ``None`` when the attempt failed or was refused.
    token
        The new session's token for the browser's cookie (never stored in the database).
    message
        Why the attempt failed, as one line for the person signing in.
    throttled
        The attempt was refused unchecked (too many recent failures).
    """

    user_id: int | None = None
    token: str | None = None
    message: str = ""
    throttled: bool = False


@dataclass(frozen=True)
class SessionUser:
    """An app session's active user and the session row it was found by."""

    user: AppUser
    session_id: int
    last_seen_at: datetime


def hash_token(token: str) -> str:
    """The hex sha256 stored for a session token (the token is random, so no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they are UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _idle(settings: Settings) -> timedelta:
    return timedelta(hours=settings.session_idle_hours)


def _throttle_name(username: str) -> str:
    return username.strip().lower()[:_NAME_MAX]


# --------------------------------------------------------------------------- sessions


def start_session(session: Session, *, user_id: int, client: str = "",
                  now: datetime | None = None) -> str:
    """Start an app session for ``user_id`` and return its token (store it in the browser).

    Parameters
    ----------
    session
        Open session; the caller commits.
    user_id
        The signed-in user.
    client
        What identifies the browser (address, user agent), for the admin's eyes only.
    now
        The current time (tests).
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = now or utcnow()
    session.add(AppSession(user_id=user_id, token_hash=hash_token(token), last_seen_at=now,
                           created_at=now, updated_at=now, client=client[:_CLIENT_MAX]))
    session.flush()
    return token


def session_user(session: Session, token: str | None, *, now: datetime | None = None,
                 settings: Settings | None = None) -> SessionUser | None:
    """The active user of a live app session, or ``None``.

    ``None`` when the token is empty or unknown, the session was revoked, it has been idle
    for longer than ``SESSION_IDLE_HOURS``, or its user is deactivated. Reads only.
    """
    if not token:
        return None
    settings = settings or get_settings()
    now = now or utcnow()
    row = session.exec(select(AppSession, AppUser)
                       .join(AppUser, col(AppUser.id) == col(AppSession.user_id))
                       .where(col(AppSession.token_hash) == hash_token(token))).first()
    if row is None:
        return None
    app_session, user = row
    if app_session.revoked_at is not None or not user.active:
        return None
    seen = _aware(app_session.last_seen_at)
    if now - seen >= _idle(settings):
        return None
    assert app_session.id is not None
    return SessionUser(user=user, session_id=app_session.id, last_seen_at=seen)


def needs_touch(found: SessionUser, *, now: datetime | None = None,
                settings: Settings | None = None) -> bool:
    """Whether the session's last-seen time is old enough to be written again."""
    interval = min(TOUCH_INTERVAL, _idle(settings or get_settings()) / 2)
    return (now or utcnow()) - found.last_seen_at >= interval


def touch(session: Session, session_id: int, *, now: datetime | None = None) -> None:
    """Record activity on an app session (the caller commits)."""
    now = now or utcnow()
    session.execute(update(AppSession).where(col(AppSession.id) == session_id,
                                             col(AppSession.revoked_at).is_(None))
                    .values(last_seen_at=now, updated_at=now))


def end_session(session: Session, token: str | None, *, now: datetime | None = None) -> bool:
    """Revoke the app session of ``token`` (sign-out); whether there was a live one."""
    if not token:
        return False
    now = now or utcnow()
    result = session.execute(update(AppSession).where(
        col(AppSession.token_hash) == hash_token(token), col(AppSession.revoked_at).is_(None)
    ).values(revoked_at=now, updated_at=now))
    return bool(getattr(result, "rowcount", 0))


def sign_out_everywhere(session: Session, *, actor: crud.Acting, user_id: int) -> int:
    """Revoke all of a user's app sessions (admins only); how many were revoked.

    The actor's role and ``active`` flag are read from the database in this transaction.

    Raises
    ------
    PermissionDenied
        The actor is not an active admin.
    """
    admin = crud.acting_user(session, actor, ADMIN)
    return crud.revoke_user_sessions(session, user_id=user_id, actor=admin.username)


# --------------------------------------------------------------------------- sign-in


def throttled_for(session: Session, *, username: str, client: str,
                  now: datetime | None = None, settings: Settings | None = None) -> float:
    """Minutes until a sign-in for ``username`` from ``client`` is allowed again (0: now)."""
    settings = settings or get_settings()
    now = now or utcnow()
    window = timedelta(minutes=settings.sign_in_window_minutes)
    limit = settings.sign_in_max_failures
    wait = timedelta(0)
    for column, value in ((SignInFailure.username, _throttle_name(username)),
                          (SignInFailure.client, client[:_CLIENT_MAX])):
        times = session.exec(
            select(SignInFailure.occurred_at)
            .where(col(column) == value, col(SignInFailure.occurred_at) > now - window)
            .order_by(col(SignInFailure.occurred_at).desc()).limit(limit)
        ).all()
        if len(times) >= limit:
            # Allowed again once the limit-th newest failure leaves the window.
            wait = max(wait, _aware(times[-1]) + window - now)
    return max(wait.total_seconds(), 0.0) / 60


def sign_in(session: Session, *, username: str, password: str, client: str,
            now: datetime | None = None, settings: Settings | None = None) -> SignInResult:
    """Check a password sign-in and start an app session on success.

    Parameters
    ----------
    session
        Open session that the caller commits, whatever the outcome: failures and refusals
        are recorded (``sign_in_failure`` and the audit trail).
    username, password
        As typed. The password is never stored or recorded.
    client
        What identifies the client for throttling (its address; see README).
    now, settings
        The current time and settings (tests).

    Returns
    -------
    SignInResult
        The user and session token, or why the attempt failed.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    client = client[:_CLIENT_MAX]
    name = _throttle_name(username)
    detail = {"username": username.strip()[:_NAME_MAX], "client": client}
    wait = throttled_for(session, username=username, client=client, now=now,
                         settings=settings)
    if wait > 0:
        audit.record(session, actor=ANONYMOUS, action=THROTTLED, entity="app_user",
                     entity_id=_user_id(session, username), after=detail)
        minutes = max(1, math.ceil(wait))
        return SignInResult(throttled=True, message=(
            f"Too many failed sign-ins for this username or from this address; "
            f"try again in {minutes} minute{'s' if minutes != 1 else ''}."))
    user = crud.authenticate(session=session, username=username, password=password)
    if user is None or user.id is None:
        session.add(SignInFailure(username=name, client=client, occurred_at=now,
                                  created_at=now, updated_at=now))
        # Failures older than the window count for nothing: prune them as we go.
        session.execute(delete(SignInFailure).where(
            col(SignInFailure.occurred_at) <= now - timedelta(
                minutes=settings.sign_in_window_minutes)))
        audit.record(session, actor=ANONYMOUS, action=FAILED, entity="app_user",
                     entity_id=_user_id(session, username), after=detail)
        return SignInResult(message=WRONG)
    # A success clears this username's failures (not the client's: one known password
    # must not reset the count of guesses at other accounts).
    session.execute(delete(SignInFailure).where(col(SignInFailure.username) == name))
    token = start_session(session, user_id=user.id, client=client, now=now)
    return SignInResult(user_id=user.id, token=token)


def _user_id(session: Session, username: str) -> str:
    """The id of the user named ``username``, or ``-`` (the audit row's entity id)."""
    found = session.exec(select(AppUser.id).where(
        func.lower(col(AppUser.username)) == _throttle_name(username))).first()
    return str(found) if found is not None else "-"

