"""Every third-party module the code imports is a declared dependency in pyproject.toml.

A plain ``pip install`` installs only what is declared: a module imported but not
declared (directly, or as a requirement of a declared distribution) makes every command
die on import on a fresh machine.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"evidence", "ingest", "substantiate", "app_pages", "app", "tests", "benchmarks",
        "_distutils_hack"}  # setuptools' own start-up hook, not an import of ours


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        names.extend(extra)
    return {_norm(re.split(r"[\s<>=!~;\[]", n, maxsplit=1)[0]) for n in names}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extras() -> set[tuple[str, str]]:
    """(distribution, extra) pairs the declared requirements ask for: psycopg[binary]."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = set()
    for spec in project["dependencies"]:
        m = re.match(r"([\w.-]+)\[([\w,\s-]+)\]", spec)
        if m:
            out.update((_norm(m.group(1)), e.strip()) for e in m.group(2).split(","))
    return out


def _closure(roots: set[str]) -> set[str]:
    """The declared distributions and everything they require (installed ones only)."""
    extras = _extras()
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            m = re.search(r"extra\s*==\s*[\"']([\w-]+)", req)
            if m and (name, m.group(1)) not in extras:
                continue
            todo.append(_norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
    return seen


def _imported_modules() -> set[str]:
    files = [ROOT / "app.py", *ROOT.glob("app_pages/*.py")]
    for pkg in ("evidence", "ingest", "substantiate"):
        files.extend((ROOT / pkg).rglob("*.py"))
    found: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in OURS and m not in sys.stdlib_module_names}


def test_every_imported_module_is_declared() -> None:
    declared = _declared()
    distributions = md.packages_distributions()
    missing = {}
    for module in sorted(_imported_modules()):
        # An optional extra's module may not be installed: its own name must be declared.
        dists = {_norm(d) for d in distributions.get(module, [])} or {_norm(module)}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_modules_loaded_at_import_come_from_declared_requirements() -> None:
    """What importing the code pulls in (lxml_html_clean through trafilatura's
    ``lxml.html.clean``) must be installed by the declared requirements."""
    import app_pages  # noqa: F401
    import substantiate.cli  # noqa: F401
    import substantiate.jobs  # noqa: F401

    closure = _closure(_declared())
    distributions = md.packages_distributions()
    loaded = {name.split(".")[0] for name in sys.modules}
    missing = {}
    for module in sorted(loaded - OURS - set(sys.stdlib_module_names)):
        dists = {_norm(d) for d in distributions.get(module, [])}
        if dists and not dists & closure and not module.startswith(("_pytest", "pytest")):
            missing[module] = sorted(dists)
    assert "lxml_html_clean" in loaded
    assert not missing, f"loaded but required by nothing declared: {missing}"
