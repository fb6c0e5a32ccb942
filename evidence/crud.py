"""Writes: every function takes keyword-only arguments and a ``Session``, and audits.

Each mutation appends an audit event in the same transaction; edits of versioned rows are
compare-and-swap on ``version`` so a stale write is refused with ``StaleWrite``.

Roles
-----
A write that needs a role takes the acting user (``user=`` or ``actor=``: an ``AppUser``,
of which only the id is read, or a user id) and checks it with ``acting_user``, which
reads the user's row, role and ``active`` flag from the database in the write's own
transaction. A role or flag carried by the object passed in is never trusted, and a role
changed since the caller loaded the user is the one that counts. The audit event names
the user's stored username. Writes that take an actor *string* (``ingest_run``,
``update_versioned``) are for jobs and for the checked writes here, never for a person.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, text, update
from sqlmodel import Session, SQLModel, col, select

from evidence import audit, library
from evidence.db import session_scope
from evidence.errors import InputError, NotFound, PermissionDenied, StaleWrite
from evidence.models import (
    ADJUDICATE_ROLES,
    ADMIN,
    CLAIM_STATUSES,
    REVIEW_ROLES,
    ROLES,
    RUN_STATUSES,
    AppSession,
    AppUser,
    CanonicalClaim,
    Claim,
    IngestRun,
    utcnow,
)
from evidence.writer_queue import pid_alive

T = TypeVar("T", bound=SQLModel)

Acting = AppUser | int | None
"""The acting user as a write receives it: an ``AppUser`` (only its ``id`` is used), a user
id, or ``None`` (nobody signed in)."""

SYSTEM = "system"
SESSIONS_REVOKED = "user.sessions_revoke"  # audit action: a user's app sessions revoked
MIN_PASSWORD = 8

RUNNING, OK, PARTIAL, ERROR, INTERRUPTED = RUN_STATUSES
#: The key of an ``ingest_run``'s ``params`` naming the process that runs it.
PROCESS_KEY = "process"

_hasher = PasswordHasher()


# --------------------------------------------------------------------------- generic


def update_versioned(
    session: Session,
    model: type[T],
    row_id: int,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: str,
    action: str,
) -> T:
    """Apply ``changes`` to one row only if it is still at ``expected_version``.

    Parameters
    ----------
    session
        The session carrying the transaction.
    model, row_id
        The table class and the row's id.
    expected_version
        The version the editor read; the write is refused if the row has moved on.
    changes
        Column values to set.
    actor, action
        Recorded in the audit event with the row's before/after snapshots.

    Returns
    -------
    The refreshed row.

    Raises
    ------
    NotFound
        No such row.
    StaleWrite
        Someone else saved the row since ``expected_version``; ``current`` holds their values.
    """
    table: Any = model
    name = str(table.__tablename__)
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{name} {row_id} does not exist")
    before = audit.snapshot(row)
    stmt = (
        update(table)
        .where(table.id == row_id, table.version == expected_version)
        .values(**changes, version=expected_version + 1, updated_at=utcnow())
    )
    result: Any = session.execute(stmt)
    session.refresh(row)
    if result.rowcount == 0:
        current = audit.snapshot(row)
        raise StaleWrite(
            f"{name} {row_id} was changed by someone else "
            f"(you edited version {expected_version}, it is now version {current.get('version')})",
            current=current,
        )
    audit.record(session, actor=actor, action=action,
                 entity=name, entity_id=row_id,
                 before=before, after=audit.snapshot(row))
    return row


class _HasAsDict(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


@dataclass
class RunLog:
    """An open ``ingest_run``: what the job reports while it runs.

    Attributes
    ----------
    id
        The ``ingest_run`` row's id (articles and studies point at it).
    stats
        The job's statistics: a dict, or an object with ``as_dict()`` (a summary the job
        keeps filling in), read when the run closes, so it holds what was done even when
        the job fails part-way.
    problems
        What went wrong without stopping the job; any problem makes the run ``partial``.
    """

    id: int
    stats: dict[str, Any] | _HasAsDict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@contextmanager
def ingest_run(
    engine: Engine, *, kind: str, actor: str, params: dict[str, Any],
) -> Iterator[RunLog]:
    """Record a job as one ``ingest_run`` row, from start to finish.

    The row is committed as ``running`` before the block starts, so a job that dies
    leaves a trace, and closed in its own transaction when the block ends: status ``ok``,
    ``partial`` (``problems`` were reported; they become the run's ``error``),
    ``interrupted`` when the block is stopped by ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM
    turned into it by the CLI) or, when the block raises anything else, ``error`` with the
    exception's message (the exception propagates). Closing audits the run. Unlike the
    other writes this takes an engine: the run's rows are committed apart from the job's
    own transactions.

    The row's ``params`` also name the process (``params["process"]``: pid and host), and
    before it is written, runs of this host still ``running`` whose process is gone (killed
    with SIGKILL, a crash, a power cut) are closed as ``interrupted``
    (:func:`close_interrupted_runs`).

    Parameters
    ----------
    engine
        Database engine.
    kind
        What the job is (``ingest_articles``, ``ingest_pubmed``, ``ingest_medline``,
        ``link``).
    actor
        Who ran it.
    params
        The job's inputs, as JSON.

    Yields
    ------
    RunLog
        The block sets ``stats`` and appends ``problems`` on it.

    Examples
    --------
    >>> with crud.ingest_run(engine, kind="ingest_articles", actor="cli:ann",
    ...                      params={"inputs": paths}) as run:
    ...     run.stats = summary          # read again when the run closes
    ...     run.problems.append("post.html: the article is empty")
    """
    close_interrupted_runs(engine)
    process = {"pid": os.getpid(), "host": socket.gethostname()}
    with session_scope(engine) as session:
        row = IngestRun(kind=kind, actor=actor, params={**params, PROCESS_KEY: process})
        session.add(row)
        session.flush()
        assert row.id is not None
        log = RunLog(id=row.id)
    try:
        yield log
    except KeyboardInterrupt as e:
        _close_quietly(engine, log, e, status=INTERRUPTED,
                       error=f"interrupted ({str(e) or 'SIGINT'})")
        raise
    except BaseException as e:
        _close_quietly(engine, log, e, status=ERROR, error=str(e) or type(e).__name__)
        raise
    _close_run(engine, log, status=PARTIAL if log.problems else OK,
               error="; ".join(log.problems) or None)


def _close_quietly(engine: Engine, log: RunLog, e: BaseException, *, status: str,
                   error: str) -> None:
    try:
        _close_run(engine, log, status=status, error=error)
    except Exception as close_error:  # the job's own error is the one to report
        e.add_note(f"the ingest_run row {log.id} could not be closed: {close_error}")


def close_interrupted_runs(engine: Engine, *, actor: str = SYSTEM) -> list[int]:
    """Close as ``interrupted`` the runs of this host whose process has died.

    A run killed without a chance to close its row (SIGKILL, a crash) would stay
    ``running`` for ever. A ``running`` row whose ``params["process"]`` names this host and
    a process id that no longer exists is closed with status ``interrupted`` and an error
    saying so, audited. Runs of other hosts (a shared PostgreSQL) are left alone: their
    processes cannot be seen from here. Every job calls this before it starts, and so does
    ``substantiate init``.

    Parameters
    ----------
    engine
        Database engine.
    actor
        Recorded on the audit events.

    Returns
    -------
    list of int
        The ids of the runs closed.
    """
    host = socket.gethostname()
    closed: list[int] = []
    with session_scope(engine) as session:
        rows = session.exec(select(IngestRun).where(col(IngestRun.status) == RUNNING)).all()
        for row in rows:
            process = (row.params or {}).get(PROCESS_KEY)
            if not isinstance(process, dict) or process.get("host") != host:
                continue
            pid = process.get("pid")
            if not isinstance(pid, int) or pid == os.getpid() or pid_alive(pid):
                continue
            row.status = INTERRUPTED
            row.error = f"interrupted: process {pid} on {host} ended without closing the run"
            row.finished_at = row.updated_at = utcnow()
            session.add(row)
            session.flush()
            audit.record(session, actor=actor, action=f"run.{row.kind}", entity="ingest_run",
                         entity_id=row.id, after=audit.snapshot(row))
            assert row.id is not None
            closed.append(row.id)
    return closed


def _close_run(engine: Engine, log: RunLog, *, status: str, error: str | None) -> None:
    stats = log.stats if isinstance(log.stats, dict) else log.stats.as_dict()
    with session_scope(engine) as session:
        row = session.get(IngestRun, log.id)
        if row is None:
            raise NotFound(f"ingest_run {log.id} does not exist")
        row.finished_at = row.updated_at = utcnow()
        row.stats, row.status, row.error = stats, status, error
        session.add(row)
        session.flush()
        audit.record(session, actor=row.actor, action=f"run.{row.kind}", entity="ingest_run",
                     entity_id=row.id, after=audit.snapshot(row))


# --------------------------------------------------------------------------- claim library


def regroup_claim(
    *, session: Session, claim_id: int, canonical_id: int | None, expected_version: int,
    user: Acting, new_statement: str | None = None,
) -> Claim:
    """Move a claim to another canonical claim (or a new one with ``new_statement``).

    Parameters
    ----------
    session
        Open session; the caller commits.
    claim_id
        The claim moved.
    canonical_id
        The canonical claim it joins; ``None`` starts a new one (a split).
    expected_version
        The claim's version the caller showed; a stale write is refused.
    user
        The acting reviewer, adjudicator or admin (see ``acting_user``); their username is
        recorded in the audit trail.
    new_statement
        The new canonical claim's wording (default: the claim's).

    Returns
    -------
    Claim
        The moved claim, with its similarity to the new canonical claim.

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a viewer.
    NotFound
        No such claim or canonical claim.
    StaleWrite
        The claim changed since ``expected_version``.
    """
    actor = acting_user(session, user, *REVIEW_ROLES).username
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    subjects = library.claim_subjects(session, claim)
    if canonical_id is None:
        cc = library.new_canonical(new_statement or claim.text, category=claim.category,
                                   subjects=subjects)
        session.add(cc)
        session.flush()
        audit.record(session, actor=actor, action="canonical.create", entity="canonical_claim",
                     entity_id=cc.id, after=audit.snapshot(cc))
        canonical_id = cc.id
    elif session.get(CanonicalClaim, canonical_id) is None:
        raise NotFound(f"canonical claim {canonical_id} does not exist")
    target = session.get(CanonicalClaim, canonical_id)
    assert target is not None
    score = library.regroup_score(claim.text, target, subjects=subjects,
                                  category=claim.category)
    return update_versioned(session, Claim, claim_id, expected_version=expected_version,
                            changes={"canonical_id": canonical_id, "canonical_score": score},
                            actor=actor, action="claim.regroup")


def edit_claim(*, session: Session, claim_id: int, expected_version: int, user: Acting,
               category: str | None = None, status: str | None = None) -> Claim:
    """Change a claim's category or status (versioned, audited).

    Parameters
    ----------
    session
        Open session; the caller commits.
    claim_id, expected_version
        The claim, and its version the caller showed.
    user
        The acting user (see ``acting_user``): a reviewer, adjudicator or admin may change
        the category; setting the status by hand (it normally follows the verdicts) needs
        an adjudicator or admin.
    category, status
        The new values; ``None`` leaves one as it is. ``status`` is one of
        ``CLAIM_STATUSES``.

    Returns
    -------
    Claim

    Raises
    ------
    PermissionDenied
        No user, an unknown or deactivated user, or a role that may not make the change.
    InputError
        Unknown status.
    NotFound
        No such claim.
    StaleWrite
        The claim changed since ``expected_version``.
    """
    actor = acting_user(session, user,
                        *(ADJUDICATE_ROLES if status is not None else REVIEW_ROLES))
    changes: dict[str, Any] = {}
    if category is not None:
        changes["category"] = category
    if status is not None:
        if status not in CLAIM_STATUSES:
            raise InputError(f"unknown claim status {status!r}; statuses: "
                             f"{', '.join(CLAIM_STATUSES)}")
        changes["status"] = status
    return update_versioned(session, Claim, claim_id, expected_version=expected_version,
                            changes=changes, actor=actor.username, action="claim.edit")


# --------------------------------------------------------------------------- users


def hash_password(password: str) -> str:
    """argon2id hash of a password."""
    return _hasher.hash(password)


def add_user(*, session: Session, username: str, role: str, password: str | None,
             actor: Acting, display_name: str = "") -> AppUser:
    """Create a user (admins only; the very first user needs no actor).

    Parameters
    ----------
    session
        Open session; the caller commits.
    username, role, password, display_name
        The new user. ``password`` ``None``: a single-sign-on user without a password.
    actor
        The acting admin (see ``acting_user``). Bootstrap: while the database has no user
        at all, ``actor`` may be ``None`` and the new user must then be an admin (on
        PostgreSQL the table is locked while this is decided, so two first users cannot
        both be created).

    Returns
    -------
    AppUser

    Raises
    ------
    PermissionDenied
        No actor (once users exist), an unknown or deactivated actor, a non-admin, or a
        first user who is not an admin.
    InputError
        Unknown role, empty name, the username is taken, or a password shorter than
        ``MIN_PASSWORD`` characters.
    """
    if actor is None and no_users_yet(session):
        if role != ADMIN:
            raise PermissionDenied(f"there are no users yet: the first user must be an "
                                   f"{ADMIN}, not a {role}")
        by = SYSTEM
    else:
        by = acting_user(session, actor, ADMIN).username
    username = username.strip()
    if not username:
        raise InputError("a username is required")
    if password is not None and len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if session.exec(select(AppUser).where(AppUser.username == username)).first():
        raise InputError(f"user {username!r} already exists")
    user = AppUser(username=username, role=role, display_name=display_name or username,
                   password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    audit.record(session, actor=by, action="user.add", entity="app_user",
                 entity_id=user.id, after=audit.snapshot(user))
    return user


def no_users_yet(session: Session) -> bool:
    """Whether the user table is empty (the bootstrap case of ``add_user``).

    On PostgreSQL the table is then locked against other writers until the transaction
    ends, so the answer holds until the caller commits: two sessions cannot both create a
    first admin.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("LOCK TABLE app_user IN SHARE ROW EXCLUSIVE MODE"))
    return session.exec(select(AppUser.id).limit(1)).first() is None


def set_user_role(*, session: Session, user_id: int, role: str, expected_version: int,
                  actor: Acting) -> AppUser:
    """Change a user's role (admins only; versioned and audited).

    Raises
    ------
    PermissionDenied
        No actor, an unknown or deactivated actor, or a non-admin.
    InputError
        Unknown role, or the change would leave no active admin.
    NotFound
        No such user.
    StaleWrite
        The user row changed since ``expected_version``.
    """
    by = acting_user(session, actor, ADMIN)
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role != ADMIN:
        _keep_an_admin(session, user_id)
    return update_versioned(session, AppUser, user_id, expected_version=expected_version,
                            changes={"role": role}, actor=by.username, action="user.role")


def set_user_active(*, session: Session, user_id: int, active: bool, expected_version: int,
                    actor: Acting) -> AppUser:
    """Deactivate a user (they can no longer sign in or write) or reactivate them.

    Admins only; versioned and audited. Users are never deleted: their reviews and audit
    events keep pointing at them.

    Deactivating revokes the user's app sessions.

    Raises
    ------
    PermissionDenied
        No actor, an unknown or deactivated actor, or a non-admin.
    InputError
        Deactivating the last active admin, or oneself.
    NotFound
        No such user.
    StaleWrite
        The user row changed since ``expected_version``.
    """
    by = acting_user(session, actor, ADMIN)
    if not active:
        _keep_an_admin(session, user_id)
        if by.id == user_id:
            raise InputError("you cannot deactivate your own account")
    user = update_versioned(session, AppUser, user_id, expected_version=expected_version,
                            changes={"active": active},
                            actor=by.username,
                            action="user.activate" if active else "user.deactivate")
    if not active:  # a later reactivation must not bring old sign-ins back
        revoke_user_sessions(session, user_id=user_id, actor=by.username)
    return user


def revoke_user_sessions(session: Session, *, user_id: int, actor: str,
                         now: datetime | None = None) -> int:
    """Revoke every live app session of one user (audited); how many were revoked.

    Internal: callers check the actor's role first (``set_user_active``,
    ``auth.sign_out_everywhere``).
    """
    now = now or utcnow()
    result = session.execute(update(AppSession).where(
        col(AppSession.user_id) == user_id, col(AppSession.revoked_at).is_(None)
    ).values(revoked_at=now, updated_at=now))
    count = int(getattr(result, "rowcount", 0) or 0)
    audit.record(session, actor=actor, action=SESSIONS_REVOKED, entity="app_user",
                 entity_id=user_id, after={"revoked_sessions": count})
    return count


def _keep_an_admin(session: Session, user_id: int) -> None:
    """Refuse a change that takes ``user_id`` away from the active admins if they are the
    last one (nobody could manage users any more)."""
    admins = session.exec(
        select(AppUser.id).where(AppUser.role == ADMIN, col(AppUser.active))
        .with_for_update(read=True)
    ).all()
    if list(admins) == [user_id]:
        raise InputError("this is the last active admin; make someone else an admin first")


def find_user(session: Session, *, username: str) -> AppUser | None:
    """The user with this username (active or not), or ``None``."""
    return session.exec(select(AppUser).where(AppUser.username == username.strip())).first()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of a random password nobody knows, made with the same argon2 parameters."""
    return _hasher.hash(secrets.token_urlsafe(16))


def authenticate(*, session: Session, username: str, password: str) -> AppUser | None:
    """The active user with this name and password, or ``None``.

    Takes as long for an unknown, deactivated or password-less (SSO-only) user as for a
    wrong password: the password is then checked against a dummy hash, so the time taken
    does not tell which usernames exist.
    """
    user = session.exec(select(AppUser).where(AppUser.username == username.strip())).first()
    if user is None or not user.active or not user.password_hash:
        try:
            _hasher.verify(_dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            pass
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def acting_user(session: Session, user: Acting, *allowed: str) -> AppUser:
    """The acting user's row, read in this transaction, if they may do a write.

    Role and ``active`` come from the database, never from the object passed in (an
    ``AppUser`` built or kept in memory only names the user by its id). The row is read
    afresh (a long-lived session's cached copy is replaced) and, on PostgreSQL, locked
    ``FOR SHARE`` until the transaction ends: a role change committed before this call is
    seen, and one attempted after it waits until the write is committed.

    Parameters
    ----------
    session
        The session carrying the write's transaction.
    user
        The acting user: an ``AppUser`` (its id) or a user id; ``None`` when nobody is
        signed in.
    allowed
        Roles that may do the write; an admin always may. None given: any active user.

    Returns
    -------
    AppUser
        The stored row; its ``username`` is what the audit trail records.

    Raises
    ------
    PermissionDenied
        No user, an id that is no user's, a deactivated user, or a role not allowed.
    """
    if user is None:
        raise PermissionDenied("sign in first")
    user_id = user if isinstance(user, int) else user.id
    if user_id is None:
        raise PermissionDenied("the acting user is not a stored user (it has no id)")
    row = session.exec(
        select(AppUser).where(AppUser.id == user_id).with_for_update(read=True)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise PermissionDenied(f"user {user_id} does not exist")
    if not row.active:
        raise PermissionDenied(f"{row.username} is deactivated")
    if allowed and row.role != ADMIN and row.role not in allowed:
        raise PermissionDenied(
            f"{row.username} is a {row.role}; this needs the role {' or '.join(allowed)}"
        )
    return row


def count_users(session: Session) -> int:
    """How many users exist."""
    return len(session.exec(select(AppUser.id)).all())


def chunked(items: Sequence[Any] | Iterable[Any], size: int = 500) -> Iterable[list[Any]]:
    """Split ``items`` into lists of at most ``size`` (SQLite's parameter limit)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
