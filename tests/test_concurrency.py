"""Concurrency: reads never take the write lock; writers queue, take turns and wait visibly.

Real processes on a real SQLite file (the CLI in subprocesses, the app through AppTest),
and real PostgreSQL for the reviewers' race.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from benchmarks._concurrency import review_race
from evidence import audit, config, db, queries, writer_queue
from evidence.errors import DatabaseBusy
from evidence.models import AppUser, Article, AuditEvent
from substantiate import jobs

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "data" / "articles").glob("*.txt"))


def _cli(*args: str, url: str, lock_wait: float = 60, verbose: bool = False
         ) -> subprocess.Popen[str]:
    env = dict(os.environ, DATABASE_URL=url, DB_LOCK_WAIT=str(lock_wait),
               PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "substantiate.cli", *(["-v"] if verbose else []), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _articles(folder: Path, n: int, tag: str) -> Path:
    """``n`` distinct articles (the seed posts, each with its own opening line)."""
    folder.mkdir(parents=True)
    for i in range(n):
        seed = SEEDS[i % len(SEEDS)].read_text(encoding="utf-8")
        (folder / f"{tag}_{i:03d}.txt").write_text(f"{tag} clinic note {i}\n\n{seed}",
                                                   encoding="utf-8")
    return folder


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Engine]]:
    """A SQLite file with the schema (by migrations), named by DATABASE_URL."""
    url = f"sqlite:///{tmp_path / 'conc.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    config.reset_settings()
    engine = db.get_engine()
    db.upgrade(engine)
    yield url, engine


@contextmanager
def _holding_write_lock(engine: Engine) -> Iterator[None]:
    """Another connection holds the SQLite write lock (BEGIN IMMEDIATE) meanwhile."""
    path = engine.url.database
    assert path
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# ------------------------------------------------------------------------------ reads


def test_read_session_refuses_writes_and_never_takes_the_write_lock(engine: Engine) -> None:
    with db.read_session(engine) as session:
        assert session.exec(select(AppUser)).all() == []
        session.add(AppUser(username="sneaky", role="admin"))
        with pytest.raises(Exception, match="(?i)read.?only|readonly"):
            session.flush()
    with db.read_session(engine) as session:
        assert session.exec(select(AppUser)).all() == []
    # The connection goes back to the pool: a writer on it writes again.
    with db.session_scope(engine) as session:
        session.add(AppUser(username="ann", role="reviewer"))
    with db.read_session(engine) as session:
        assert [u.username for u in session.exec(select(AppUser)).all()] == ["ann"]


def test_reads_go_on_while_another_writer_holds_the_lock(
    sqlite_db: tuple[str, Engine],
) -> None:
    url, engine = sqlite_db
    jobs.ingest_articles(engine, [str(SEEDS[0])])
    with db.session_scope(engine) as s:
        user = AppUser(username="rita", role="reviewer")
        s.add(user)
        s.flush()
        user_id = user.id
    with _holding_write_lock(engine):
        # The CLI (which also checks the schema), the app's queue, a notebook's session.
        code, out, err = _finish(_cli("claims", "list", "--json", url=url, lock_wait=1))
        assert code == 0, err
        assert '"claim_id"' in out
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["user_id"] = user_id
        at.run()
        assert not at.exception, at.exception
        assert at.title[0].value == "Review queue"
        db.check_connection(engine)
        assert db.schema_is_current(engine)
        assert db.upgrade(engine)
        with db.read_session(engine) as session:
            assert len(queries.claims(session)) > 0
        # The lock really is held: a writer waits, then gives up.
        with pytest.raises(DatabaseBusy):
            with db.session_scope(db.make_engine(url, lock_wait=0.3)) as session:
                session.add(AppUser(username="late", role="reviewer"))


def test_open_analyst_session_does_not_block_an_ingest(
    sqlite_db: tuple[str, Engine], tmp_path: Path,
) -> None:
    url, engine = sqlite_db
    jobs.ingest_articles(engine, [str(SEEDS[0])])
    # The notebook's set-up cell, then a read; the session stays open (and in a transaction).
    session = db.read_session(db.get_engine())
    claims = queries.claims(session)
    assert len(claims) > 0
    try:
        code, out, err = _finish(_cli("ingest", "articles", str(SEEDS[1]), url=url,
                                      lock_wait=5))
        assert code == 0, err
        assert "1 new" in out
    finally:
        session.close()
    with db.read_session(engine) as s:
        assert len(s.exec(select(Article)).all()) == 2


# ------------------------------------------------------------------------------ writers


def test_a_writer_steps_aside_while_an_earlier_writer_waits(
    sqlite_db: tuple[str, Engine],
) -> None:
    # What lets waiters in between a long job's units: before BEGIN IMMEDIATE, a writer
    # looks for writers queued before it and lets them go first.
    url, engine = sqlite_db
    queue = writer_queue.WriterQueue(str(engine.url.database))
    earlier = queue.register()  # a writer that queued first (this process: alive)
    done = threading.Event()

    def later_writer() -> None:
        with db.session_scope(db.make_engine(url)) as s:
            audit.record(s, actor="later", action="one", entity="x", entity_id=0)
        done.set()

    t = threading.Thread(target=later_writer)
    t.start()
    try:
        assert not done.wait(1.0)  # the lock is free, yet it waits its turn
    finally:
        queue.leave(earlier)
    assert done.wait(60)
    t.join()
    with db.read_session(engine) as s:
        assert [e.actor for e in s.exec(select(AuditEvent)).all()] == ["later"]
    assert not list(queue.dir.iterdir())  # it queued behind, and left when it got in


def test_writer_gives_up_after_db_lock_wait_with_one_clear_line(
    sqlite_db: tuple[str, Engine],
) -> None:
    url, engine = sqlite_db
    with _holding_write_lock(engine):
        code, out, err = _finish(_cli("ingest", "articles", str(SEEDS[0]), url=url,
                                      lock_wait=1, verbose=True))
    assert code == 1
    assert "waiting for another writer" in err
    assert err.strip().splitlines()[-1] == (
        "error: another writer held the database for more than 1 s (DB_LOCK_WAIT); try again "
        "when it has finished, or raise DB_LOCK_WAIT")
    assert not list(Path(f"{engine.url.database}-waiters").iterdir())  # it left the queue


def test_dead_and_stale_waiters_never_block_a_writer(tmp_path: Path) -> None:
    queue = writer_queue.WriterQueue(tmp_path / "x.db")
    mine = queue.register()
    assert queue.ahead_of(None) == [mine]
    assert queue.ahead_of(mine) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    crashed = f"{0:020d}-{dead}-deadbeef"
    (queue.dir / crashed).touch()
    frozen = f"{1:020d}-{os.getpid()}-cafecafe"
    (queue.dir / frozen).touch()
    old = time.time() - writer_queue.STALE_AFTER - 5
    os.utime(queue.dir / frozen, (old, old))
    assert queue.ahead_of(mine) == []  # both arrived first, neither counts
    assert sorted(os.listdir(queue.dir)) == [mine]  # and they are cleared away
    queue.leave(mine)
    assert queue.ahead_of(None) == []


def test_two_long_ingests_take_turns_while_the_cli_and_app_read(
    sqlite_db: tuple[str, Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    url, engine = sqlite_db
    n = len(SEEDS)
    a = _articles(tmp_path / "a", n, "alpha")
    b = _articles(tmp_path / "b", n, "beta")
    with db.session_scope(engine) as s:
        user = AppUser(username="rita", role="reviewer")
        s.add(user)
        s.flush()
        user_id = user.id
    first = _cli("ingest", "articles", str(a), url=url)
    second = _cli("ingest", "articles", str(b), url=url)
    listing = _cli("claims", "list", "--json", url=url, verbose=True)
    with caplog.at_level(logging.INFO, logger="evidence.db"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["user_id"] = user_id
        at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Review queue"
    results = [_finish(first), _finish(second), _finish(listing)]
    for code, _, err in results:
        assert code == 0, err
        assert "locked" not in err
    # Readers never queued for the write lock (the ingests hold it most of the time).
    assert "waiting for another writer" not in results[2][2] + caplog.text
    assert all(f"articles: {n} new" in out for _, out, _ in results[:2])
    with db.read_session(engine) as s:
        sources = [x.source for x in s.exec(select(Article).order_by(col(Article.id))).all()]
    assert len(sources) == 2 * n
    # They took turns: each let the other in between its articles (neither starved).
    kinds = ["alpha" if "alpha_" in src else "beta" for src in sources]
    switches = sum(1 for x, y in zip(kinds, kinds[1:], strict=False) if x != y)
    assert switches >= 3, kinds


# ------------------------------------------------------------------------------ reviewers


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_eight_reviewers_race_on_postgresql_lose_nothing(engine: Engine, db_url: str) -> None:
    count = review_race(db_url, writers=8, writes=1000)
    assert count.other_errors == []
    assert count.attempted == 1000 == count.applied + count.refused_stale + count.locked
    assert count.lost == 0 and count.locked == 0
    assert count.applied > 0 and count.refused_stale > 0
    assert count.audit_ok


def test_reviewers_race_on_sqlite_lose_nothing(sqlite_db: tuple[str, Engine]) -> None:
    url, _ = sqlite_db
    count = review_race(url, writers=4, writes=120)
    assert count.other_errors == []
    assert count.attempted == 120 == count.applied + count.refused_stale
    assert count.lost == 0 and count.locked == 0
    assert count.applied > 0 and count.refused_stale > 0
    assert count.audit_ok


def test_postgresql_read_session_is_read_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's READ ONLY transactions")
    with db.read_session(engine) as session:
        assert session.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
    with db.session_scope(engine) as session:
        assert session.execute(text("SHOW transaction_read_only")).scalar_one() == "off"
