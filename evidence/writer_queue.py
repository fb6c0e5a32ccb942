"""SQLite writers queue for the write lock, fairly, and wait visibly up to ``DB_LOCK_WAIT``.

SQLite has one write lock per database file. A writer takes it with ``BEGIN IMMEDIATE``;
SQLite's own busy handler then polls with back-off (sleeps of up to 100 ms), so a long job
that commits one unit and begins the next at once wins the lock again before a waiting
process wakes up: waiters starve, then fail with "database is locked". This module
replaces that with a queue:

* A writer that cannot take the lock registers as a *waiter*: an empty file named by its
  ticket (time of arrival, pid, a random token) in ``<database>-waiters/`` next to the
  database file. It then retries ``BEGIN IMMEDIATE`` in short slices (``BEGIN_SLICE``),
  logs "waiting for another writer" once (INFO on the ``evidence.db`` logger; ``-v`` on the
  CLI shows it) and gives up with :class:`~evidence.errors.DatabaseBusy` after
  ``DB_LOCK_WAIT`` seconds, naming the limit and the setting.
* Before ``BEGIN IMMEDIATE`` every writer looks for waiters that arrived before it; while
  one is there it steps aside (sleeps of ``YIELD_POLL``). So a long job, between two of its
  units, lets the writers that queued meanwhile go first, in order of arrival.
* A waiter removes its file as soon as it holds the lock (or gives up). A file whose process
  is gone, or that its waiter stopped refreshing (``STALE_AFTER``: a crashed or frozen
  process, a reused pid), is ignored and removed: a dead waiter never blocks anyone.

Nothing here runs on PostgreSQL, where writers wait on row locks and MVCC keeps readers
out of their way. The directory is only created when someone has to wait, so an
uncontended writer costs one failed ``listdir``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from evidence.errors import DatabaseBusy

log = logging.getLogger("evidence.db")

#: SQLite's busy timeout outside ``BEGIN IMMEDIATE`` (ms): readers and commits under WAL
#: only meet short, transient locks (a checkpoint, WAL recovery), so this is rarely used.
BUSY_TIMEOUT_MS = 30000
#: How long one ``BEGIN IMMEDIATE`` attempt waits in SQLite's busy handler (ms). Short, so
#: a waiter refreshes its ticket and checks its deadline often; long enough that the head
#: waiter is inside the busy handler most of the time, ready when the lock frees.
BEGIN_SLICE_MS = 200
#: A writer stepping aside for an earlier waiter re-checks this often (s): the waiter's own
#: busy handler polls at up to 100 ms, so the hand-over costs about that.
YIELD_POLL = 0.01
#: A waiter's file not refreshed for this long (s) belongs to a crashed or frozen process.
#: Waiters refresh it on every attempt, i.e. about every ``BEGIN_SLICE_MS``.
STALE_AFTER = 10.0
#: Say "waiting for another writer" once a wait has lasted this long (s): taking turns
#: with a long job costs a moment per unit, which is not worth a line each time.
REPORT_AFTER = 0.5
#: While waiting, say so again this often (s).
REPORT_EVERY = 30.0


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(e) or "busy" in str(e)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id is running on this host (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class WriterQueue:
    """The waiting room of one SQLite database file (``<database>-waiters/``).

    Parameters
    ----------
    database
        Path of the SQLite database file.
    """

    def __init__(self, database: str | Path) -> None:
        path = Path(database)
        self.dir = path.with_name(path.name + "-waiters")

    def register(self) -> str:
        """Join the queue; returns the ticket (a file name that sorts by arrival)."""
        ticket = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        self.dir.mkdir(exist_ok=True)
        (self.dir / ticket).touch()
        return ticket

    def refresh(self, ticket: str) -> None:
        """Show that the waiter holding ``ticket`` is still waiting."""
        try:
            os.utime(self.dir / ticket)
        except FileNotFoundError:  # removed as stale by someone else: take it back
            (self.dir / ticket).touch()

    def leave(self, ticket: str) -> None:
        """Leave the queue (the lock is held, or waiting was given up)."""
        try:
            (self.dir / ticket).unlink()
        except FileNotFoundError:
            pass

    def ahead_of(self, ticket: str | None) -> list[str]:
        """The live waiters that arrived before ``ticket`` (all of them for ``None``)."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        now = time.time()
        ahead: list[str] = []
        for name in names:
            if ticket is not None and name >= ticket:
                break
            if self._stale(name, now):
                self.leave(name)
                continue
            ahead.append(name)
        return ahead

    def _stale(self, name: str, now: float) -> bool:
        parts = name.split("-")
        try:
            pid = int(parts[1])
            refreshed = (self.dir / name).stat().st_mtime
        except (IndexError, ValueError):
            return True  # not a ticket
        except FileNotFoundError:
            return False  # just left; ``leave`` copes
        return now - refreshed > STALE_AFTER or not pid_alive(pid)


def begin_immediate(dbapi_conn: Any, *, database: str | None, limit: float) -> None:
    """``BEGIN IMMEDIATE`` on a pysqlite connection, queueing fairly behind other writers.

    Parameters
    ----------
    dbapi_conn
        The ``sqlite3`` connection (autocommit mode: ``isolation_level = None``).
    database
        Its database file, or ``None`` for an in-memory database (no queue).
    limit
        Longest wait for the lock, in seconds (the ``DB_LOCK_WAIT`` setting).

    Raises
    ------
    DatabaseBusy
        Another writer held the lock for longer than ``limit``.
    """
    queue = WriterQueue(database) if database else None
    ticket: str | None = None
    start = time.monotonic()
    last_report: float | None = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={BEGIN_SLICE_MS}")
        while True:
            if queue is not None and queue.ahead_of(ticket):
                time.sleep(YIELD_POLL)
            else:
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if not _is_busy(e):
                        raise
            waited = time.monotonic() - start
            if queue is not None:
                if ticket is None:
                    ticket = queue.register()
                else:
                    queue.refresh(ticket)
            if waited > limit:
                raise DatabaseBusy(
                    f"another writer held the database for more than {limit:g} s "
                    f"(DB_LOCK_WAIT); try again when it has finished, or raise DB_LOCK_WAIT")
            if waited >= REPORT_AFTER and (last_report is None
                                           or time.monotonic() - last_report >= REPORT_EVERY):
                last_report = time.monotonic()
                log.info("waiting for another writer to finish with %s (%.1f s so far; "
                         "giving up after %g s, DB_LOCK_WAIT)", database or "the database",
                         waited, limit)
    finally:
        if ticket is not None and queue is not None:
            queue.leave(ticket)
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()
