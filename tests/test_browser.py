"""The real app in a real browser: sign in, open a claim, grade it, save, check the database;
stay signed in across a reload and a new tab, follow a link to a claim through the sign-in,
expire and sign out; follow the re-opened claims banner to the queue.

Starts ``streamlit run app.py`` (with ``substantiate app``'s options) on a free loopback
port against a seeded temporary SQLite database and drives the system Chromium
(``/usr/bin/chromium``) with Playwright. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from evidence import db
from evidence.models import AppSession, AuditEvent, Claim, Verdict, utcnow
from substantiate.cli import APP_OPTIONS
from tests.factories import (
    make_article,
    make_claim,
    make_link,
    make_study,
    make_user,
    reopen_by_surveillance,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = '<img src=x onerror="window.__xss=1"> **Clinic** <script>window.__xss=2</script>'
PASSWORD = "correct horse battery"


def _chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (apt-get install chromium); browsers are never downloaded"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # a busy machine can take more than the 5 s default
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not become healthy in 60 s:\n{log.read_text()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The app served from a seeded SQLite database; yields its URL and the engine."""
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as s:
        article = make_article(s, title=HOSTILE)
        c1 = make_claim(s, article=article, checkworthiness=0.9,
                        suggested_certainty="moderate",
                        suggestion_reasons=["1 RCT supports the claim: starts high"])
        c2 = make_claim(s, article=article, sentence="Side effects are minimal and pass "
                        "quickly.", checkworthiness=0.5, category="safety")
        make_link(s, claim=c1, study=make_study(
            s, title='Ketamine RCT <script>window.__xss=3</script> **not bold**'),
            explanation={"sentences": [[68, 152, "Results: Ketamine reduced depressive "
                                        "symptoms within 24 hours compared with placebo.",
                                        2.5]], "terms": ["ketamine", "hours"]})
        make_link(s, claim=c1, rank=2, study=make_study(
            s, title="Ketamine for depression: a review", is_retracted=True))
        make_user(s, username="rita", role="reviewer", password=PASSWORD)
        s.commit()
        ids = {"c1": c1.id, "c2": c2.id}
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(DATABASE_URL=url, INDEPENDENT_REVIEW="true")
    log = tmp_path / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.fileWatcherType", "none",
             *APP_OPTIONS],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        yield {"base": base, "engine": engine, **ids}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        engine.dispose()


def test_sign_in_grade_and_save_in_chromium(server: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(30_000)
            page.goto(server["base"])

            page.get_by_label("Username").fill("rita")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Review queue")).to_be_visible()

            page.get_by_role("button", name="Review the top claim").click()
            expect(page.get_by_role("heading", name=f"Claim #{server['c1']}")).to_be_visible()
            # Untrusted titles show as typed; none of their markup ran.
            expect(page.get_by_text(f"From {HOSTILE}")).to_be_visible()
            expect(page.get_by_text(
                '1. Ketamine RCT <script>window.__xss=3</script> **not bold**')).to_be_visible()
            assert page.evaluate("window.__xss") is None
            expect(page.get_by_text("RETRACTED.")).to_be_visible()

            study = page.get_by_test_id("stForm").filter(has_text="Save assessment").first
            study.get_by_text("supports", exact=True).click()
            study.get_by_text("high", exact=True).click()
            study.get_by_role("button", name="Save assessment").click()
            expect(page.get_by_text("Assessment saved (version 1).")).to_be_visible()

            verdict = page.get_by_test_id("stForm").filter(has_text="Substantiation")
            verdict.get_by_text("partially substantiated", exact=True).click()
            verdict.get_by_text("revise wording", exact=True).click()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "claim-graded.png"), full_page=True)
            page.keyboard.press("Control+s")  # "Save and next", focus still on a radio

            expect(page.get_by_role("heading", name=f"Claim #{server['c2']}")).to_be_visible()
            expect(page.get_by_text(f"Verdict on claim #{server['c1']} saved")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "next-claim.png"), full_page=True)
        finally:
            browser.close()

    with Session(server["engine"]) as s:
        (v,) = s.exec(select(Verdict)).all()
        assert (v.claim_id, v.kind, v.substantiation, v.certainty, v.action) == (
            server["c1"], "review", "partially_substantiated", "high", "revise_wording")
        # rita's assessment (an RCT supporting the claim) moved the suggestion to high, and
        # the form followed it.
        assert v.suggested_certainty == "high"
        actions = [e.action for e in s.exec(select(AuditEvent).where(
            AuditEvent.actor == "rita")).all()]
    assert actions == ["assessment.create", "claim.derive", "verdict.create", "claim.status"]


def _sign_in(page: Any) -> None:
    page.get_by_label("Username").fill("rita")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_survives_reload_and_new_tab_until_expiry_or_sign_out(
    server: dict[str, Any],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    claim = f"Claim #{server['c2']}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(30_000)
            page = context.new_page()
            # A link to a claim leads through the sign-in to that claim.
            page.goto(f"{server['base']}/claim?claim={server['c2']}")
            _sign_in(page)
            expect(page.get_by_role("heading", name=claim)).to_be_visible()
            page.wait_for_function("document.cookie.includes('substantiate_session=')")
            (cookie,) = [c for c in context.cookies() if c["name"] == "substantiate_session"]
            assert cookie["sameSite"] == "Strict" and cookie["path"] == "/"
            assert cookie["value"] not in page.url

            # A reload and a new tab are still signed in.
            page.reload()
            expect(page.get_by_role("heading", name=claim)).to_be_visible()
            tab = context.new_page()
            tab.goto(server["base"])
            expect(tab.get_by_role("heading", name="Review queue")).to_be_visible()
            expect(tab.get_by_text("Signed in as rita")).to_be_visible()
            tab.close()

            # Idle past the limit: the next load asks to sign in again.
            with Session(server["engine"]) as s:
                for row in s.exec(select(AppSession)).all():
                    row.last_seen_at = utcnow() - timedelta(hours=9)
                    s.add(row)
                s.commit()
            page.reload()
            expect(page.get_by_label("Username")).to_be_visible()

            # Sign in again, sign out: a reload stays signed out.
            _sign_in(page)
            expect(page.get_by_role("heading", name=claim)).to_be_visible()
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_label("Username")).to_be_visible()
            page.reload()
            expect(page.get_by_label("Username")).to_be_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "signed-out.png"))
        finally:
            browser.close()

    with Session(server["engine"]) as s:
        rows = s.exec(select(AppSession).order_by(AppSession.id)).all()  # type: ignore[arg-type]
    assert len(rows) == 2
    assert rows[0].revoked_at is None  # expired by idle time
    assert rows[1].revoked_at is not None  # revoked by signing out


def test_reopened_banner_leads_to_the_reopened_claims_in_chromium(
    server: dict[str, Any],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with Session(server["engine"]) as s:
        claim = s.get(Claim, server["c2"])
        assert claim is not None
        reopen_by_surveillance(s, claims=[claim], adjudicator=make_user(s, role="adjudicator"))
        s.commit()
    executable = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(server["base"])
            _sign_in(page)
            expect(page.get_by_text("2 claims · page 1 of 1")).to_be_visible()
            expect(page.get_by_text("1 claim re-opened by surveillance")).to_be_visible()
            page.get_by_role("button", name="Show in the queue").click()
            expect(page.get_by_text("1 claim · page 1 of 1")).to_be_visible()
            expect(page.get_by_role("combobox", name="Status")).to_have_value("re-opened")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "reopened-queue.png"), full_page=True)
            page.get_by_role("button", name="Review the top claim").click()
            expect(page.get_by_role("heading", name=f"Claim #{server['c2']}")).to_be_visible()
            expect(page.get_by_text("Re-opened by surveillance on")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "reopened-claim.png"), full_page=True)
        finally:
            browser.close()
