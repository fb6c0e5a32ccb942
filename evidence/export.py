"""Audit-table exports (CSV, XLSX, Parquet) with a manifest, and their verification.

File names and the leading columns of each table are a contract: later versions only add
tables and append columns. ``export`` writes the files and ``manifest.json``; ``verify``
checks a folder against its manifest and the database; ``create`` does an export and
records it in the audit trail (action ``export.create``). ``jsonable`` turns any value the
queries return into strict JSON (``null`` for missing values, lists as lists, ISO 8601
times): every ``--json`` output goes through it.

Scope of a filtered export (``article_id`` and/or ``since``; both: both apply)
-----------------------------------------------------------------------------
- ``articles``: the article with that id (that revision only); with ``since``, articles
  whose row changed at or after it. ``article_scorecard``: the exported articles.
- ``claims``, ``citations``: those of the article; with ``since``, changed at or after it.
- ``links``, ``assessments``, ``verdicts``, ``claim_sources``: those on the article's
  claims; with ``since``, changed at or after it.
- ``studies``: every study an exported link, assessment or citation refers to.
- ``audit_log``: events about the rows in scope (the article, its claims, their canonical
  claims, citations, links, assessments, verdicts, sources, and the exported studies);
  with ``since``, events at or after it. With ``since`` alone: every event at or after it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, crud, db, queries
from evidence.errors import InputError
from evidence.models import (
    AppUser,
    Article,
    Assessment,
    AuditEvent,
    Citation,
    Claim,
    ClaimSource,
    EvidenceLink,
    RawRecord,
    Study,
    Verdict,
    utcnow,
)

FORMATS = ("csv", "xlsx", "parquet")
MANIFEST = "manifest.json"
XLSX_FILE = "substantiate.xlsx"
#: Who may export from the app (admins always may): the roles that see every review.
EXPORT_ROLES = ("adjudicator", "admin")
#: A text cell starting with one of these is read as a formula by spreadsheet programs
#: (formula injection): CSV and XLSX exports write it with ``FORMULA_GUARD`` in front.
FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = "'"

CLAIMS_EXPORT = ["claim_id", "article_id", "source", "text", "start", "end", "category",
                 "checkworthiness", "canonical_id", "status", "flags", "suggested_certainty",
                 "suggestion_basis"]
CITATIONS_EXPORT = ["article_id", "raw", "kind", "identifier", "status", "pmid",
                    "status_reason", "citation_id", "flags"]
ARTICLES_EXPORT = ["article_id", "source", "title", "sha256", "content_type", "revision",
                   "previous_id", "is_current", "fetched_at", "n_claims", "n_citations"]
#: Each table's row key, used to apply a filter's scope.
_KEYS = {"articles": "article_id", "claims": "claim_id", "citations": "citation_id",
         "studies": "study_id", "links": "link_id", "assessments": "assessment_id",
         "verdicts": "verdict_id", "claim_sources": "source_id",
         "article_scorecard": "article_id", "claims_register": "claim_id",
         "audit_log": "id"}


# ------------------------------------------------------------------------------ JSON


def jsonable(value: Any) -> Any:
    """``value`` made strict-JSON-safe: what every ``--json`` output is built from.

    Missing values (``None``, NaN, ``pd.NA``, ``NaT``) become ``None``; infinities too;
    DataFrames become lists of row dicts (integral float columns, which pandas makes of
    integer columns with gaps, back to integers); tuples, sets and arrays become lists;
    dates and times ISO 8601 strings (naive times are UTC); numpy scalars Python ones.
    """
    if isinstance(value, pd.DataFrame):
        return [jsonable(row) for row in _records(value)]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | pd.Series):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy
        return jsonable(value.tolist())
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):  # pd.Timestamp included
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return jsonable(vars(value))
    return str(value)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = df.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_float_dtype(series):
            known = series.dropna()
            if len(known) and bool((known == known.round()).all()) and known.abs().max() < 2**53:
                out[column] = series.astype("Int64")
    return [{str(k): v for k, v in row.items()} for row in out.to_dict(orient="records")]


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """``jsonable(value)`` as strict JSON text (never ``NaN`` or ``Infinity``)."""
    return json.dumps(jsonable(value), indent=indent, ensure_ascii=False, allow_nan=False)


# ------------------------------------------------------------------------------ scope


def parse_since(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (naive: UTC) as an aware datetime.

    Raises
    ------
    InputError
        Not a date or time.
    """
    try:
        if len(text.strip()) == 10:
            return datetime.combine(date.fromisoformat(text.strip()), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
                         ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Scope:
    """Row keys per table in a filtered export; ``None``: every row."""

    keys: dict[str, set[Any]] | None


def _ids(session: Session, stmt: Any) -> set[Any]:
    return {row for row in session.exec(stmt).all()}


def _scope(session: Session, *, article_id: int | None, since: datetime | None) -> _Scope:
    if article_id is None and since is None:
        return _Scope(None)
    if article_id is not None and session.get(Article, article_id) is None:
        raise InputError(f"article {article_id} does not exist")

    def on_article(stmt: Any, model: Any, *, join_claim: bool = False) -> Any:
        if article_id is not None:
            stmt = stmt.where(col(Claim.article_id) == article_id) if join_claim else \
                stmt.where(model.article_id == article_id)
        if since is not None:
            stmt = stmt.where(col(model.updated_at) >= since)
        return stmt

    keys: dict[str, set[Any]] = {}
    art = select(Article.id)
    if article_id is not None:
        art = art.where(Article.id == article_id)
    if since is not None:
        art = art.where(col(Article.updated_at) >= since)
    keys["articles"] = _ids(session, art)
    keys["article_scorecard"] = keys["articles"]
    keys["claims"] = _ids(session, on_article(select(Claim.id), Claim))
    keys["citations"] = _ids(session, on_article(select(Citation.id), Citation))
    link_stmt = select(EvidenceLink.id).join(Claim, col(EvidenceLink.claim_id) == col(Claim.id))
    keys["links"] = _ids(session, on_article(link_stmt, EvidenceLink, join_claim=True))
    ass_stmt = (select(Assessment.id)
                .join(EvidenceLink, col(Assessment.link_id) == col(EvidenceLink.id))
                .join(Claim, col(EvidenceLink.claim_id) == col(Claim.id)))
    keys["assessments"] = _ids(session, on_article(ass_stmt, Assessment, join_claim=True))
    ver_stmt = select(Verdict.id).join(Claim, col(Verdict.claim_id) == col(Claim.id))
    keys["verdicts"] = _ids(session, on_article(ver_stmt, Verdict, join_claim=True))
    src_stmt = select(ClaimSource.id).join(Claim, col(ClaimSource.claim_id) == col(Claim.id))
    keys["claim_sources"] = _ids(session, on_article(src_stmt, ClaimSource, join_claim=True))
    # A register row is in scope when its claim is, or when one of its verdicts is (the
    # register's ``updated_at`` is the later of the two).
    register = set(keys["claims"])
    for chunk in _chunks(keys["verdicts"]):
        register |= _ids(session, select(Verdict.claim_id).where(col(Verdict.id).in_(chunk)))
    keys["claims_register"] = register

    studies: set[Any] = set()
    for chunk in _chunks(keys["links"]):
        studies |= _ids(session, select(EvidenceLink.study_id)
                        .where(col(EvidenceLink.id).in_(chunk)))
    for chunk in _chunks(keys["assessments"]):
        studies |= _ids(session, select(EvidenceLink.study_id)
                        .join(Assessment, col(Assessment.link_id) == col(EvidenceLink.id))
                        .where(col(Assessment.id).in_(chunk)))
    for chunk in _chunks(keys["citations"]):
        studies |= _ids(session, select(Study.id)
                        .join(Citation, col(Citation.pmid) == col(Study.pmid))
                        .where(col(Citation.id).in_(chunk)))
    keys["studies"] = studies

    events = select(AuditEvent.id)
    if since is not None:
        events = events.where(col(AuditEvent.occurred_at) >= since)
    found = _ids(session, events)
    if article_id is not None:
        entities = _article_entities(session, article_id, studies)
        found = {i for i, entity, entity_id in session.exec(
            select(AuditEvent.id, AuditEvent.entity, AuditEvent.entity_id)).all()
            if i in found and (entity, entity_id) in entities}
    keys["audit_log"] = found
    return _Scope(keys)


def _article_entities(session: Session, article_id: int, studies: set[Any]
                      ) -> set[tuple[str, str]]:
    """(audit entity, entity id) of every row of one article, whatever its change time."""
    claims = session.exec(select(Claim.id, Claim.canonical_id)
                          .where(Claim.article_id == article_id)).all()
    claim_ids = [c for c, _ in claims]
    out = {("article", str(article_id))}
    out |= {("claim", str(c)) for c in claim_ids}
    out |= {("canonical_claim", str(k)) for _, k in claims if k is not None}
    out |= {("citation", str(c)) for c in session.exec(
        select(Citation.id).where(Citation.article_id == article_id)).all()}
    out |= {("study", str(s)) for s in studies}
    for chunk in _chunks(set(claim_ids)):
        links = session.exec(select(EvidenceLink.id)
                             .where(col(EvidenceLink.claim_id).in_(chunk))).all()
        out |= {("evidence_link", str(i)) for i in links}
        for sub in _chunks(set(links)):
            out |= {("assessment", str(i)) for i in session.exec(
                select(Assessment.id).where(col(Assessment.link_id).in_(sub))).all()}
        out |= {("verdict", str(i)) for i in session.exec(
            select(Verdict.id).where(col(Verdict.claim_id).in_(chunk))).all()}
        out |= {("claim_source", str(i)) for i in session.exec(
            select(ClaimSource.id).where(col(ClaimSource.claim_id).in_(chunk))).all()}
    # A study's audit events name it by PMID or by row id depending on the writer.
    for chunk in _chunks(studies):
        out |= {("study", str(p)) for p in session.exec(
            select(Study.pmid).where(col(Study.id).in_(chunk))).all()}
    return out


def _chunks(ids: set[Any], size: int = 500) -> list[list[Any]]:
    items = sorted(ids)
    return [items[i:i + size] for i in range(0, len(items), size)]


# ------------------------------------------------------------------------------ tables


def _jsonify(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def _tables(session: Session) -> dict[str, pd.DataFrame]:
    claims = queries.claims(session, current_only=False)[CLAIMS_EXPORT]
    citations = queries.citations(session)[CITATIONS_EXPORT]
    articles = queries.articles(session)[ARTICLES_EXPORT]
    audit_log = queries.audit_log(session)
    studies = queries.studies(session, include_deleted=True)
    # The file keeps its text form: "; "-joined, MeSH major topics marked with "*".
    for column in ("publication_types", "mesh"):
        studies[column] = studies[column].map(lambda v: "; ".join(v or []))
    studies["year"] = studies["year"].astype(object).where(studies["year"].notna(), None)
    tables = {"articles": articles, "claims": claims, "citations": citations,
              "studies": studies, "links": queries.links(session),
              "assessments": queries.assessments(session),
              "verdicts": queries.verdicts(session),
              "claim_sources": queries.claim_sources(session),
              "article_scorecard": queries.article_scorecard(session),
              "claims_register": queries.claims_register(session),
              "audit_log": audit_log}
    return {name: df.map(_jsonify) if len(df) else df for name, df in tables.items()}


def _apply(scope: _Scope, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if scope.keys is None:
        return tables
    out = {}
    for name, df in tables.items():
        keep = scope.keys[name]
        out[name] = df[df[_KEYS[name]].isin(keep)].reset_index(drop=True)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tool_version() -> str:
    """The installed version of the ``substantiate`` package (``unknown`` if not installed)."""
    try:
        return metadata.version("substantiate")
    except metadata.PackageNotFoundError:
        return "unknown"


def schema_version(session: Session) -> str | None:
    """The database's Alembic revision (``None`` for a schema not made by migrations)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(session.connection()).get_current_revision()


def _evidence_records(session: Session, verdict_ids: set[Any] | None) -> list[dict[str, Any]]:
    """The PubMed record versions the exported verdicts rest on (their claims' links)."""
    stmt = (
        select(Study, RawRecord.sha256, RawRecord.retrieved_at)
        .join(EvidenceLink, col(EvidenceLink.study_id) == col(Study.id))
        .join(Verdict, col(Verdict.claim_id) == col(EvidenceLink.claim_id))
        .join(RawRecord, col(Study.raw_record_id) == col(RawRecord.id), isouter=True)
    )
    rows: dict[str, dict[str, Any]] = {}
    ids = None if verdict_ids is None else sorted(verdict_ids)
    chunks = [None] if ids is None else [ids[i:i + 500] for i in range(0, len(ids), 500)]
    for chunk in chunks:
        part = stmt if chunk is None else stmt.where(col(Verdict.id).in_(chunk))
        for study, raw_sha, retrieved in session.exec(part).all():
            rows[study.pmid] = {
                "pmid": study.pmid, "pmid_version": study.pmid_version,
                "record_sha256": study.record_sha256, "raw_sha256": raw_sha,
                "retrieved_at": jsonable(retrieved), "retracted": bool(study.is_retracted),
                "study_updated_at": jsonable(study.updated_at)}
    return [rows[p] for p in sorted(rows, key=lambda p: (len(p), p))]


def guard_cell(value: Any) -> Any:
    """A text value that a spreadsheet would read as a formula, with ``FORMULA_GUARD`` first."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADERS):
        return FORMULA_GUARD + value
    return value


def _is_text(series: pd.Series) -> bool:
    """Whether a column can hold text (object, or pandas' string dtype)."""
    return bool(pd.api.types.is_object_dtype(series.dtype)
                or pd.api.types.is_string_dtype(series.dtype))


def _guarded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for column in out.columns:
        if _is_text(out[column]):
            out[column] = out[column].map(guard_cell)
    return out


# ------------------------------------------------------------------------------ export


def export(
    session: Session,
    *,
    out_dir: Path,
    fmt: str = "csv",
    article_id: int | None = None,
    since: datetime | None = None,
    exported_by: str = "system",
) -> dict[str, Any]:
    """Write the audit tables to ``out_dir`` in ``fmt`` plus ``manifest.json``.

    Writes nothing to the database; ``create`` also records the export in the audit trail.

    Parameters
    ----------
    session
        Read session.
    out_dir
        Created if missing; files of the same names are replaced.
    fmt
        ``csv`` (one file per table), ``xlsx`` (one workbook, a sheet per table) or
        ``parquet`` (one file per table).
    article_id, since
        Only this article's rows / rows changed at or after this time (the module
        docstring says exactly what each table keeps).
    exported_by
        Who exports (``cli:<OS user>`` from the command line, the username in the app).

    Returns
    -------
    dict
        The manifest: ``exported_at`` (and ``generated_at``, the same), ``exported_by``,
        ``tool_version``, ``schema_version``, ``format``, ``filters``, ``formula_guard``,
        ``files`` (each file's name, table, rows, columns and sha256), ``audit`` (whether
        the chain verifies, its event count and head hash) and ``evidence_records`` (the
        PubMed record versions the exported verdicts rest on).

    Raises
    ------
    InputError
        Unknown format, or an article that does not exist.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    scope = _scope(session, article_id=article_id, since=since)
    check = audit.verify(session)
    tables = _apply(scope, _tables(session))
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    if fmt == "xlsx":
        path = out_dir / XLSX_FILE
        with pd.ExcelWriter(path, engine="openpyxl") as xl:
            for name, df in tables.items():
                _excel_safe(df).to_excel(xl, sheet_name=name[:31], index=False)
        files.append({"file": path.name, "tables": {n: len(d) for n, d in tables.items()},
                      "columns": {n: list(d.columns) for n, d in tables.items()},
                      "sha256": _sha256(path)})
    else:
        for name, df in tables.items():
            path = out_dir / f"{name}.{fmt}"
            if fmt == "csv":
                # CRLF line ends (RFC 4180): a field holding a CR or LF is then quoted.
                _guarded(df).to_csv(path, index=False, lineterminator="\r\n")
            else:
                _parquet_safe(df).to_parquet(path, index=False)
            files.append({"file": path.name, "table": name, "rows": len(df),
                          "columns": [str(c) for c in df.columns], "sha256": _sha256(path)})
    now = utcnow().isoformat()
    manifest = {
        "generated_at": now,
        "exported_at": now,
        "exported_by": exported_by,
        "tool_version": tool_version(),
        "schema_version": schema_version(session),
        "format": fmt,
        "filters": {"article_id": article_id,
                    "since": since.isoformat() if since is not None else None},
        "formula_guard": {
            "applies_to": ["csv", "xlsx"],
            "leading_characters": list(FORMULA_LEADERS),
            "prefix": FORMULA_GUARD,
            "meaning": "a text cell starting with one of leading_characters is written "
                       "with prefix in front, so spreadsheets show it as text, never run "
                       "it as a formula",
        },
        "files": files,
        "audit": {"verified": check.ok, "events": check.checked,
                  "first_bad_id": check.first_bad_id, "reason": check.reason,
                  "head_hash": check.head_hash},
        "evidence_records": _evidence_records(
            session, None if scope.keys is None else scope.keys["verdicts"]),
    }
    (out_dir / MANIFEST).write_text(dumps(manifest) + "\n")
    return manifest


def record(session: Session, *, manifest_path: Path, actor: str) -> AuditEvent:
    """Append the ``export.create`` audit event for the export whose manifest is given.

    The event's entity id is the first 32 hex digits of the manifest file's sha256; its
    ``after`` names the format, filters, files with their sha256 and the audit head the
    export covers. The caller commits.
    """
    manifest = json.loads(manifest_path.read_text())
    digest = _sha256(manifest_path)
    after = {"manifest_sha256": digest, "format": manifest.get("format"),
             "filters": manifest.get("filters"), "exported_by": manifest.get("exported_by"),
             "audit_head": (manifest.get("audit") or {}).get("head_hash"),
             "files": {f["file"]: f["sha256"] for f in manifest.get("files", [])}}
    return audit.record(session, actor=actor, action="export.create", entity="export",
                        entity_id=digest[:32], after=after)


def create(
    engine: Engine,
    *,
    out_dir: Path,
    fmt: str = "csv",
    article_id: int | None = None,
    since: datetime | None = None,
    exported_by: str,
    user: AppUser | int | None = None,
) -> dict[str, Any]:
    """``export`` in a read session, then ``record`` it in the audit trail (committed).

    Parameters
    ----------
    exported_by
        Who the manifest and the audit event name (a username or ``cli:<OS user>``).
    user
        The app's signed-in user (or their id): their role and ``active`` flag are read
        from the database in the recording transaction (``require_exporter``), and the
        export is refused unless they may export. ``None``: an operator's command line.

    Returns
    -------
    dict
        The manifest (see ``export``).

    Raises
    ------
    PermissionDenied
        ``user`` may not export (the files written to ``out_dir`` are then not recorded;
        the app writes them to a temporary folder it discards).
    """
    with db.read_session(engine) as session:
        manifest = export(session, out_dir=out_dir, fmt=fmt, article_id=article_id,
                          since=since, exported_by=exported_by)
    with db.session_scope(engine) as session:
        if user is not None:
            require_exporter(session, user)
        record(session, manifest_path=out_dir / MANIFEST, actor=exported_by)
    return manifest


def require_exporter(session: Session, user: AppUser | int | None) -> AppUser:
    """The stored row of ``user`` if their role may export from the app (``EXPORT_ROLES``).

    Role and ``active`` are read from the database in ``session``'s (write) transaction
    (``crud.acting_user``), never from the object passed in.

    Raises
    ------
    PermissionDenied
        No user, a deactivated one, or a role that may not export.
    """
    return crud.acting_user(session, user, *EXPORT_ROLES)


def archive(out_dir: Path) -> bytes:
    """The manifest and the files it lists, zipped (what the app's export screen serves)."""
    manifest = json.loads((out_dir / MANIFEST).read_text())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(out_dir / MANIFEST, MANIFEST)
        for f in manifest["files"]:
            zf.write(out_dir / f["file"], f["file"])
    return buffer.getvalue()


# ------------------------------------------------------------------------------ verify


def verify(session: Session, out_dir: Path) -> list[str]:
    """Check an export folder against its manifest and the database.

    Every listed file must exist with the manifest's sha256, row count and columns; no
    other table file may sit beside them; the manifest's audit head must still be in the
    database's (intact) audit chain. The database may have grown since the export
    (``events_since`` says by how much): that is no problem.

    Returns
    -------
    list of str
        One line per problem, the first mismatch first; empty when the export verifies.
    """
    path = out_dir / MANIFEST
    if not path.is_file():
        return [f"{path}: no manifest"]
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        head = manifest["audit"]["head_hash"]
    except (ValueError, KeyError, TypeError) as e:
        return [f"{path}: not a valid export manifest ({e.__class__.__name__}: {e})"]
    problems: list[str] = []
    listed = {MANIFEST}
    for entry in files:
        name = str(entry.get("file", ""))
        listed.add(name)
        target = out_dir / name
        if not name or Path(name).name != name or not target.is_file():
            problems.append(f"{name or '(unnamed)'}: listed in the manifest but missing")
            continue
        digest = _sha256(target)
        if digest != entry.get("sha256"):
            problems.append(f"{name}: sha256 {digest} differs from the manifest's "
                            f"{entry.get('sha256')}")
            continue
        problems.extend(_check_shape(target, entry))
    for extra in sorted(p.name for p in out_dir.iterdir()
                        if p.is_file() and p.suffix.lstrip(".") in FORMATS):
        if extra not in listed:
            problems.append(f"{extra}: not listed in the manifest")
    if head is not None:
        result = audit.verify(session, anchor=head)
        if not result.ok:
            if result.first_bad_id is None:
                problems.append(f"audit head {head} is not in the database's audit chain")
            else:
                problems.append(f"the database's audit chain is broken at event "
                                f"{result.first_bad_id}: {result.reason}")
    return problems


def events_since(session: Session, out_dir: Path) -> int:
    """Audit events appended to the database since the export in ``out_dir`` was made."""
    manifest = json.loads((out_dir / MANIFEST).read_text())
    before = int((manifest.get("audit") or {}).get("events") or 0)
    return int(audit.verify(session).checked) - before


def _check_shape(path: Path, entry: dict[str, Any]) -> list[str]:
    """Rows and columns of one file against its manifest entry."""
    shapes: dict[str, tuple[int, list[str]]] = {}
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            shapes[str(entry.get("table"))] = (sum(1 for _ in reader), header)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        shapes[str(entry.get("table"))] = (meta.num_rows, list(meta.schema.to_arrow_schema()
                                                               .names))
    elif path.suffix == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True)
        try:
            for sheet in wb.worksheets:
                cells = list(sheet.iter_rows(values_only=True))
                header = [str(c) for c in cells[0]] if cells else []
                shapes[sheet.title] = (max(len(cells) - 1, 0), header)
        finally:
            wb.close()
    expected: dict[str, tuple[int, list[str]]]
    if "tables" in entry:  # a workbook: a sheet per table
        expected = {str(t)[:31]: (int(n), list(entry.get("columns", {}).get(t, [])))
                    for t, n in entry["tables"].items()}
    else:
        expected = {str(entry.get("table")): (int(entry.get("rows", -1)),
                                              list(entry.get("columns", [])))}
    problems = []
    for table, (rows, columns) in expected.items():
        if table not in shapes:
            problems.append(f"{path.name}: table {table} is missing")
            continue
        got_rows, got_columns = shapes[table]
        if got_rows != rows:
            problems.append(f"{path.name}: {table} has {got_rows} rows, the manifest says "
                            f"{rows}")
        elif columns and got_columns != columns:
            problems.append(f"{path.name}: {table} columns {got_columns} differ from the "
                            f"manifest's {columns}")
    return problems


def _excel_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
        elif _is_text(out[column]):
            # openpyxl writes a string starting with "=" as a formula, and spreadsheets
            # read "+", "-", "@" the same way: untrusted text must stay text (formula
            # injection), so such values get FORMULA_GUARD in front, as in CSV.
            out[column] = out[column].map(guard_cell)
            out[column] = out[column].map(
                lambda v: v.astimezone(None).replace(tzinfo=None)
                if hasattr(v, "tzinfo") and getattr(v, "tzinfo", None) else v
            )
    return out


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and v == v}
            if len(kinds) > 1:
                out[column] = out[column].map(lambda v: None if v is None else str(v))
    return out
