"""Schema: migrations build exactly the models' schema on both databases; settings errors."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, select

from evidence import db
from evidence.errors import ConfigError
from evidence.models import Study


def test_migrations_match_models(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert db.upgrade(engine) == "0005"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    # Upgrading again is a no-op.
    assert db.upgrade(engine) == "0005"
    engine.dispose()


def test_migration_installs_append_only_guard(db_url: str) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO audit_event (created_at, updated_at, occurred_at, actor, action, "
                "entity, entity_id, prev_hash, hash) VALUES (CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'a', 'b', 'c', '1', 'x', 'y')"))
            conn.execute(text("DELETE FROM audit_event"))
    engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_every_table_has_timestamps(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    insp = inspect(engine)
    tables = set(insp.get_table_names()) - {"alembic_version"}
    assert {"article", "claim", "canonical_claim", "citation", "study", "raw_record",
            "evidence_link", "assessment", "verdict", "app_user", "audit_event",
            "ingest_run"} <= tables
    for table in tables:
        cols = {c["name"] for c in insp.get_columns(table)}
        assert {"created_at", "updated_at"} <= cols, table
    for table in ("article", "claim", "canonical_claim", "citation", "study",
                  "evidence_link", "assessment", "verdict", "app_user"):
        assert "version" in {c["name"] for c in insp.get_columns(table)}, table
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a valid database URL"),
        ("mysql://x@localhost/db", "supported: sqlite, postgresql"),
    ],
)
def test_bad_database_url_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        db.make_engine(url)


def test_unreachable_postgres_is_a_config_error() -> None:
    engine = db.make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match="cannot connect to database"):
        db.check_connection(engine)


def test_judgements_migration_stores_existing_studies_flags(db_url: str) -> None:
    from alembic import command

    engine = db.make_engine(db_url)
    cfg = db.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO study (created_at, updated_at, version, pmid, pmid_version, is_book,"
            " title, abstract, abstract_sections, authors, languages, publication_types,"
            " mesh, keywords, comments_corrections, is_retracted,"
            " has_expression_of_concern, has_erratum, design_reasons, deleted) VALUES"
            " (:t, :t, 1, '90000901', 1, false, 'A study', '', '[]', '[]', '[\"eng\"]',"
            " '[\"Journal Article\"]', '[]', '[]',"
            " '[{\"ref_type\": \"RetractionIn\", \"pmid\": \"90000902\"}]', true, false,"
            " false, '[]', false)"), {"t": now})
    assert db.upgrade(engine) == "0005"
    with Session(engine) as s:
        study = s.exec(select(Study).where(Study.pmid == "90000901")).one()
        assert [f["code"] for f in study.flags] == ["retracted"]
        assert "PMID 90000902 (RetractionIn)" in study.flags[0]["reason"]
    engine.dispose()
