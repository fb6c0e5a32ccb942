"""Hostile inputs for article ingest, and a run of them through the real command.

:func:`build_inputs` writes the inputs a careless or hostile source can hand over into a
folder: NUL bytes, C0 control characters, UTF-16-LE without a byte-order mark, a FIFO, a
symlink to ``/dev/zero``, a file over ``MAX_ARTICLE_BYTES``, an empty file, PNG bytes, HTML
whose entities spell control characters. :func:`run_hostile` ingests each of them, followed
by a good article, with ``substantiate ingest articles --keep-going`` in a subprocess (the
real command, on a real database) and checks that each was *refused cleanly*: a one-line
error naming the file, no traceback, nothing stored for it, the good article stored, and a
non-zero exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
#: The limit the run sets (``MAX_ARTICLE_BYTES``), so the oversized file stays small.
LIMIT = 100_000
GOOD = ("Ketamine relieves depression within hours for most patients. "
        "Studies show esketamine reduces symptoms by 70% in adults.\n")


@dataclass(frozen=True)
class Hostile:
    """One hostile input: its path, what it is, and whether it must be refused.

    ``refuse=False`` marks an input that is a readable article under its hostile parts
    (HTML with scripts and references to control characters): it must be stored with
    none of them in its text.
    """

    path: Path
    what: str
    refuse: bool = True


def build_inputs(folder: Path) -> list[Hostile]:
    """Write the hostile inputs into ``folder`` (created if needed); return them.

    Parameters
    ----------
    folder : Path
        Where to write them (a FIFO and a symlink are among them: a local file system).

    Returns
    -------
    list of Hostile
    """
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Hostile] = []

    def write(name: str, data: bytes, what: str, refuse: bool = True) -> None:
        path = folder / name
        path.write_bytes(data)
        out.append(Hostile(path, what, refuse))

    write("nul.txt", b"\x00" * 1000, "1,000 NUL bytes")
    write("nul-inside.txt", GOOD.encode() + b"\x00 and more text\n", "text with one NUL")
    write("c0.txt", GOOD.encode() + b"\x01\x02\x1b[31m red \x07\n", "C0 control characters")
    write("utf16le.txt", GOOD.encode("utf-16-le"), "UTF-16-LE without byte-order mark")
    write("empty.txt", b"", "empty file")
    write("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "PNG bytes")
    write("entities.html",
          b"<html><head><title>Offer</title><script>alert(1)</script></head><body><article>"
          b"<p>Ketamine cures depression&#1; in one session&#27;[2J.</p>"
          b"<p><a href='javascript:alert(1)'>click</a></p></article></body></html>",
          "HTML with a script and character references to control characters",
          refuse=False)
    write("nul.html", b"<html><body><p>Ketamine works\x00fast.</p></body></html>",
          "HTML with a NUL byte")
    big = folder / "oversized.txt"
    with big.open("wb") as f:
        f.write(b"Ketamine relieves depression. " * (LIMIT // 30 + 10))
    out.append(Hostile(big, f"file larger than MAX_ARTICLE_BYTES ({LIMIT:,})"))
    fifo = folder / "fifo.txt"
    os.mkfifo(fifo)
    out.append(Hostile(fifo, "FIFO named .txt"))
    zero = folder / "zero.txt"
    zero.symlink_to("/dev/zero")
    out.append(Hostile(zero, "symlink to /dev/zero"))
    return out


def _stored(db_url: str, source: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [str(t) for t in conn.execute(
                text("SELECT text FROM article WHERE source = :s"), {"s": source}).scalars()]
    finally:
        engine.dispose()


def run_hostile(folder: Path, db_url: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Ingest every hostile input (each followed by a good article) with the real CLI.

    Parameters
    ----------
    folder : Path
        An empty folder to build the inputs in.
    db_url : str
        The database to ingest into (created or upgraded by the command).
    timeout : float
        Seconds each command may take (a hang counts as not refused cleanly).

    Returns
    -------
    dict
        ``tried`` and ``refused_cleanly`` (inputs that must be refused), ``stored_safely``
        (readable HTML stored with no control character or script in its text) and
        ``details``: per input, what it is, whether it was handled cleanly, the exit code
        and the error line (or why not clean).
    """
    inputs = build_inputs(folder / "hostile")
    good = folder / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": db_url, "MAX_ARTICLE_BYTES": str(LIMIT),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    details: list[dict[str, Any]] = []
    for item in inputs:
        cmd = [sys.executable, "-c", "from substantiate.cli import main; main()",
               "ingest", "articles", "--keep-going", str(item.path), str(good)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=timeout, cwd=folder, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            details.append({"input": item.path.name, "what": item.what, "clean": False,
                            "why": f"hung for more than {timeout} s"})
            continue
        lines = [line for line in proc.stderr.splitlines() if str(item.path) in line]
        problems = []
        stored = _stored(db_url, str(item.path))
        if "Traceback" in proc.stderr:
            problems.append("traceback")
        if not item.refuse:
            if proc.returncode != 0 or len(stored) != 1:
                problems.append("a readable article was not stored")
            elif any(ord(c) < 32 and c not in "\t\n\r\x0b\x0c" for c in stored[0]) \
                    or "alert(" in stored[0]:
                problems.append("control characters or script stored")
        else:
            if len(lines) != 1:
                problems.append(f"{len(lines)} error lines name the file")
            if proc.returncode == 0:
                problems.append("exit code 0")
            if stored:
                problems.append("stored")
        if not _stored(db_url, str(good)):
            problems.append("the good article was not stored")
        details.append({"input": item.path.name, "what": item.what, "refuse": item.refuse,
                        "clean": not problems,
                        "exit_code": proc.returncode, "error": lines[0] if lines else None,
                        "why": ", ".join(problems) or None})
    refused = [d for d in details if d.get("refuse", True)]
    return {"tried": len(refused), "refused_cleanly": sum(d["clean"] for d in refused),
            "stored_safely": sum(d["clean"] for d in details if not d.get("refuse", True)),
            "details": details}


def main() -> None:
    """Run on a temporary SQLite database (or ``DATABASE_URL``) and print JSON."""
    import json

    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{Path(tmp) / 'hostile.db'}"
        print(json.dumps(run_hostile(Path(tmp), url)))


if __name__ == "__main__":
    main()
