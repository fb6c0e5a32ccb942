"""Hostile input and bounded ingest: refused cleanly, alike on SQLite and PostgreSQL.

Real files, a real FIFO, a real symlink to /dev/zero, a real local HTTP server, real
subprocesses killed with real signals, both databases.
"""

from __future__ import annotations

import gzip
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session, select

from evidence import audit, config, crud, db
from evidence.errors import InputError, ParseError
from evidence.models import RUN_STATUSES, Article, AuditEvent, IngestRun, Study
from ingest import articles
from substantiate import cli, jobs
from tests.pubmed_records import article_set, article_xml

ROOT = Path(__file__).resolve().parents[1]
GOOD = ("Ketamine relieves depression within hours for most patients. "
        "Studies show esketamine reduces symptoms by 70% in adults.\n")


def _fifo(d: Path) -> Path:
    os.mkfifo(d / "x.txt")
    return d / "x.txt"


def _zero(d: Path) -> Path:
    (d / "zero.txt").symlink_to("/dev/zero")
    return d / "zero.txt"


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return make


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "nul": (_write("nul.txt", b"\x00" * 1000), "NUL character at offset 0"),
    "c0": (_write("c0.txt", GOOD.encode() + b"\x1b[2J\x07"), "control character U+001B"),
    "utf16": (_write("u16.txt", GOOD.encode("utf-16-le")), "looks like UTF-16"),
    "html-c0": (_write("c0.html", b"<html><body><article><p>Ketamine cures depression"
                                  b"\x01 in one visit.</p></article></body></html>"),
                "control character U+0001"),
    "fifo": (_fifo, "is a FIFO (named pipe), not a regular file"),
    "dev-zero": (_zero, "is a character device (through a symlink)"),
    "oversized": (_write("big.txt", GOOD.encode() * 200), "setting MAX_ARTICLE_BYTES"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_file_is_refused_and_the_good_file_after_it_is_stored(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:
    monkeypatch.setenv("MAX_ARTICLE_BYTES", "5000")
    config.reset_settings()
    make, message = HOSTILE[kind]
    bad = make(tmp_path)
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    summary = jobs.ingest_articles(engine, [str(bad), str(good)], keep_going=True)
    assert len(summary.errors) == 1, summary.errors
    line = summary.errors[0]
    assert "\n" not in line and line.startswith(f"{bad}: ") and message in line
    assert line.count(str(bad)) == 1
    with Session(engine) as s:
        assert [a.source for a in s.exec(select(Article)).all()] == [str(good)]
        run = s.exec(select(IngestRun)).one()
        assert run.status == "partial" and run.error == line


def test_without_keep_going_a_hostile_file_stops_before_any_write(engine: Engine,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(InputError, match="NUL character"):
        jobs.ingest_articles(engine, [str(HOSTILE["nul"][0](tmp_path))])
    with Session(engine) as s:
        assert s.exec(select(Article)).all() == []


def test_form_feed_vertical_tab_and_tabs_are_text(tmp_path: Path) -> None:
    path = tmp_path / "ff.txt"
    path.write_bytes(b"Page one.\tTabbed.\x0cPage two.\x0bLine.\r\nEnd.\n")
    assert articles.read_path(path).text == "Page one.\tTabbed.\x0cPage two.\x0bLine.\nEnd.\n"


def test_html_references_to_control_characters_leave_none_in_the_text() -> None:
    parsed = articles.parse_document(
        b"<html><body><article><p>Ketamine cures depression&#1; in one visit&#27;[2J.</p>"
        b"</article></body></html>", source="ref.html")
    assert "\x01" not in parsed.text and "\x1b" not in parsed.text
    with pytest.raises(InputError, match="control character U\\+0001"):
        articles.check_text(parsed.text + "\x01", source="ref.html")


def test_declared_utf16_is_read(tmp_path: Path) -> None:
    parsed = articles.parse_document(GOOD.encode("utf-16-le"), source="u.txt",
                                     content_type="text/plain; charset=utf-16-le")
    assert parsed.text == GOOD


def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    # A blocking open of a FIFO with no writer never returns: reaching the assertion at
    # all shows it was not opened.
    with pytest.raises(InputError, match="FIFO"):
        articles.read_path(_fifo(tmp_path))


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "sparse.txt"
    with path.open("wb") as f:  # a sparse 3 GB file: reading it would exhaust memory
        f.truncate(3_000_000_000)
    with pytest.raises(InputError, match=r"limit of 20,000,000 bytes \(setting MAX_ARTICLE"):
        articles.read_path(path)


# --- URLs ----------------------------------------------------------------------------

BIG = GOOD.encode() * 200  # 24 KB


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if self.path == "/announced":
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            self.wfile.write(BIG)
        elif self.path == "/nul":
            body = GOOD.encode() + b"\x00"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # streamed without a length, and without end
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = GOOD.encode() * 50
            try:
                for _ in range(10_000):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:  # the client stopped reading: the point of the test
                pass
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("path", ["/announced", "/endless"])
def test_url_past_the_limit_is_refused(server: str, path: str) -> None:
    with pytest.raises(InputError, match=r"limit of 10,000 bytes \(setting MAX_ARTICLE_BYTES"):
        articles.fetch_url(server + path, max_bytes=10_000)


def test_url_with_a_nul_is_refused(server: str) -> None:
    with pytest.raises(InputError, match="NUL character"):
        articles.fetch_url(server + "/nul")


# --- --keep-going past database errors ------------------------------------------------

_REFUSE = {
    "sqlite": ["CREATE TRIGGER refuse_bad BEFORE INSERT ON article WHEN NEW.source LIKE "
               "'%bad%' BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse_bad() RETURNS trigger AS $$ BEGIN "
        "IF position('bad' in NEW.source) > 0 THEN RAISE EXCEPTION 'refused by the database'; "
        "END IF; RETURN NEW; END; $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_bad BEFORE INSERT ON article FOR EACH ROW EXECUTE FUNCTION "
        "refuse_bad()",
    ],
}


def test_keep_going_continues_past_a_database_error(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        for stmt in _REFUSE[engine.dialect.name]:
            conn.exec_driver_sql(stmt)
    paths = [tmp_path / "a.txt", tmp_path / "bad.txt", tmp_path / "c.txt"]
    for i, p in enumerate(paths):
        p.write_text(f"Article {i}. {GOOD}", encoding="utf-8")
    summary = jobs.ingest_articles(engine, [str(p) for p in paths], keep_going=True)
    assert summary.new == 2
    assert len(summary.errors) == 1
    assert summary.errors[0].startswith(f"{paths[1]}: database error: ")
    assert "refused by the database" in summary.errors[0] and "\n" not in summary.errors[0]
    with Session(engine) as s:
        assert sorted(a.source for a in s.exec(select(Article)).all()) == [
            str(paths[0]), str(paths[2])]
        assert s.exec(select(IngestRun)).one().status == "partial"
    with db.read_session(engine) as s:
        assert audit.verify(s).ok


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db_url: str,
         *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process on ``db_url``: (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr(sys, "argv", ["substantiate", *args])
    config.reset_settings()
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for eng in db._engines.values():
            eng.dispose()
        db._engines.clear()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url,
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_cli_keep_going_exits_1_and_says_how_many_were_skipped(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    nul = HOSTILE["nul"][0](tmp_path)
    zero = _zero(tmp_path)
    code, out, err = _cli(monkeypatch, capsys, sqlite_url, "ingest", "articles",
                          "--keep-going", str(nul), str(zero), str(good))
    assert code == 1, err
    assert "Traceback" not in err
    assert "articles: 1 new" in out
    lines = err.strip().splitlines()
    assert lines == [f"skipped: {nul}: not text: NUL character at offset 0",
                     f"skipped: {zero}: is a character device (through a symlink), not a "
                     "regular file; refused without reading it",
                     "2 input(s) skipped"]


# --- runs that never stay running -----------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers: a fetch waits on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/post.html"
    finally:
        sock.close()


def _wait_for_running(db_url: str, proc: subprocess.Popen[str]) -> int:
    eng = create_engine(db_url)
    try:
        for _ in range(600):  # the process is blocked on the silent server once the row is in
            assert proc.poll() is None, proc.communicate()
            with eng.connect() as conn:
                row = conn.execute(text(
                    "SELECT id FROM ingest_run WHERE status = 'running'")).first()
            if row is not None:
                return int(row[0])
            time.sleep(0.1)
        raise AssertionError("the run never started")
    finally:
        eng.dispose()


def _run_row(db_url: str, run_id: int) -> tuple[str, str | None]:
    eng = create_engine(db_url)
    try:
        with eng.connect() as conn:
            status, error = conn.execute(text("SELECT status, error FROM ingest_run WHERE id = :i"),
                                         {"i": run_id}).one()
        return str(status), error
    finally:
        eng.dispose()


def _init(db_url: str) -> None:
    eng = db.make_engine(db_url)
    db.upgrade(eng)
    eng.dispose()


def test_run_killed_with_sigkill_is_marked_interrupted_by_the_next_command(
    db_url: str, tmp_path: Path, silent_server: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = _env(db_url)
    _init(db_url)
    proc = subprocess.Popen([sys.executable, "-c", "from substantiate.cli import main; main()",
                             "ingest", "articles", silent_server], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = _wait_for_running(db_url, proc)
    proc.kill()
    proc.communicate()
    assert _run_row(db_url, run_id)[0] == "running"
    code, out, err = _cli(monkeypatch, capsys, db_url, "init")
    assert code == 0, err
    assert f"runs closed as interrupted (their process had died): {run_id}" in out
    status, error = _run_row(db_url, run_id)
    assert status == "interrupted"
    assert error is not None and f"process {proc.pid}" in error


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_close_the_run_as_interrupted(
    db_url: str, tmp_path: Path, silent_server: str, sig: signal.Signals,
) -> None:
    env = _env(db_url)
    _init(db_url)
    proc = subprocess.Popen([sys.executable, "-c", "from substantiate.cli import main; main()",
                             "ingest", "articles", silent_server], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = _wait_for_running(db_url, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert proc.returncode == 130, err
    status, error = _run_row(db_url, run_id)
    assert status == "interrupted" and error is not None and sig.name in error


def test_interrupted_is_a_run_status() -> None:
    assert "interrupted" in RUN_STATUSES and crud.INTERRUPTED == "interrupted"


def test_live_and_foreign_runs_are_left_running(engine: Engine) -> None:
    with Session(engine) as s:
        mine = IngestRun(kind="x", actor="a", params={"process": {
            "pid": os.getppid(), "host": socket.gethostname()}})
        other_host = IngestRun(kind="x", actor="a", params={"process": {
            "pid": 2**22 + 7, "host": "elsewhere.example"}})
        s.add(mine)
        s.add(other_host)
        s.commit()
    assert crud.close_interrupted_runs(engine) == []


# --- MEDLINE files that fail part-way -------------------------------------------------


def _medline(n: int) -> bytes:
    return article_set(*(article_xml(str(90_100_000 + i), title=f"Study {i} of ketamine",
                                     doi=f"10.5555/hostile.{i}") for i in range(n)))


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_medline_file_keeps_what_loaded_and_says_how_to_resume(
    engine: Engine, tmp_path: Path, compressed: bool,
) -> None:
    whole = _medline(500)
    cut = whole[: int(len(whole) * 0.8)]
    path = tmp_path / ("pubmed.xml.gz" if compressed else "pubmed.xml")
    path.write_bytes(gzip.compress(cut) if compressed else cut)
    with pytest.raises(ParseError) as info:
        jobs.ingest_medline(engine, [path], actor="cli:ann", batch_size=100)
    with Session(engine) as s:
        loaded = len(s.exec(select(Study)).all())
        run = s.exec(select(IngestRun)).one()
    message = str(info.value)
    assert 390 <= loaded < 500  # every complete record before the fault, not only batches
    assert f"{loaded} records before the fault were loaded and kept ({loaded} new" in message
    assert "run the same command again" in message and "\n" not in message
    assert run.status == "error" and run.error == message
    assert message.count(path.name) == 1  # the file is named once
    path.write_bytes(gzip.compress(whole) if compressed else whole)
    summary = jobs.ingest_medline(engine, [path], actor="cli:ann", batch_size=100)
    assert summary.total.inserted == 500 - loaded and summary.total.unchanged == loaded


def test_medline_raw_record_audit_names_the_acting_user(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "pubmed.xml"
    path.write_bytes(_medline(3))
    jobs.ingest_medline(engine, [path], actor="cli:ann")
    with Session(engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "raw_record.store")).all()
    assert [e.actor for e in events] == ["cli:ann"]


# --- the append-only guards -----------------------------------------------------------

_DROP = {
    "sqlite": "DROP TRIGGER audit_event_no_delete",
    "postgresql": "DROP TRIGGER audit_event_no_change ON audit_event",
}


def test_dropped_append_only_trigger_fails_verify_and_init_restores_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _init(db_url)
    eng = db.make_engine(db_url)
    try:
        with Session(eng) as s:
            crud.add_user(session=s, username="ann", role="admin", password=None, actor=None)
            s.commit()
        with eng.begin() as conn:
            conn.exec_driver_sql(_DROP[eng.dialect.name])
        name = _DROP[eng.dialect.name].split()[2]
        with db.read_session(eng) as s:
            result = audit.verify(s)
        assert not result.ok and result.reason is not None
        assert result.reason.startswith(f"append-only guard missing: {name}")
        code, _, err = _cli(monkeypatch, capsys, db_url, "audit", "verify")
        assert code == 1
        assert err.startswith(f"audit trail BROKEN: append-only guard missing: {name}")
        code, out, _ = _cli(monkeypatch, capsys, db_url, "init")
        assert code == 0 and f"append-only guard: {name}" in out
        code, _, err = _cli(monkeypatch, capsys, db_url, "audit", "verify")
        assert code == 0, err
        with pytest.raises(Exception, match="append-only"), eng.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit_event")
    finally:
        eng.dispose()


def test_disabled_trigger_on_postgresql_is_missing(pg_url: str) -> None:
    eng = db.make_engine(pg_url)
    try:
        db.upgrade(eng)
        with eng.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change")
            assert db.missing_append_only_guards(conn) == ["audit_event_no_change"]
        assert db.ensure_append_only_guards(eng) == ["audit_event_no_change"]
        with eng.connect() as conn:
            assert db.missing_append_only_guards(conn) == []
    finally:
        eng.dispose()
