"""Engines, sessions and schema upgrades for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session, SQLModel

from evidence import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from evidence.config import Settings, get_settings
from evidence.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# The audit trail is append-only in the database itself, not only by convention: these
# triggers refuse UPDATE and DELETE on audit_event for every client, ours or not.
APPEND_ONLY_DDL: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event",
        "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    ],
}


#: The triggers of :data:`APPEND_ONLY_DDL`, by dialect: ``audit verify`` reports any missing.
APPEND_ONLY_TRIGGERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("audit_event_no_update", "audit_event_no_delete"),
    "postgresql": ("audit_event_no_change",),
}


def _sqlite_setup(engine: Engine) -> None:
    # pysqlite's own transaction handling issues BEGIN lazily and DEFERRED; a deferred
    # transaction that reads and then writes fails with SQLITE_BUSY under WAL when another
    # writer committed in between. BEGIN IMMEDIATE takes the write lock up front (waiting
    # up to busy_timeout), so concurrent writers queue instead of failing.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only sessions (``read_session``) begin DEFERRED so they never hold the lock.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _json_dumps(value: Any) -> str:
    # orjson is several times faster than json for the many JSON columns of bulk loads.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the project's connection settings.

    Parameters
    ----------
    url
        SQLAlchemy database URL (``sqlite:///...`` or ``postgresql+psycopg://...``).

    Returns
    -------
    Engine

    Raises
    ------
    ConfigError
        The URL is malformed or names a database driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {url!r}") from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"DATABASE_URL uses {backend!r}; supported: sqlite, postgresql (+psycopg)"
        )
    try:
        if backend == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                   json_serializer=_json_dumps)
            _sqlite_setup(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps)
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise ConfigError(f"DATABASE_URL cannot be used ({e.__class__.__name__}): {url!r}") from e
    return engine


def check_connection(engine: Engine) -> None:
    """Open and close one connection, turning a failure into a clear error.

    Raises
    ------
    ConfigError
        The database cannot be reached with the configured URL.
    """
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as e:
        url = engine.url.render_as_string(hide_password=True)
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise ConfigError(f"cannot connect to database {url}: {reason}") from e


def install_append_only_guards(conn: Any) -> None:
    """Install the triggers that make ``audit_event`` append-only (used by tests' create_all)."""
    for stmt in APPEND_ONLY_DDL[conn.dialect.name]:
        conn.exec_driver_sql(stmt)


def missing_append_only_guards(conn: Any) -> list[str]:
    """The append-only triggers on ``audit_event`` that are missing (or disabled), by name.

    Parameters
    ----------
    conn
        An open connection (SQLAlchemy ``Connection`` or a session's connection).

    Returns
    -------
    list of str
        Empty when every trigger of :data:`APPEND_ONLY_TRIGGERS` is installed and enabled.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'"
        ).all()
        present = {r[0] for r in rows}
    else:
        rows = conn.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('audit_event') "
            "AND NOT tgisinternal AND tgenabled <> 'D'"
        ).all()
        present = {r[0] for r in rows}
    return [name for name in APPEND_ONLY_TRIGGERS[dialect] if name not in present]


def ensure_append_only_guards(engine: Engine) -> list[str]:
    """Re-install the append-only triggers if any is missing or disabled.

    Nothing is done (and no lock taken) when they are all in place. ``substantiate init``
    calls this; the other commands do not, so that ``audit verify`` still sees (and
    reports) a guard someone removed.

    Returns
    -------
    list of str
        The names that were missing and are now installed again.
    """
    with engine.begin() as conn:
        missing = missing_append_only_guards(conn)
        if missing:
            install_append_only_guards(conn)
    return missing


def create_all(engine: Engine) -> None:
    """Create every table directly (throwaway test databases only; real ones use Alembic)."""
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        install_append_only_guards(conn)


def alembic_config(url: str) -> Any:
    """Alembic configuration pointing at the packaged migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> str:
    """Create or upgrade the schema to the newest migration.

    Returns
    -------
    str
        The revision the database is at afterwards.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    check_connection(engine)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
    return rev or ""


def schema_is_current(engine: Engine) -> bool:
    """Whether the database has the tables (at any revision)."""
    return "audit_event" in inspect(engine).get_table_names()


_engines: dict[str, Engine] = {}


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured ``DATABASE_URL`` (created once)."""
    url = (settings or get_settings()).effective_database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def reader(engine: Engine) -> Engine:
    """The engine for read-only sessions: on SQLite they do not take the write lock."""
    return engine.execution_options(sqlite_begin="DEFERRED")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads only (listing, exports, verification); rolled back at the end."""
    with Session(reader(engine), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
