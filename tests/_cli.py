"""Running the command line in the test's own process: (exit code, stdout, stderr)."""

from __future__ import annotations

import io
import sys

import pytest

from substantiate import cli


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
            stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``substantiate ARGS`` through ``cli.main`` (``stdin``: text fed to it)."""
    monkeypatch.setattr(sys, "argv", ["substantiate", *args])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
