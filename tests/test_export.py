"""Exports: the manifest, filters, the formula guard, and ``export verify`` (library and CLI).

Every test runs on SQLite and PostgreSQL, on a database made by the migrations (as
``substantiate init`` makes it), so the manifest's schema version is the real revision.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, db, export
from evidence.errors import InputError, PermissionDenied
from evidence.models import AppUser, AuditEvent, Citation
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

OLD = datetime(2020, 1, 1, tzinfo=UTC)
NASTY = ["=HYPERLINK(\"http://evil.example\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
         "\tindented", "\rreturn"]



@pytest.fixture
def seeded(migrated: Engine) -> dict[str, Any]:
    """Two articles, each with a reviewed claim, a citation and audited rows; one article's
    rows (and one study) last changed in 2020."""
    with Session(migrated, expire_on_commit=False) as s:
        reviewer = make_user(s, username="rita")
        a1 = make_article(s, title=NASTY[0])
        c1 = make_claim(s, article=a1)
        shared = make_study(s, pmid="90000001", pmid_version=2,
                            record_sha256="ab" * 32, publication_types=["Journal Article"],
                            mesh=[{"descriptor": "Depression", "major": True}])
        l1 = make_link(s, claim=c1, study=shared)
        make_assessment(s, link=l1, reviewer=reviewer, note=NASTY[3])
        v1 = make_verdict(s, claim=c1, reviewer=reviewer, rationale=NASTY[1])
        s.add(Citation(article_id=a1.id or 0, raw="PMID: 90000003", kind="pmid",
                       identifier="90000003", status="resolved", pmid="90000003"))
        only_cited = make_study(s, pmid="90000003")
        a2 = make_article(s, title="Another clinic", updated_at=OLD)
        c2 = make_claim(s, article=a2, updated_at=OLD, category=NASTY[2])
        l2 = make_link(s, claim=c2, study=make_study(s, pmid="90000002"), updated_at=OLD)
        v2 = make_verdict(s, claim=c2, reviewer=reviewer, updated_at=OLD, rationale=NASTY[4])
        s.add(Citation(article_id=a2.id or 0, raw="missing", kind="pmid",
                       identifier="90000009", status="not_in_pubmed", pmid=None,
                       status_reason=NASTY[5], updated_at=OLD))
        for entity, row in [("article", a1), ("claim", c1), ("evidence_link", l1),
                            ("verdict", v1), ("article", a2), ("claim", c2),
                            ("evidence_link", l2), ("verdict", v2), ("app_user", reviewer)]:
            audit.record(s, actor="system", action=f"{entity}.create", entity=entity,
                         entity_id=row.id)
        s.commit()
        return {"a1": a1.id, "a2": a2.id, "c1": c1.id, "c2": c2.id, "v1": v1.id,
                "v2": v2.id, "shared": shared.id, "only_cited": only_cited.id}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def _manifest(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "manifest.json").read_text()))


def _rewrite_sha(out: Path, name: str) -> None:
    manifest = _manifest(out)
    for f in manifest["files"]:
        if f["file"] == name:
            f["sha256"] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))


# --------------------------------------------------------------------------- library


def test_manifest_says_who_what_which_schema_and_which_records(
    migrated: Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "x"
    manifest = export.create(migrated, out_dir=out, exported_by="cli:tester")
    assert manifest == _manifest(out)
    assert manifest["exported_by"] == "cli:tester"
    assert manifest["tool_version"] == metadata.version("substantiate")
    assert manifest["schema_version"] == db.upgrade(migrated)
    assert manifest["filters"] == {"article_id": None, "since": None}
    assert datetime.fromisoformat(manifest["exported_at"]).tzinfo is not None
    assert manifest["formula_guard"]["prefix"] == "'"
    assert set(manifest["formula_guard"]["leading_characters"]) == {"=", "+", "-", "@", "\t",
                                                                   "\r"}
    records = {r["pmid"]: r for r in manifest["evidence_records"]}
    assert set(records) == {"90000001", "90000002"}  # linked to claims with verdicts
    assert records["90000001"]["pmid_version"] == 2
    assert records["90000001"]["record_sha256"] == "ab" * 32
    assert manifest["audit"]["verified"] and manifest["audit"]["events"] == 9
    # The export is an audit event naming the manifest it wrote, after the head it covers.
    with Session(migrated) as s:
        last = s.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert last is not None and last.action == "export.create" and last.actor == "cli:tester"
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert last.entity_id == digest[:32]
    assert last.after is not None and last.after["audit_head"] == manifest["audit"]["head_hash"]
    # Lists stay lists in the frame; the file keeps its "; "-joined text.
    studies = _read(out / "studies.csv").set_index("pmid")
    assert studies.loc["90000001", "mesh"] == "Depression*"
    assert studies.loc["90000001", "year"] == "2020"
    # Formula-leading text is guarded in every CSV file.
    cells: list[str] = []
    for path in out.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as f:
            cells += [c for row in csv.reader(f) for c in row]
    for value in NASTY:
        assert "'" + value in cells, value
        assert value not in cells, value
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    # Numbers are not text: a negative score stays a number.
    assert export.guard_cell(-2.5) == -2.5 and export.guard_cell("plain") == "plain"




def test_verify_passes_then_names_the_first_mismatch(
    migrated: Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "x"
    export.create(migrated, out_dir=out, exported_by="t")
    with db.read_session(migrated) as s:
        assert export.verify(s, out) == []
        assert export.events_since(s, out) == 1  # the export's own event
    claims = out / "claims.csv"
    original = claims.read_bytes()
    claims.write_bytes(original.replace(b"Many patients", b"Most patients", 1))
    with db.read_session(migrated) as s:
        problems = export.verify(s, out)
    assert problems[0].startswith("claims.csv: sha256 ") and "differs" in problems[0]
    # A row removed and the checksum forged: the row count gives it away.
    lines = original.decode().splitlines(keepends=True)
    claims.write_text(lines[0] + "".join(lines[2:]))
    _rewrite_sha(out, "claims.csv")
    with db.read_session(migrated) as s:
        assert export.verify(s, out) == ["claims.csv: claims has 1 rows, the manifest says 2"]
    claims.write_bytes(original)
    _rewrite_sha(out, "claims.csv")
    (out / "links.csv").unlink()
    (out / "extra.csv").write_text("a\n1\n")
    with db.read_session(migrated) as s:
        assert export.verify(s, out) == ["links.csv: listed in the manifest but missing",
                                         "extra.csv: not listed in the manifest"]
    # The head must be in the database's chain (another database's, or a forged one, is not).
    manifest = _manifest(out)
    manifest["audit"]["head_hash"] = "f" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    with db.read_session(migrated) as s:
        assert export.verify(s, out)[-1] == (f"audit head {'f' * 64} is not in the "
                                             "database's audit chain")
    (out / "manifest.json").write_text("{not json")
    with db.read_session(migrated) as s:
        assert "not a valid export manifest" in export.verify(s, out)[0]
        assert export.verify(s, tmp_path / "nowhere")[0].endswith("no manifest")


def test_other_formats_verify_and_detect_changes(
    migrated: Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    for fmt in ("xlsx", "parquet"):
        _check_format(migrated, tmp_path / fmt, fmt)


def _check_format(migrated: Engine, out: Path, fmt: str) -> None:
    manifest = export.create(migrated, out_dir=out, fmt=fmt, exported_by="t")
    with db.read_session(migrated) as s:
        assert export.verify(s, out) == []
    if fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(out / "substantiate.xlsx")["claims"]
        cells = [c.value for row in sheet.iter_rows() for c in row]
        assert "'" + NASTY[2] in cells  # "-2+3" as text, not a formula
    target = out / manifest["files"][0]["file"]
    target.write_bytes(target.read_bytes() + b"\0")
    with db.read_session(migrated) as s:
        assert export.verify(s, out)[0].startswith(f"{target.name}: sha256")


def test_filters_keep_one_article_and_what_refers_to_it(
    migrated: Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "a1"
    manifest = export.create(migrated, out_dir=out, article_id=seeded["a1"], exported_by="t")
    assert manifest["filters"]["article_id"] == seeded["a1"]
    assert _read(out / "articles.csv")["article_id"].tolist() == [str(seeded["a1"])]
    assert _read(out / "claims.csv")["claim_id"].tolist() == [str(seeded["c1"])]
    assert _read(out / "verdicts.csv")["verdict_id"].tolist() == [str(seeded["v1"])]
    assert len(_read(out / "assessments.csv")) == 1
    assert _read(out / "citations.csv")["pmid"].tolist() == ["90000003"]
    # Studies: the linked one and the cited one, not the other article's.
    assert sorted(_read(out / "studies.csv")["pmid"]) == ["90000001", "90000003"]
    assert [r["pmid"] for r in manifest["evidence_records"]] == ["90000001"]
    log = _read(out / "audit_log.csv")
    assert set(zip(log["entity"], log["entity_id"], strict=True)) == {
        ("article", str(seeded["a1"])), ("claim", str(seeded["c1"])),
        ("evidence_link", str(min(_read(out / "links.csv")["link_id"].astype(int)))),
        ("verdict", str(seeded["v1"]))}
    assert _read(out / "article_scorecard.csv")["article_id"].tolist() == [str(seeded["a1"])]
    assert _read(out / "claims_register.csv")["claim_id"].tolist() == [str(seeded["c1"])]
    with db.read_session(migrated) as s:
        assert export.verify(s, out) == []
        with pytest.raises(InputError, match="article 999999 does not exist"):
            export.export(s, out_dir=tmp_path / "none", article_id=999999)


def test_since_keeps_rows_changed_after_it(
    migrated: Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "since"
    since = export.parse_since("2024-06-01")
    assert since == datetime(2024, 6, 1, tzinfo=UTC)
    export.create(migrated, out_dir=out, since=since, exported_by="t")
    assert _read(out / "articles.csv")["article_id"].tolist() == [str(seeded["a1"])]
    assert _read(out / "claims.csv")["claim_id"].tolist() == [str(seeded["c1"])]
    assert _read(out / "verdicts.csv")["verdict_id"].tolist() == [str(seeded["v1"])]
    assert _read(out / "claims_register.csv")["claim_id"].tolist() == [str(seeded["c1"])]
    assert _read(out / "citations.csv")["pmid"].tolist() == ["90000003"]
    assert "90000002" not in _read(out / "studies.csv")["pmid"].tolist()
    assert len(_read(out / "audit_log.csv")) == 9  # every event was made after 2024-06-01
    # Both filters: the old article has nothing changed since.
    both = tmp_path / "both"
    export.create(migrated, out_dir=both, since=since, article_id=seeded["a2"],
                  exported_by="t")
    assert _read(both / "claims.csv").empty and _read(both / "verdicts.csv").empty
    assert len(_read(both / "audit_log.csv")) == 4  # the a2 rows' events (all recent)
    with pytest.raises(InputError, match="not a date"):
        export.parse_since("last tuesday")


# --------------------------------------------------------------------------- CLI



def test_cli_export_filters_and_verify(
    migrated: Engine, seeded: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USER", "tester")
    out = tmp_path / "cli"
    code, stdout, err = _run(monkeypatch, capsys, "export", "--out", str(out), "--article",
                             str(seeded["a1"]), "--since", "2024-06-01", "--json")
    assert code == 0, err
    manifest = json.loads(stdout)
    assert manifest["exported_by"] == cli.ACTOR
    assert manifest["filters"] == {"article_id": seeded["a1"],
                                   "since": "2024-06-01T00:00:00+00:00"}
    with Session(migrated) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "export.create")).one()
    code, stdout, err = _run(monkeypatch, capsys, "export", "verify", str(out))
    assert code == 0, err
    assert "export verified" in stdout and "1 audit event more than at export time" in stdout
    (out / "verdicts.csv").write_text("tampered\n")
    code, stdout, err = _run(monkeypatch, capsys, "export", "verify", str(out))
    assert code == 1 and stdout == ""
    assert err.startswith("export does not verify: verdicts.csv: sha256 ")
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(monkeypatch, capsys, "export", "--since", "yesterday-ish",
                        "--out", str(out))
    assert code == 1 and err.startswith("error: --since 'yesterday-ish' is not a date")
    code, _, err = _run(monkeypatch, capsys, "export")
    assert code == 1 and "give --out DIR" in err
    # Named with --as, the exporter is that (existing) user, not the OS account.
    code, stdout, err = _run(monkeypatch, capsys, "--as", "rita", "export", "--out",
                             str(tmp_path / "as"), "--json")
    assert code == 0, err
    assert json.loads(stdout)["exported_by"] == "rita"
    code, stdout, err = _run(monkeypatch, capsys, "--as", "ghost", "export", "--out",
                             str(tmp_path / "ghost"))
    assert code == 1 and "no user named 'ghost'" in err and not (tmp_path / "ghost").exists()


def test_app_exports_read_the_exporters_role_from_the_database(
    migrated: Engine, tmp_path: Path
) -> None:
    """An export made for a signed-in user is recorded only if the stored row may export:
    a forged role, a viewer or a deactivated adjudicator is refused and nothing is audited."""
    with Session(migrated, expire_on_commit=False) as s:
        viewer = make_user(s, username="vera", role="viewer")
        judge = make_user(s, username="jude", role="adjudicator")
        s.commit()
    forged = viewer.model_copy(update={"role": "admin"})

    def exports_recorded() -> int:
        with db.read_session(migrated) as s:
            return len(s.exec(select(AuditEvent).where(
                col(AuditEvent.action) == "export.create")).all())

    for who in (viewer, forged, viewer.id):
        with pytest.raises(PermissionDenied):
            export.create(migrated, out_dir=tmp_path / "x", exported_by="vera", user=who)
    assert exports_recorded() == 0
    export.create(migrated, out_dir=tmp_path / "ok", exported_by="jude", user=judge)
    assert exports_recorded() == 1
    with db.session_scope(migrated) as s:
        row = s.get(AppUser, judge.id)
        assert row is not None
        row.active = False
        s.add(row)
    with pytest.raises(PermissionDenied, match="deactivated"):
        export.create(migrated, out_dir=tmp_path / "late", exported_by="jude", user=judge)
    assert exports_recorded() == 1
