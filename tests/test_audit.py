"""The audit trail: chained, append-only, and tampering is detected and located."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from evidence import audit, db
from evidence.models import AuditEvent


def _append(session: Session, n: int) -> None:
    for i in range(n):
        audit.record(session, actor="alice", action="test.event", entity="thing",
                     entity_id=i, before={"n": i}, after={"n": i + 1})
    session.commit()


def _tamper(engine: Engine, *statements: str) -> None:
    """Change audit rows the way an attacker with database access would: guards off first,
    and back on after (so only the chain can tell)."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_event_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change")
        for stmt in statements:
            conn.execute(text(stmt))
        if conn.dialect.name == "sqlite":
            db.install_append_only_guards(conn)
        else:
            conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_change")


def test_chain_verifies_after_appends(session: Session) -> None:
    _append(session, 5)
    result = audit.verify(session)
    assert result.ok and result.checked == 5
    events = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert events[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))


def test_database_refuses_update_and_delete_of_audit_rows(session: Session, engine: Engine) -> None:
    _append(session, 2)
    for stmt in ("UPDATE audit_event SET actor = 'mallory' WHERE id = 1",
                 "DELETE FROM audit_event WHERE id = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(stmt))
    assert audit.verify(session).ok


def test_edited_event_is_named(session: Session, engine: Engine) -> None:
    _append(session, 5)
    _tamper(engine, "UPDATE audit_event SET actor = 'mallory' WHERE id = 3")
    session.expire_all()
    result = audit.verify(session)
    assert not result.ok
    assert result.first_bad_id == 3
    assert "edited" in (result.reason or "")


def test_deleted_event_is_named(session: Session, engine: Engine) -> None:
    _append(session, 5)
    _tamper(engine, "DELETE FROM audit_event WHERE id = 2")
    session.expire_all()
    result = audit.verify(session)
    assert not result.ok and result.first_bad_id == 3
    assert "missing" in (result.reason or "")


def test_reordered_events_are_named(session: Session, engine: Engine) -> None:
    _append(session, 4)
    # Swap the content of rows 2 and 3 (ids stay in place: a reorder of history).
    _tamper(
        engine,
        "UPDATE audit_event SET id = 100 WHERE id = 2",
        "UPDATE audit_event SET id = 2 WHERE id = 3",
        "UPDATE audit_event SET id = 3 WHERE id = 100",
    )
    session.expire_all()
    result = audit.verify(session)
    assert not result.ok and result.first_bad_id == 2


def test_empty_trail_verifies(session: Session) -> None:
    assert audit.verify(session) == audit.VerifyResult(True, 0, head_hash=None)


def test_cut_off_tail_is_caught_by_an_anchor(session: Session, engine: Engine) -> None:
    _append(session, 5)
    head = audit.verify(session).head_hash
    assert head is not None
    session.rollback()  # end the read transaction before another connection writes
    _tamper(engine, "DELETE FROM audit_event WHERE id >= 4")
    session.expire_all()
    assert audit.verify(session).ok  # the chain alone cannot tell
    result = audit.verify(session, anchor=head)
    assert not result.ok and "cut off" in (result.reason or "")
