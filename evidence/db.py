"""Engines, sessions and schema upgrades for SQLite (default) and PostgreSQL.

Sessions and locks
------------------
Reads never take the write lock; writers queue for it.

* **Reads** go through :func:`read_session` (the one read-only session: the app's screens,
  the notebooks, listings, exports, ``audit verify``, linking's and PubMed's look-ups).
  On SQLite it begins ``DEFERRED`` (a WAL snapshot, no lock) with ``PRAGMA query_only`` on,
  on PostgreSQL ``READ ONLY``: it never waits for a writer, never holds one up, and a write
  through it fails loudly instead of being lost. :func:`check_connection`,
  :func:`schema_is_current` and :func:`upgrade` (when the schema is already current) read
  the same way.
* **Writes** go through :func:`session_scope`. Every other transaction, a plain
  ``Session(engine)`` included, begins ``IMMEDIATE`` on SQLite: it takes the write lock
  before its first read. That is deliberate: under WAL a deferred transaction that reads
  and then writes fails at once with ``SQLITE_BUSY`` (no waiting can help it) if another
  writer committed in between, so a default of ``DEFERRED`` would turn every read-then-write
  (optimistic-version checks, the audit chain's head) into a random failure under load.
  The price is that a plain session left open holds the lock: hence reads use
  :func:`read_session`.
* **Waiting**: a writer that finds the lock taken queues for it, fairly and visibly
  (``evidence.writer_queue``): "waiting for another writer" is logged at INFO on the
  ``evidence.db`` logger, a long job lets waiters in between its units (each job commits
  per article / per batch), and after ``DB_LOCK_WAIT`` seconds the writer gives up with
  :class:`~evidence.errors.DatabaseBusy`. PostgreSQL needs none of this: writers wait on
  row locks, and readers see MVCC snapshots.
"""

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

from evidence import (
    models,  # noqa: F401  (registers the tables on SQLModel.metadata)
    writer_queue,
)
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


def _sqlite_setup(engine: Engine, *, lock_wait: float) -> None:
    # pysqlite's own transaction handling issues BEGIN lazily and DEFERRED; we issue BEGIN
    # ourselves: IMMEDIATE for writers (queued, see evidence.writer_queue), DEFERRED and
    # query_only for read sessions.
    database = engine.url.database
    if not database or database == ":memory:":
        database = None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={writer_queue.BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = bool(conn.get_execution_options().get(READ_ONLY, False))
        dbapi_conn = conn.connection.dbapi_connection
        if conn.info.get(READ_ONLY, False) != read_only:  # per connection, kept in the pool
            dbapi_conn.execute(f"PRAGMA query_only={int(read_only)}")
            conn.info[READ_ONLY] = read_only
        if read_only:
            dbapi_conn.execute("BEGIN DEFERRED")
        else:
            writer_queue.begin_immediate(dbapi_conn, database=database, limit=lock_wait)


def json_dumps(value: Any) -> str:
    """JSON text for a JSON column, exactly as the engines write it (bulk loaders use it).

    orjson is several times faster than json for the many JSON columns of bulk loads.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, *, lock_wait: float | None = None) -> Engine:
    """Create an engine for ``url`` with the project's connection settings.

    Parameters
    ----------
    url
        SQLAlchemy database URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    lock_wait
        SQLite: longest wait (seconds) for another writer; default the ``DB_LOCK_WAIT``
        setting.

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
                                   json_serializer=json_dumps)
            _sqlite_setup(engine, lock_wait=lock_wait or get_settings().db_lock_wait)
        else:
            engine = create_engine(url, pool_pre_ping=True, json_serializer=json_dumps)
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
        with reader(engine).connect() as conn:
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

    A database already at the newest revision is only read (no write lock), so every
    command can call this while a long job writes.

    Returns
    -------
    str
        The revision the database is at afterwards.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    check_connection(engine)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    current = _revision(engine)
    if current == ScriptDirectory.from_config(cfg).get_current_head():
        return current
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return _revision(engine)


def _revision(engine: Engine) -> str:
    from alembic.runtime.migration import MigrationContext

    with reader(engine).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""


def schema_is_current(engine: Engine) -> bool:
    """Whether the database has the tables (at any revision)."""
    with reader(engine).connect() as conn:
        return "audit_event" in inspect(conn).get_table_names()


_engines: dict[str, Engine] = {}


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured ``DATABASE_URL`` (created once)."""
    url = (settings or get_settings()).effective_database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


#: Execution option marking a read-only engine (see :func:`reader`).
READ_ONLY = "substantiate_read_only"


def reader(engine: Engine) -> Engine:
    """The engine for read-only work: no write lock on SQLite, ``READ ONLY`` on PostgreSQL.

    On SQLite its transactions begin ``DEFERRED`` with ``PRAGMA query_only`` on; on
    PostgreSQL they are ``READ ONLY``. A write through it raises an error.
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(**{READ_ONLY: True}, postgresql_readonly=True)
    return engine.execution_options(**{READ_ONLY: True})


def read_session(engine: Engine) -> Session:
    """A session for reads only: screens, notebooks, listings, exports, verification.

    It never takes the write lock (see the module docstring) and refuses writes. Use it as
    a context manager (``with db.read_session(engine) as session:``; closing it ends its
    transaction, loaded objects stay readable), or hold it open in a notebook
    (``session = db.read_session(engine)``; ``session.rollback()`` sees newer data).
    """
    return Session(reader(engine), expire_on_commit=False)


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
