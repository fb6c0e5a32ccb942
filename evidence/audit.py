"""The tamper-evident audit trail: append-only, hash-chained events.

Each event's hash covers its own content (id, time, actor, action, entity, before/after)
and the previous event's hash, so editing, deleting or reordering any row breaks the chain
from that row on. ``verify`` recomputes the chain and names the first bad event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from evidence.db import missing_append_only_guards
from evidence.models import AuditEvent, utcnow

GENESIS = "0" * 64
# Any constant works: it names the one advisory lock that serialises appends on PostgreSQL.
_PG_AUDIT_LOCK = 0x5AB57A7E


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


_SNAPSHOT_EXCLUDE = ("password_hash", "body", "text")


def snapshot(obj: Any, *, exclude: tuple[str, ...] = _SNAPSHOT_EXCLUDE) -> dict[str, Any]:
    """A JSON-safe dict of a model row's columns for before/after records.

    Large or secret columns are left out (``text`` of articles is represented by its sha256).
    """
    data = obj.model_dump() if hasattr(obj, "model_dump") else dict(obj)
    return {k: _jsonable(v) for k, v in data.items() if k not in exclude}


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(
    *,
    event_id: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    prev_hash: str,
) -> str:
    """The sha256 that chains one event to the previous one."""
    payload = {
        "id": event_id,
        "occurred_at": _jsonable(occurred_at),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": _jsonable(before),
        "after": _jsonable(after),
        "prev": prev_hash,
    }
    return hashlib.sha256(_canonical(payload)).hexdigest()


def _lock_chain(session: Session) -> None:
    # Two writers must not both extend the chain from the same head. SQLite already holds
    # the write lock (BEGIN IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock.
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit trail inside the caller's transaction.

    Parameters
    ----------
    session
        The session whose transaction carries the change being audited.
    actor
        Who made the change (a username, or ``system`` / ``cli:<user>``).
    action
        What happened, e.g. ``article.ingest``, ``verdict.save``.
    entity, entity_id
        The table and row the change concerns.
    before, after
        JSON-safe snapshots of the row (``None`` for creation / removal).

    Returns
    -------
    AuditEvent
        The appended, flushed event.
    """
    _lock_chain(session)
    last_id, prev_hash = _head(session)
    next_id = last_id + 1
    occurred = utcnow()
    content: dict[str, Any] = {
        "occurred_at": occurred,
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "before": _jsonable(before) if before is not None else None,
        "after": _jsonable(after) if after is not None else None,
        "prev_hash": prev_hash,
    }
    ev = AuditEvent(id=next_id, created_at=occurred, updated_at=occurred, **content,
                    hash=compute_hash(event_id=next_id, **content))
    session.add(ev)
    session.flush()
    if not session.in_nested_transaction():
        session.info[_HEAD_KEY] = (session.get_transaction(), next_id, ev.hash)
    return ev


_HEAD_KEY = "audit_chain_head"


def _head(session: Session) -> tuple[int, str]:
    """The chain's last event (id, hash), read once per transaction.

    The chain is locked for the whole transaction (``_lock_chain``), so only this
    transaction appends to it until it ends: the head it wrote last is the head. A new
    transaction (after a commit or a rollback) reads it again; so does a savepoint.
    """
    cached = session.info.get(_HEAD_KEY)
    tx = session.get_transaction()
    if (cached is not None and tx is not None and cached[0] is tx
            and not session.in_nested_transaction()):
        return int(cached[1]), str(cached[2])
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    return ((last.id or 0), last.hash) if last else (0, GENESIS)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify``: ok, how many events were checked, the first bad one and why."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    head_hash: str | None = None


def verify(session: Session, *, batch: int = 5000, anchor: str | None = None) -> VerifyResult:
    """Recompute the hash chain over every audit event, in id order.

    Parameters
    ----------
    session
        Read session.
    batch
        Events read per query.
    anchor
        A head hash recorded earlier (an export manifest's ``head_hash``): the chain must
        still contain it. The chain alone cannot show that its newest events were cut off;
        an anchor kept elsewhere can.

    Returns
    -------
    VerifyResult
        ``ok`` is false when an event was edited (its hash no longer matches its content),
        deleted (a gap in ids or a broken link), or reordered (a link to the wrong
        predecessor); ``first_bad_id`` names the first event where the chain fails. It is
        also false, with the reason "append-only guard missing: <trigger>", when a trigger
        that makes ``audit_event`` append-only was dropped or disabled (the chain may still
        verify; ``substantiate init`` re-installs the trigger).
    """
    prev_hash = GENESIS
    expected_id = 1
    checked = 0
    last_id = 0
    anchor_seen = anchor is None
    while True:
        rows = session.exec(
            select(AuditEvent).where(col(AuditEvent.id) > last_id)
            .order_by(col(AuditEvent.id)).limit(batch)
        ).all()
        if not rows:
            break
        for ev in rows:
            assert ev.id is not None
            if ev.id != expected_id:
                return VerifyResult(False, checked, ev.id,
                                    f"event {expected_id} is missing (next id is {ev.id})",
                                    prev_hash)
            if ev.prev_hash != prev_hash:
                return VerifyResult(False, checked, ev.id,
                                    "link to the previous event does not match", prev_hash)
            recomputed = compute_hash(
                event_id=ev.id, occurred_at=ev.occurred_at, actor=ev.actor, action=ev.action,
                entity=ev.entity, entity_id=ev.entity_id, before=ev.before, after=ev.after,
                prev_hash=ev.prev_hash,
            )
            if recomputed != ev.hash:
                return VerifyResult(False, checked, ev.id,
                                    "content does not match its hash (edited)", prev_hash)
            prev_hash = ev.hash
            anchor_seen = anchor_seen or ev.hash == anchor
            expected_id += 1
            checked += 1
            last_id = ev.id
        session.expunge_all()
    head = prev_hash if checked else None
    missing = missing_append_only_guards(session.connection())
    if missing:
        return VerifyResult(False, checked, None,
                            f"append-only guard missing: {', '.join(missing)} (the audit "
                            "trail can be edited; `substantiate init` re-installs it)", head)
    if not anchor_seen:
        return VerifyResult(False, checked, None,
                            f"anchor {anchor} is not in the chain (events were cut off or "
                            "replaced)", head)
    return VerifyResult(True, checked, head_hash=head)
