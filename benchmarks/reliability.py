"""Reliability: concurrent writes, lock errors, hostile inputs, kill -9 recovery, ingest scaling.

Usage::

    python -m benchmarks.reliability
    python -m benchmarks.reliability --writes 1000 --sqlite-writes 240 --kills 3 \\
        --sizes 0.025 0.05 0.1 0.2

Everything runs on temporary databases: a SQLite file, and a fresh schema of the PostgreSQL
server at ``SUBSTANTIATE_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/
test``) when it is reachable (``postgresql: null`` in the output otherwise). Every record
and article is generated (studies use PMIDs from 90000000 up).

Parts, each through the real code:

- ``concurrent_writes``: 8 writer threads, each with its own engine, save assessments and
  verdicts on 3 shared claims as 2 reviewers with the version a form would have shown
  (``benchmarks._concurrency.review_race``): attempted / applied / refused-stale / lost
  (applied writes the final rows do not reflect: must be 0) / "database is locked" errors,
  and whether the audit chain verifies afterwards; per database.
- ``locks_during_ingest``: two ``substantiate ingest articles`` processes on one SQLite file
  while ``substantiate claims list`` and ``audit verify`` run again and again: commands
  that failed, "database is locked" errors seen (must be 0), articles stored.
- ``hostile_inputs``: NUL bytes, C0 controls, undeclared UTF-16, a FIFO, a symlink to
  ``/dev/zero``, an oversized file, ... each ingested with ``--keep-going`` beside a good
  file (``benchmarks._hostile.run_hostile``): tried / refused cleanly (one error line, exit
  1, nothing stored for it, the good file stored, no traceback).
- ``kill9``: an ingest of generated articles killed with SIGKILL part-way, ``init``, then the
  same ingest again: recovered when the killed run is marked ``interrupted``, every article
  is stored exactly once and the audit chain verifies.
- ``ingest_scaling``: one generated article per size ingested as one article
  (``benchmarks.ingest_scaling.measure``); ``ratio`` is the per-MB cost of the largest over
  the smallest (the baseline): about 1 when ingest is linear.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from benchmarks import _concurrency, _hostile, ingest_scaling

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("SUBSTANTIATE_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOCKED = "database is locked"
CLI = [sys.executable, "-c", "from substantiate.cli import main; main()"]


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "CLAIM_GROUP_SEMANTIC": "false",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def _migrate(url: str) -> None:
    from evidence import db

    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()


@contextmanager
def _pg_schema() -> Iterator[str | None]:
    """A URL for a fresh PostgreSQL schema (dropped afterwards), or None without a server."""
    try:
        admin = create_engine(PG_ADMIN_URL)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001  (no server: that part is reported as null)
        yield None
        return
    schema = f"rel_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    try:
        yield f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _articles(folder: Path, n: int, *, seed: int) -> list[Path]:
    """``n`` generated articles of a few paragraphs each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"post{i:03d}.txt"
        path.write_text(f"Clinic post {seed}-{i}\n\n"
                        + ingest_scaling.make_article(0.004, seed=seed * 1000 + i),
                        encoding="utf-8")
        paths.append(path)
    return paths


def _count(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ parts


def concurrent_writes(url: str, *, writes: int) -> dict[str, Any]:
    """The review race on ``url`` (schema made here)."""
    _migrate(url)
    start = time.perf_counter()
    count = _concurrency.review_race(url, writers=8, writes=writes, claims=3, reviewers=2)
    return {**count.as_dict(), "seconds": round(time.perf_counter() - start, 2)}


def locks_during_ingest(folder: Path, *, articles: int) -> dict[str, Any]:
    """Two ingests and repeated readers on one SQLite file; count failures and lock errors."""
    url = f"sqlite:///{folder / 'locks.db'}"
    _migrate(url)
    env = _env(url)
    ingests = [subprocess.Popen([*CLI, "ingest", "articles",
                                 *map(str, _articles(folder / f"batch{k}", articles, seed=k))],
                                env=env, cwd=folder, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    readers = {"claims list": ["claims", "list", "--json"], "audit verify": ["audit", "verify"]}
    runs = failed = locked = 0
    while any(p.poll() is None for p in ingests):
        for args in readers.values():
            proc = subprocess.run([*CLI, *args], env=env, cwd=folder, capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL)
            runs += 1
            failed += proc.returncode != 0
            locked += (proc.stdout + proc.stderr).count(LOCKED)
    ingest_failed = 0
    for p in ingests:
        out, err = p.communicate()
        ingest_failed += p.returncode != 0
        locked += (out + err).count(LOCKED)
    return {"ingests": len(ingests), "ingests_failed": ingest_failed,
            "reader_commands": runs, "reader_commands_failed": failed,
            "database_is_locked_errors": locked,
            "articles_expected": 2 * articles,
            "articles_stored": _count(url, "SELECT count(*) FROM article")}


def kill9(folder: Path, *, kills: int, articles: int) -> dict[str, Any]:
    """Kill an ingest with SIGKILL part-way, ``init``, ingest again; count recoveries."""
    rng = random.Random(9)
    details = []
    for k in range(kills):
        work = folder / f"kill{k}"
        work.mkdir()
        url = f"sqlite:///{work / 'kill.db'}"
        _migrate(url)
        env = _env(url)
        paths = [str(p) for p in _articles(work / "posts", articles, seed=100 + k)]
        proc = subprocess.Popen([*CLI, "ingest", "articles", *paths], env=env, cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait until some articles are in, then kill at a random moment.
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if _count(url, "SELECT count(*) FROM article") >= 1:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        killed_mid_run = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stored_at_kill = _count(url, "SELECT count(*) FROM article")
        init = subprocess.run([*CLI, "init"], env=env, cwd=work, capture_output=True,
                              text=True)
        interrupted = _count(url, "SELECT count(*) FROM ingest_run "
                                  "WHERE status = 'interrupted'")
        still_running = _count(url, "SELECT count(*) FROM ingest_run WHERE status = 'running'")
        again = subprocess.run([*CLI, "ingest", "articles", *paths], env=env, cwd=work,
                               capture_output=True, text=True)
        verify = subprocess.run([*CLI, "audit", "verify"], env=env, cwd=work,
                                capture_output=True, text=True)
        stored = _count(url, "SELECT count(*) FROM article")
        recovered = (init.returncode == 0 and (interrupted == 1 or not killed_mid_run)
                     and still_running == 0 and again.returncode == 0
                     and stored == articles and verify.returncode == 0)
        details.append({"killed_mid_run": killed_mid_run, "stored_at_kill": stored_at_kill,
                        "marked_interrupted": interrupted, "left_running": still_running,
                        "stored_after_rerun": stored, "audit_verifies": verify.returncode == 0,
                        "recovered": recovered})
    return {"kills": kills, "killed_mid_run": sum(d["killed_mid_run"] for d in details),
            "recovered": sum(d["recovered"] for d in details), "details": details}


def measure(*, writes: int, sqlite_writes: int, kills: int, lock_articles: int,
            sizes: list[float]) -> dict[str, Any]:
    """Run every part; return the JSON object ``main`` prints."""
    result: dict[str, Any] = {"benchmark": "reliability"}
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        root = Path(tmp)
        writes_by_db: dict[str, Any] = {
            "sqlite": concurrent_writes(f"sqlite:///{root / 'race.db'}", writes=sqlite_writes)}
        with _pg_schema() as pg:
            writes_by_db["postgresql"] = (concurrent_writes(pg, writes=writes)
                                          if pg is not None else None)
        result["concurrent_writes"] = writes_by_db
        (root / "locks").mkdir()
        result["locks_during_ingest"] = locks_during_ingest(root / "locks",
                                                            articles=lock_articles)
        (root / "hostile").mkdir()
        hostile = {"sqlite": _hostile.run_hostile(root / "hostile",
                                                  f"sqlite:///{root / 'hostile.db'}")}
        with _pg_schema() as pg:
            if pg is not None:
                (root / "hostile_pg").mkdir()
                _migrate(pg)
                hostile["postgresql"] = _hostile.run_hostile(root / "hostile_pg", pg)
        result["hostile_inputs"] = {
            name: {k: v for k, v in h.items() if k != "details"}
            | {"not_clean": [d for d in h["details"] if not d["clean"]]}
            for name, h in hostile.items()}
        (root / "kill").mkdir()
        result["kill9"] = kill9(root / "kill", kills=kills, articles=12)
    result["ingest_scaling"] = ingest_scaling.measure(sizes)
    races = [r for r in writes_by_db.values() if r is not None]
    result["summary"] = {
        "writes_attempted": sum(r["attempted"] for r in races),
        "writes_applied": sum(r["applied"] for r in races),
        "writes_refused_stale": sum(r["refused_stale"] for r in races),
        "writes_lost": sum(r["lost"] for r in races),
        "database_is_locked_errors": sum(r["locked"] for r in races)
        + result["locks_during_ingest"]["database_is_locked_errors"],
        "hostile_tried": sum(h["tried"] for h in hostile.values()),
        "hostile_refused_cleanly": sum(h["refused_cleanly"] for h in hostile.values()),
        "kill9_recoveries": f"{result['kill9']['recovered']}/{kills}",
        "ingest_scaling_ratio": result["ingest_scaling"]["ratio"],
    }
    return result


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print :func:`measure`'s JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000,
                        help="writes in the PostgreSQL race (default 1000)")
    parser.add_argument("--sqlite-writes", type=int, default=240,
                        help="writes in the SQLite race (default 240)")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 rounds (default 3)")
    parser.add_argument("--lock-articles", type=int, default=8,
                        help="articles per ingest in the lock test (default 8)")
    parser.add_argument("--sizes", type=float, nargs="+",
                        default=list(ingest_scaling.DEFAULT_SIZES),
                        help="article sizes (MB) for the scaling part")
    args = parser.parse_args(argv)
    print(json.dumps(measure(writes=args.writes, sqlite_writes=args.sqlite_writes,
                             kills=args.kills, lock_articles=args.lock_articles,
                             sizes=args.sizes)))


if __name__ == "__main__":
    main()
