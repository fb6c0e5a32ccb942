"""README documents every setting, every CLI command, and the test command CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from evidence.config import Settings
from substantiate.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_in_readme() -> None:
    for name, field in Settings.model_fields.items():
        env = field.validation_alias
        assert isinstance(env, str), name
        assert f"`{env}`" in README, f"README does not document {env}"
        assert field.description, f"setting {name} has no description"


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    click_group = typer.main.get_command(group)
    names: list[str] = []

    def walk(cmd: object, path: str) -> None:
        sub = getattr(cmd, "commands", None)
        if sub:
            for n, c in sub.items():
                walk(c, f"{path} {n}".strip())
        else:
            names.append(path)

    walk(click_group, prefix)
    return names


def test_every_cli_command_is_in_readme_with_an_example() -> None:
    click_group = typer.main.get_command(app)
    for path in _commands(app):
        assert f"`substantiate {path}" in README, f"README lacks `substantiate {path}`"
        cmd = click_group
        for part in path.split():
            cmd = cmd.commands[part]  # type: ignore[attr-defined]
        assert "Example: substantiate" in (cmd.help or ""), f"{path} help has no example"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in README
    assert re.search(r"^make test$", ci, re.M)
