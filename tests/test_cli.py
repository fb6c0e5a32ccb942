"""The command line: exit codes, exact messages, JSON output, the demo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from substantiate import cli
from tests._cli import run_cli as run

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "articles"


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Offline: E-utilities on a closed port, so the demo reports it and carries on.
    monkeypatch.setenv("EUTILS_BASE_URL", "http://127.0.0.1:9/eutils/")
    monkeypatch.setenv("NCBI_MAX_WAIT", "0.5")
    target = tmp_path / "data" / "articles"
    target.mkdir(parents=True)
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, target / f.name)
    return target


def test_help_lists_every_command(monkeypatch, capsys) -> None:
    code, out, _ = run(monkeypatch, capsys, "--help")
    assert code == 0
    for name in ("init", "demo", "ingest", "claims", "citations", "audit", "export", "users"):
        assert name in out


def test_demo_ingests_corpus_and_prints_counts(monkeypatch, capsys, corpus: Path) -> None:
    code, out, err = run(monkeypatch, capsys, "demo", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["articles"] == 5
    assert summary["claims"] >= 100
    assert summary["citations_by_kind"]["web"]["not_scholarly"] >= 1
    assert {"pmid", "doi", "pmcid"} <= set(summary["citations_by_kind"])
    assert summary["pubmed"]["offline"]
    assert sorted(summary["pubmed"]["not_fetched"]) == [
        "doi:10.1186/s40337-022-00588-9", "pmcid:PMC6767816", "pmid:35326338",
        "pmid:35997954"]
    assert summary["admin"]["username"] == "admin" and len(summary["admin"]["password"]) >= 12
    # A second run changes nothing.
    code, out, _ = run(monkeypatch, capsys, "demo", "--json")
    again = json.loads(out)
    assert again["ingest"]["unchanged"] == 5 and again["ingest"]["new"] == 0
    assert again["claims"] == summary["claims"]
    assert "admin" not in again  # the first admin is created once


def test_demo_text_output_says_what_was_not_fetched(monkeypatch, capsys, corpus: Path) -> None:
    code, out, err = run(monkeypatch, capsys, "demo", "--no-app")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("PubMed not reachable"))
    assert "4 citations not fetched" in line and "doi:10.1186/s40337-022-00588-9" in line
    assert "with fitting cited evidence" in out
    assert "first run: created admin user 'admin'" in out


def test_ingest_twice_is_a_noop_and_changed_text_is_a_new_version(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    art = tmp_path / "post.txt"
    art.write_text("Ketamine Clinic\nKetamine relieves depression within hours for most "
                   "patients.\nSide effects are minimal and short-lived.\n")
    code, out, err = run(monkeypatch, capsys, "ingest", "articles", str(art), "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["new"] == 1 and first["claims"] >= 2
    code, out, _ = run(monkeypatch, capsys, "ingest", "articles", str(art), "--json")
    assert json.loads(out)["unchanged"] == 1
    art.write_text(art.read_text() + "Ketamine is FDA approved for depression.\n")
    code, out, _ = run(monkeypatch, capsys, "ingest", "articles", str(art), "--json")
    assert json.loads(out)["new_version"] == 1
    code, out, _ = run(monkeypatch, capsys, "claims", "list", "--json")
    claims = json.loads(out)
    # Only the current revision's claims are listed; their spans match the text.
    texts = [c["text"] for c in claims]
    assert any("FDA approved" in t for t in texts)
    assert len({c["article_id"] for c in claims}) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.txt", "no such file or directory"),
        (lambda p: (p / "empty.txt").write_text("   \n") and p / "empty.txt", "empty"),
        (lambda p: (p / "bad.txt").write_bytes(b"Ketamine \xff\xfe\xfa works") and p / "bad.txt",
         "undecodable bytes"),
        (lambda p: (p / "doc.pdf").write_bytes(b"%PDF-1.4") and p / "doc.pdf", "unsupported"),
    ],
    ids=["missing", "empty", "undecodable", "unsupported"],
)
def test_bad_input_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path: Path, make,
                                          message: str) -> None:
    path = make(tmp_path)
    code, out, err = run(monkeypatch, capsys, "ingest", "articles", str(path))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0].lower()
    assert "Traceback" not in err


def test_unreachable_url_is_one_line(monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "ingest", "articles", "http://127.0.0.1:9/post.html")
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "127.0.0.1:9" in err


def test_bad_database_url_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    code, _, err = run(monkeypatch, capsys, "claims", "list")
    assert code == 1
    assert err.startswith("error: cannot connect to database")
    assert len(err.strip().splitlines()) == 1


def test_audit_verify_reports_tampering(monkeypatch, capsys, corpus: Path) -> None:
    run(monkeypatch, capsys, "demo", "--json")
    code, out, _ = run(monkeypatch, capsys, "audit", "verify")
    assert code == 0 and out.startswith("audit trail intact:")
    anchor = out.strip().rsplit(" ", 1)[-1]
    code, out, _ = run(monkeypatch, capsys, "audit", "verify", "--anchor", anchor)
    assert code == 0
    from sqlalchemy import create_engine

    eng = create_engine(f"sqlite:///{corpus.parent / 'substantiate.db'}")
    with eng.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_event_no_update")
        conn.exec_driver_sql("UPDATE audit_event SET actor = 'mallory' WHERE id = 7")
    eng.dispose()
    code, _, err = run(monkeypatch, capsys, "audit", "verify")
    assert code == 1
    assert err.strip() == ("audit trail BROKEN at event 7: content does not match its hash "
                           "(edited) (6 events before it verified)")


def test_export_csv_contract(monkeypatch, capsys, corpus: Path, tmp_path: Path) -> None:
    import csv
    import hashlib

    run(monkeypatch, capsys, "demo", "--json")
    out_dir = tmp_path / "export"
    code, _, err = run(monkeypatch, capsys, "export", "--format", "csv", "--out", str(out_dir))
    assert code == 0, err
    manifest = json.loads((out_dir / "manifest.json").read_text())
    names = {f["file"] for f in manifest["files"]}
    assert {"articles.csv", "claims.csv", "citations.csv", "audit_log.csv", "studies.csv",
            "links.csv", "assessments.csv", "verdicts.csv"} <= names
    for f in manifest["files"]:
        assert hashlib.sha256((out_dir / f["file"]).read_bytes()).hexdigest() == f["sha256"]
    with (out_dir / "claims.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header[:10] == ["claim_id", "article_id", "source", "text", "start", "end",
                           "category", "checkworthiness", "canonical_id", "status"]
    with (out_dir / "citations.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:5] == ["article_id", "raw", "kind", "identifier", "status"]
    web = [r for r in rows if r["kind"] == "web"]
    assert web and all(r["status"] == "not_scholarly" for r in web)
    assert manifest["audit"]["verified"] is True


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
def test_export_other_formats(monkeypatch, capsys, corpus: Path, tmp_path: Path,
                              fmt: str) -> None:
    import pandas as pd

    run(monkeypatch, capsys, "demo", "--json")
    out_dir = tmp_path / "export"
    code, _, err = run(monkeypatch, capsys, "export", "--format", fmt, "--out", str(out_dir))
    assert code == 0, err
    if fmt == "xlsx":
        sheets = pd.read_excel(out_dir / "substantiate.xlsx", sheet_name=None)
        assert len(sheets["claims"]) >= 100
    else:
        assert len(pd.read_parquet(out_dir / "claims.parquet")) >= 100


def test_export_unknown_format(monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = run(monkeypatch, capsys, "export", "--format", "doc", "--out",
                       str(tmp_path / "x"))
    assert code == 1
    assert err.strip() == "error: unknown export format 'doc'; formats: csv, xlsx, parquet"


def test_users_add_from_env(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ALICE_PW", "s3cret-pass")
    code, out, err = run(monkeypatch, capsys, "users", "add", "root", "--role", "admin",
                         "--password-env", "ALICE_PW")  # the first user: no --as needed
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "--as", "root", "users", "add", "alice",
                         "--role", "reviewer", "--password-env", "ALICE_PW")
    assert code == 0, err
    assert out.strip() == "added alice (reviewer)"
    code, _, err = run(monkeypatch, capsys, "--as", "root", "users", "add", "alice",
                       "--role", "reviewer", "--password-env", "ALICE_PW")
    assert code == 1 and err.strip() == "error: user 'alice' already exists"
    code, _, err = run(monkeypatch, capsys, "--as", "root", "users", "add", "bob",
                       "--role", "boss", "--password-env", "ALICE_PW")
    assert code == 1 and "unknown role 'boss'" in err


def test_claims_regroup(monkeypatch, capsys, corpus: Path) -> None:
    run(monkeypatch, capsys, "demo", "--json")
    code, out, _ = run(monkeypatch, capsys, "claims", "list", "--json")
    claims = json.loads(out)
    first = claims[0]
    other = next(c for c in claims if c["canonical_id"] != first["canonical_id"])
    code, out, err = run(monkeypatch, capsys, "--as", "admin", "claims", "regroup",
                         str(first["claim_id"]), "--to", str(other["canonical_id"]))
    assert code == 0, err
    assert out.startswith(f"claim {first['claim_id']} is now in canonical claim "
                          f"{other['canonical_id']} (similarity ")
    code, out, _ = run(monkeypatch, capsys, "claims", "list", "--json")
    moved = next(c for c in json.loads(out) if c["claim_id"] == first["claim_id"])
    assert moved["canonical_id"] == other["canonical_id"] and moved["version"] == 2
    code, _, err = run(monkeypatch, capsys, "--as", "admin", "claims", "regroup",
                       str(first["claim_id"]))
    assert code == 1
    assert err.strip() == "error: give exactly one of --to CANONICAL_ID or --new-statement TEXT"
    code, _, err = run(monkeypatch, capsys, "--as", "admin", "claims", "regroup", "99999",
                       "--to", "1")
    assert code == 1 and err.strip() == "error: claim 99999 does not exist"


def test_untrusted_text_is_printed_literally(monkeypatch, capsys, tmp_path: Path) -> None:
    art = tmp_path / "post.txt"
    art.write_text("Clinic [bold]News[/]\nKetamine [/] relieves [red]depression[/red] within "
                   "hours for most patients.\n")
    code, _, err = run(monkeypatch, capsys, "ingest", "articles", str(art))
    assert code == 0, err
    monkeypatch.setattr(cli.out, "width", 400)  # one table row per line
    code, out, err = run(monkeypatch, capsys, "claims", "list")
    assert code == 0, err
    assert "Ketamine [/] relieves [red]depression[/red] within hours" in out


def test_app_runs_with_the_viewer_toolbar_wherever_it_is_started(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import tomllib

    started: list[list[str]] = []
    # Record the command instead of serving the app (the browser tests serve it for real,
    # with the same options).
    monkeypatch.setattr(subprocess, "call", lambda cmd: started.append(cmd) or 0)
    code, _, err = run(monkeypatch, capsys, "app", "--port", "8599")
    assert code == 0, err
    (cmd,) = started
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "viewer"  # no "Deploy"
    assert cmd[cmd.index("--server.port") + 1] == "8599"
    # `streamlit run app.py` from the project folder reads the same from its config file.
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer"
