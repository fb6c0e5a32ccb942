"""Every ``--json`` output is strict JSON; ``ingest pubmed`` takes PMID lists and files.

A strict parser refuses ``NaN`` and ``Infinity`` (RFC 8259 has neither). The database holds
rows with missing values (a citation without a PMID, a study without a year or journal, a
claim without a canonical group), the cases that used to print ``NaN``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from sqlalchemy import Engine
from sqlmodel import Session, select

from evidence import export
from evidence.models import Citation, Study
from substantiate import cli
from tests._cli import run_cli as _run
from tests._shared import shared_path
from tests.factories import make_claim, make_study
from tests.fake_eutils import FakeEutils


def strict_loads(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)




def _json_commands() -> set[tuple[str, ...]]:
    """Every command path of the CLI that has a ``--json`` option."""
    found: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if any("--json" in getattr(p, "opts", []) for p in command.params):
            found.add(path)
        for name, sub in getattr(command, "commands", {}).items():  # a group
            walk(sub, (*path, name))

    walk(typer.main.get_command(cli.app), ())
    return found


def test_every_json_output_is_strict_json(
    migrated_eutils: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    with Session(migrated_eutils, expire_on_commit=False) as s:
        claim = make_claim(s)  # no canonical group, no suggested certainty
        s.add(Citation(article_id=claim.article_id, raw="see our clinic", kind="web",
                       identifier="https://clinic.example/", status="pending"))
        make_study(s, pmid="90000020", pub_year=None, journal=None, design=None,
                   evidence_level=None, publication_types=["Journal Article", "Review"],
                   mesh=[{"descriptor": "Ketamine", "major": True},
                         {"descriptor": "Humans", "major": False}])
        make_study(s, pmid="90000021")
        s.commit()
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "post.txt").write_text("Ketamine works\n\nKetamine relieves depression "
                                       "within hours in most patients.\n")
    medline = shared_path("fixtures", "medline", "pubmed-29768149.xml")
    out = tmp_path / "export"
    commands = {
        ("ingest", "articles"): [str(articles / "post.txt")],
        ("ingest", "pubmed"): ["--pmid", "90000011,90000012", "--pmid", "90000013"],
        ("ingest", "medline"): [str(medline)],
        ("studies", "list"): [],
        ("claims", "list"): [],
        ("citations", "list"): [],
        ("link",): [],
        ("surveil",): ["--no-discover"],
        ("audit", "verify"): [],
        ("export",): ["--out", str(out)],
        ("export", "verify"): [str(out)],
        ("report",): ["--article", str(claim.article_id), "--out", str(tmp_path / "r.html")],
        ("demo",): ["--articles-dir", str(articles), "--no-app"],
        ("index", "build"): [],
        ("index", "update"): [],
        ("index", "status"): [],
    }
    assert set(commands) == _json_commands()  # a new --json command must be added here
    outputs: dict[tuple[str, ...], Any] = {}
    for path, args in commands.items():
        code, stdout, err = _run(monkeypatch, capsys, *path, *args, "--json")
        assert code == 0, (path, err)
        outputs[path] = strict_loads(stdout)
    citations = outputs[("citations", "list")]
    web = next(c for c in citations if c["kind"] == "web")
    assert web["pmid"] is None and web["status_reason"] is None and web["start"] is None
    assert isinstance(web["citation_id"], int) and web["flags"] == []
    studies = {s["pmid"]: s for s in outputs[("studies", "list")]}
    bare = studies["90000020"]
    assert bare["publication_types"] == ["Journal Article", "Review"]
    assert bare["mesh"] == ["Ketamine*", "Humans"]
    assert bare["year"] is None and bare["journal"] is None and bare["design"] is None
    assert studies["90000021"]["year"] == 2020  # an integer, not 2020.0
    assert {"90000011", "90000012", "90000013"} <= set(studies)
    assert all(isinstance(s["mesh"], list) for s in studies.values())
    made = next(c for c in outputs[("claims", "list")] if c["claim_id"] == claim.id)
    assert made["canonical_id"] is None and made["suggested_certainty"] is None
    manifest = outputs[("export",)]
    assert datetime.fromisoformat(manifest["exported_at"]).tzinfo is not None
    assert outputs[("export", "verify")]["ok"] is True
    assert outputs[("report",)]["format"] == "html" and outputs[("report",)]["bytes"] > 0
    assert outputs[("link",)]["studies_embedded"] == 0 and outputs[("link",)]["semantic"] == ""
    assert outputs[("index", "build")]["action"] == "built"
    assert "embeddings" not in outputs[("index", "build")]  # only with --semantic
    assert outputs[("index", "update")]["action"] == "unchanged"
    assert outputs[("index", "status")]["current"] is True


def test_jsonable_makes_missing_values_null_and_times_iso() -> None:
    frame = pd.DataFrame([{"a": 1, "b": None, "when": datetime(2026, 1, 2, 3, 4, 5)},
                          {"a": None, "b": "x", "when": None}])
    assert export.jsonable(frame) == [
        {"a": 1, "b": None, "when": "2026-01-02T03:04:05+00:00"},
        {"a": None, "b": "x", "when": None}]
    assert export.jsonable({"n": np.int64(3), "f": float("nan"), "inf": float("inf"),
                            "t": (1, 2), "ts": pd.Timestamp("2026-01-02", tz=UTC),
                            "na": pd.NA, "score": 0.5}) == {
        "n": 3, "f": None, "inf": None, "t": [1, 2], "ts": "2026-01-02T00:00:00+00:00",
        "na": None, "score": 0.5}
    strict_loads(export.dumps({"x": float("nan")}))


def test_ingest_pubmed_takes_lists_files_and_stdin(
    migrated_eutils: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "pmids.txt"
    listing.write_text("# trial records\n90000031\n90000032, 90000033 90000034  # two more\n"
                       "\n90000031\n")
    code, stdout, err = _run(monkeypatch, capsys, "ingest", "pubmed", "--pmid",
                             "90000035,90000036", "--pmids-from", str(listing), "--json")
    assert code == 0, err
    assert strict_loads(stdout)["requested"] == 6
    code, stdout, err = _run(monkeypatch, capsys, "ingest", "pubmed", "--pmids-from", "-",
                             "--json", stdin="90000037,90000038\n")
    assert code == 0, err
    assert strict_loads(stdout)["requested"] == 2
    with Session(migrated_eutils) as s:
        stored = set(s.exec(select(Study.pmid)).all())
    assert {str(p) for p in range(90000031, 90000039)} <= stored


@pytest.mark.parametrize(("args", "message"), [
    (["--pmid", "90000041,abc"], "error: --pmid '90000041,abc': 'abc' is not a PMID"),
    (["--pmids-from", "LIST"], "error: LIST line 3: 'PMID:90000043' is not a PMID"),
    (["--pmids-from", "missing.txt"], "error: cannot read missing.txt: "),
    (["--pmid", ","], "error: --pmid / --pmids-from gave no PMIDs"),
])
def test_bad_pmid_lists_get_one_line_and_fetch_nothing(
    migrated_eutils: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], fake_eutils: FakeEutils, args: list[str],
    message: str
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("90000041\n# fine\nPMID:90000043\n")
    args = [str(listing) if a == "LIST" else a for a in args]
    message = message.replace("LIST", str(listing))
    code, stdout, err = _run(monkeypatch, capsys, "ingest", "pubmed", *args)
    assert code == 1 and stdout == ""
    assert err.startswith(message) and len(err.strip().splitlines()) == 1
    assert fake_eutils.requests == []
    with Session(migrated_eutils) as s:
        assert s.exec(select(Study)).all() == []
