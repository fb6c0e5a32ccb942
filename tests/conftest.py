"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import gc
import os
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from evidence import config, db
from tests.fake_eutils import FakeEutils

pytest_plugins = ["tests.fixtures_eutils"]

PG_ADMIN_URL = os.environ.get(
    "SUBSTANTIATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL)
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as e:  # noqa: BLE001  (any failure means: no server to test against)
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {e.__class__.__name__}"


_PG_REASON = _pg_available()


@pytest.fixture(autouse=True)
def _restore_main() -> Iterator[None]:
    """Put back ``__main__`` after each test: Streamlit's AppTest leaves the app script in
    its place, and a process pool started later in the same process would run the app in
    every worker it spawns."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own data dir and no inherited DATABASE_URL / NCBI key."""
    for var in ("DATABASE_URL", "NCBI_API_KEY", "EUTILS_BASE_URL", "SUBSTANTIATE_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SUBSTANTIATE_DATA_DIR", str(tmp_path / "data"))
    # No test reaches NCBI: anything not pointed at the fake server fails fast, offline.
    monkeypatch.setenv("EUTILS_BASE_URL", "http://127.0.0.1:9/entrez/eutils/")
    monkeypatch.setenv("NCBI_MAX_WAIT", "1")
    monkeypatch.chdir(tmp_path)
    config.reset_settings()
    db._engines.clear()
    yield
    for eng in db._engines.values():
        eng.dispose()
    db._engines.clear()
    config.reset_settings()


def _pg_schema_url(schema: str) -> str:
    """The URL of ``schema``; its connections carry the schema's name as their
    application name, so a teardown can find any left open."""
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    return f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{schema}&application_name={schema}"


def _drop_schema(admin: Engine, schema: str) -> None:
    """Drop a test's schema without ever waiting forever on a connection left open.

    A session a test never closed can sit idle in a transaction, holding locks that
    ``DROP SCHEMA`` waits for (PostgreSQL has no lock timeout by default), and in the
    same process nothing would ever release them. So: close this test's pooled
    connections and drop with a lock timeout; if that times out, collect unreachable
    sessions and try again; connections of the schema still open after that are
    terminated, with a warning that names them.
    """
    for eng in list(db._engines.values()):
        eng.dispose()
    for attempt in range(3):
        try:
            with admin.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError:
            if attempt == 2:
                raise
        if attempt == 0:
            gc.collect()  # unclosed sessions in reference cycles give their connections back
            continue
        with admin.begin() as conn:
            stuck = conn.execute(text(
                "SELECT pid, state, left(query, 120), pg_terminate_backend(pid) "
                "FROM pg_stat_activity WHERE application_name = :name "
                "AND pid <> pg_backend_pid()"), {"name": schema}).all()
        warnings.warn(f"schema {schema}: terminated {len(stuck)} connection(s) left open "
                      f"by the test: {[tuple(r[:3]) for r in stuck]}", stacklevel=1)


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema's URL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield _pg_schema_url(schema)
        finally:
            _drop_schema(admin, schema)
    finally:
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL for a fresh, empty PostgreSQL schema (dropped afterwards)."""
    if _PG_REASON:
        if os.environ.get("CI"):
            pytest.fail(_PG_REASON)
        pytest.skip(_PG_REASON)
    with pg_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def migrated(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The configured database (``DATABASE_URL``) built by the migrations, as the CLI finds
    it (both backends)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    config.reset_settings()
    engine = db.get_engine()
    db.upgrade(engine)
    yield engine


@pytest.fixture
def migrated_eutils(migrated: Engine, monkeypatch: pytest.MonkeyPatch,
                    fake_eutils: FakeEutils) -> Engine:
    """``migrated``, with the E-utilities pointed at the fake server."""
    monkeypatch.setenv("EUTILS_BASE_URL", fake_eutils.url)
    monkeypatch.setenv("NCBI_MAX_WAIT", "5")
    config.reset_settings()
    return migrated


@pytest.fixture
def engine(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine on a fresh database with the full schema (both backends)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    config.reset_settings()
    eng = db.get_engine()
    db.create_all(eng)
    yield eng


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the fresh database; the test commits what it needs."""
    with Session(engine, expire_on_commit=False) as s:
        yield s
