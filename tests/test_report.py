"""The substantiation report of an article: HTML and PDF, the CLI command, the app's download."""

from __future__ import annotations

import getpass
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import config, db, report
from evidence.models import AuditEvent, Citation
from substantiate import cli
from tests._cli import run_cli as _run
from tests.factories import (
    make_article,
    make_assessment,
    make_claim,
    make_link,
    make_study,
    make_user,
    make_verdict,
)

HOSTILE = 'Ketamine <script>alert("x")</script> works for 9 in 10 patients.'
PLAIN = "Many patients feel relief within hours of their first infusion."
TEXT = f"Ketamine therapy\n\n{PLAIN}\n\n{HOSTILE}\n\nSources: PMID 90000201, clinic.example\n"
TITLE = "<script>alert(1)</script> Ketamine & you"
AUTHORS = [{"last_name": "Smith", "fore_name": "Jane", "initials": "J"},
           {"last_name": "Doe", "fore_name": "Alan B", "initials": "AB"}]


def _seed(session: Session, *, text: str = TEXT, title: str = TITLE,
          claim_text: str = PLAIN) -> dict[str, Any]:
    article = make_article(session, text=text, title=title,
                           source="https://clinic.example/blog/ketamine")
    decided = make_claim(session, article=article, sentence=claim_text,
                         flags=["no_fitting_citation"])
    hostile = make_claim(session, article=article, sentence=HOSTILE) if HOSTILE in text else None
    rita = make_user(session, username="rita")
    ada = make_user(session, username="ada", role="adjudicator")
    rct = make_study(session, pmid="90000201", doi="10.5555/ket.2020.1", authors=AUTHORS,
                     title="Rapid effects of ketamine: a randomized trial", volume="12",
                     issue="3", pages="100-9")
    misfit = make_study(session, pmid="90000202", title="Ketamine in anorexia nervosa")
    link = make_link(session, claim=decided, study=rct)
    make_link(session, claim=decided, study=misfit, fits=False, rank=2)
    make_assessment(session, link=link, reviewer=rita, stance="supports", note="n=60")
    make_verdict(session, claim=decided, reviewer=rita)
    make_verdict(session, claim=decided, reviewer=ada, kind="final", certainty="low",
                 substantiation="partially_substantiated", action="revise_wording",
                 rationale="one small trial", suggested_certainty="moderate",
                 suggestion_reasons=["1 RCT supports the claim: starts high",
                                     "imprecision: -1"],
                 domains={"imprecision": "very_serious"})
    decided.status = "final"
    session.add(decided)
    session.add_all([
        Citation(article_id=article.id, raw="PMID 90000201", kind="pmid",
                 identifier="90000201", status="resolved", pmid="90000201", start=1),
        Citation(article_id=article.id, raw="PMID 90000202", kind="pmid",
                 identifier="90000202", status="resolved", pmid="90000202", start=2,
                 flags=["addresses_no_claim"]),
        Citation(article_id=article.id, raw="clinic.example", kind="web",
                 identifier="https://clinic.example/", status="not_scholarly", start=3),
    ])
    session.commit()
    return {"article": article.id, "claim": decided.id,
            "hostile": hostile.id if hostile else None}


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def _events(engine: Engine, action: str = "report.generate") -> list[dict[str, Any]]:
    with db.read_session(engine) as s:
        return [e.model_dump() for e in s.exec(
            select(AuditEvent).where(col(AuditEvent.action) == action)
            .order_by(col(AuditEvent.id))).all()]


def _head(engine: Engine) -> str | None:
    with db.read_session(engine) as s:
        return report.audit_head(s)[0]


def _audit_something(engine: Engine) -> None:
    from evidence import audit

    with db.session_scope(engine) as s:
        audit.record(s, actor="test", action="test.seed", entity="article", entity_id=1)


def test_html_report_shows_everything_and_escapes_the_article(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s)
    _audit_something(engine)
    head = _head(engine)
    html = report.generate(engine, article_id=ids["article"], fmt="html",
                           actor="ada").decode()
    # Untrusted text is escaped, never markup: no script element reaches the page.
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Ketamine &amp; you" in html
    assert "Ketamine &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; works" in html
    # Claims in reading order, each with verdict, certainty, reasons, reviewers.
    assert html.index(PLAIN) < html.index("Ketamine &lt;script&gt;alert")
    assert "Verdict: partially substantiated; certainty low; action revise wording" in html
    assert "no final verdict (unreviewed)" in html
    assert "one small trial" in html and "imprecision: -1" in html
    assert "imprecision: very serious" in html
    assert "none of the studies its article cites fits this claim" in html
    assert "ada on " in html and "rita: substantiated, certainty moderate" in html
    assert "rita: supports, relevance high (n=60)" in html
    # The evidence with full citation and links; the weaker match is left out.
    assert ("Smith J, Doe AB. Rapid effects of ketamine: a randomized trial. "
            "Journal of Affective Disorders. 2020;12(3):100-9.") in html
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/90000201/"' in html
    assert 'href="https://doi.org/10.5555/ket.2020.1"' in html
    assert "PMID 90000202</a>" not in html
    # The article's citations and whether each addresses a claim.
    assert "addresses claim #1" in html
    assert "cited but does not address any claim of its article" in html
    assert "not a scholarly source" in html
    # Header and footer: source, sha256, who, the audit head before this report.
    assert "https://clinic.example/blog/ketamine" in html and "by ada" in html
    assert f"<code>{head}</code>" in html
    assert "<td>partially substantiated</td><td>1</td>" in html
    events = _events(engine)
    assert len(events) == 1 and events[0]["actor"] == "ada"
    assert events[0]["entity_id"] == str(ids["article"])
    assert events[0]["after"]["format"] == "html"
    assert events[0]["after"]["sha256"] == hashlib.sha256(html.encode()).hexdigest()


def test_pdf_report_reads_back(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s)
    _audit_something(engine)
    head = _head(engine)
    data = report.generate(engine, article_id=ids["article"], fmt="pdf", actor="cli:tester")
    assert data.startswith(b"%PDF-")
    text = _pdf_text(data)
    assert PLAIN in text
    assert "Verdict: partially substantiated; certainty low; action revise wording" in text
    assert "PMID 90000201" in text and "https://doi.org/10.5555/ket.2020.1" in text
    assert head is not None and f"Audit chain head: {head}" in text
    assert "Generated" in text and "by cli:tester" in text
    assert "addresses claim #1" in text
    links = [a["/A"]["/URI"] for page in PdfReader(io.BytesIO(data)).pages
             for a in (o.get_object() for o in page.get("/Annots") or [])
             if "/A" in a and "/URI" in a["/A"]]
    assert "https://pubmed.ncbi.nlm.nih.gov/90000201/" in links
    assert [e["after"]["format"] for e in _events(engine)] == ["pdf"]


def test_pdf_without_a_unicode_font_marks_what_it_cannot_show(engine: Engine) -> None:
    claim = "Кетамин “works” in ≥ 70 % of patients — fast 中."
    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s, text=f"Intro.\n\n{claim}\n", title="Café ketamine", claim_text=claim)
    with db.read_session(engine) as s:
        built = report.build(s, article_id=ids["article"], generated_by="t")
    text = _pdf_text(report.render_pdf(built, font=None))
    assert "Café ketamine" in text  # Latin-1 is kept
    assert '[U+041A][U+0435]' in text
    assert '"works" in >= 70 % of patients -- fast [U+4E2D].' in text
    assert "written as [U+XXXX]" in text
    font = report.unicode_font()
    if font is None:
        pytest.skip("no Unicode TrueType font installed (e.g. Debian's fonts-dejavu-core)")
    text = _pdf_text(report.render_pdf(built, font=font))
    # The font shows Cyrillic as written; what it has no glyph for is marked, not dropped.
    assert "Кетамин" in text and "[U+041A]" not in text
    assert "fast [U+4E2D]." in text and "written as [U+XXXX]" in text


def test_unknown_article_and_format_are_refused_without_an_audit_event(engine: Engine) -> None:
    from evidence.errors import InputError, NotFound

    with pytest.raises(NotFound, match="article 999999 does not exist"):
        report.generate(engine, article_id=999999, fmt="pdf", actor="t")
    with pytest.raises(InputError, match="unknown report format 'docx'"):
        report.generate(engine, article_id=1, fmt="docx", actor="t")
    with pytest.raises(InputError, match=r"use a \.html or \.pdf file name"):
        report.format_for(Path("out.docx"))
    assert _events(engine) == []


def test_report_keeps_independent_review_blind(engine: Engine) -> None:
    from evidence.errors import PermissionDenied
    from evidence.models import AppUser, Claim

    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s)
        ravi = make_user(s, username="ravi")
        rita = s.exec(select(AppUser).where(col(AppUser.username) == "rita")).one()
        hostile = ids["hostile"]
        pending = s.get(Claim, hostile)
        assert pending is not None
        make_verdict(s, claim=pending, reviewer=rita)  # rita reviewed; ravi has not
        pending.status = "in_review"
        s.add(pending)
        s.commit()
    with pytest.raises(PermissionDenied, match=rf"claim\(s\) #{hostile} until you submit"):
        report.generate(engine, article_id=ids["article"], fmt="html", actor="ravi",
                        viewer=ravi)
    assert _events(engine) == []
    # rita sees her own review, and the command line (no viewer) is not blinded.
    assert report.generate(engine, article_id=ids["article"], fmt="html", actor="rita",
                           viewer=rita)
    assert report.generate(engine, article_id=ids["article"], fmt="html", actor="cli:x")


# --------------------------------------------------------------------------- CLI




def test_cli_writes_the_report_and_audits_it(migrated: Engine, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    with Session(migrated, expire_on_commit=False) as s:
        ids = _seed(s)
    out = tmp_path / "reports" / "article.pdf"
    code, stdout, err = _run(monkeypatch, capsys, "report", "--article", str(ids["article"]),
                             "--out", str(out))
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} (pdf, ")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and PLAIN in _pdf_text(data)
    user = os.environ.get("USER") or getpass.getuser()
    assert f"cli:{user}" in _pdf_text(data) or "cli:operator" in _pdf_text(data)
    events = _events(migrated)
    assert len(events) == 1 and events[0]["actor"] == cli.ACTOR

    html = tmp_path / "article.html"
    code, _, err = _run(monkeypatch, capsys, "report", "--article", str(ids["article"]),
                        "--out", str(html), "--json")
    assert code == 0, err
    assert html.read_text().startswith("<!DOCTYPE html>")

    code, _, err = _run(monkeypatch, capsys, "report", "--article", "999999", "--out",
                        str(tmp_path / "x.pdf"))
    assert (code, err.strip()) == (1, "error: article 999999 does not exist")
    code, _, err = _run(monkeypatch, capsys, "report", "--article", str(ids["article"]),
                        "--out", str(tmp_path / "x.docx"))
    assert code == 1 and err.startswith("error: cannot tell the report format from 'x.docx'")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pdf").exists() and len(_events(migrated)) == 2


# --------------------------------------------------------------------------- app

APP = Path(__file__).resolve().parents[1] / "app.py"


def test_claim_screen_prepares_and_offers_the_report(sqlite_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    config.reset_settings()
    eng = db.get_engine()
    db.upgrade(eng)
    with Session(eng, expire_on_commit=False) as s:
        ids = _seed(s)
        viewer = make_user(s, username="vera", role="viewer")
        s.commit()
    # Record what the app hands Streamlit's media storage, to read the button's file back.
    served: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self: MemoryMediaFileStorage, data: Any, mimetype: str, kind: Any,
            filename: str | None = None) -> str:
        file_id = original(self, data, mimetype, kind, filename)
        served[file_id] = data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user_id"] = viewer.id  # reading is enough to file a report
    at.session_state["claim_id"] = ids["claim"]
    at.run()
    at.switch_page("app_pages/claim.py").run()
    assert not at.exception, at.exception
    assert not at.get("download_button")  # nothing is generated until asked for
    for fmt, magic in (("pdf", b"%PDF-"), ("html", b"<!DOCTYPE html>")):
        next(r for r in at.radio if r.label == "Format").set_value(fmt).run()
        next(b for b in at.button if b.label == "Prepare report").click().run()
        assert not at.exception, at.exception
        button = at.get("download_button")[0]
        assert button.proto.label == f"Download the {fmt.upper()} report"
        file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
        data = served[file_id]
        assert data.startswith(magic)
        assert b"vera" in data if fmt == "html" else "by vera" in _pdf_text(data)
    assert [(e["actor"], e["after"]["format"]) for e in _events(eng)] == [
        ("vera", "pdf"), ("vera", "html")]
