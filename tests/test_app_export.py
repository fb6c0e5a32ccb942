"""The app's Export screen (adjudicators and admins), through ``AppTest``."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from evidence import config, db
from evidence.models import AuditEvent
from tests.factories import make_article, make_claim, make_user

APP = Path(__file__).resolve().parents[1] / "app.py"


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The app's database: a fresh SQLite file (by migrations, as the app makes it)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    config.reset_settings()
    eng = db.get_engine()
    db.upgrade(eng)
    yield eng


@pytest.fixture
def users(engine: Engine) -> dict[str, Any]:
    with Session(engine) as s:
        article = make_article(s, title="=cmd|' /C calc'!A0")
        make_claim(s, article=article)
        make_claim(s)
        made = {name: make_user(s, username=name, role=role).id for name, role in
                [("root", "admin"), ("ada", "adjudicator"), ("rita", "reviewer")]}
        s.commit()
        return {"users": made, "article": article.id}


def _app(user_id: int) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user_id"] = user_id
    return at.run()


def test_export_is_not_offered_to_a_reviewer(users: dict[str, Any]) -> None:
    at = _app(users["users"]["rita"])
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/export.py")


@pytest.mark.parametrize("who", ["root", "ada"])
def test_export_screen_makes_an_audited_zip_with_a_manifest(
    engine: Engine, users: dict[str, Any], who: str
) -> None:
    at = _app(users["users"][who])
    at.switch_page("app_pages/export.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Export"
    at.selectbox(key="export_article").set_value(users["article"])
    at.button(key="export_submit").click().run()
    assert not at.exception, at.exception
    data = at.session_state["export_zip"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        claims = zf.read("claims.csv").decode()
        articles = zf.read("articles.csv").decode()
    assert {"manifest.json", "claims.csv", "audit_log.csv"} <= names
    assert manifest["exported_by"] == who
    assert manifest["filters"]["article_id"] == users["article"]
    assert claims.count("\n") == 2  # the header and the article's one claim
    assert "'=cmd" in articles  # the formula guard
    with Session(engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "export.create")).all()
    assert [e.actor for e in events] == [who]
