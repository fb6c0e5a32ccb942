"""Layers point one way: the import contracts `make lint` checks hold, and catch a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evidence", "ingest", "substantiate", "app_pages")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` (the venv's, as `make lint` does) on the project at ``cwd``."""
    script = Path(sys.executable).with_name("lint-imports")
    assert script.is_file(), f"import-linter is not installed next to {sys.executable}"
    # Only the tree at cwd: no PYTHONPATH pointing at another checkout.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(script), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "statement", "chain"), [
    ("evidence/models.py", "import ingest.claims", "evidence.models -> ingest.claims"),
    ("evidence/queries.py", "from substantiate import jobs", "evidence.queries -> substantiate"),
    ("ingest/claims.py", "import substantiate.jobs", "ingest.claims -> substantiate.jobs"),
])
def test_import_contracts_catch_an_import_against_the_layers(
    tmp_path: Path, module: str, statement: str, chain: str
) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{statement}  # noqa: E402, F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and chain in result.stdout, result.stdout
