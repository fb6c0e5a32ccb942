"""Audit-table exports (CSV, XLSX, Parquet) with a manifest of sha256 checksums.

File names and the leading columns of each table are a contract: later versions only add
tables and append columns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session

from evidence import audit, queries
from evidence.errors import InputError
from evidence.models import utcnow

FORMATS = ("csv", "xlsx", "parquet")

CLAIMS_EXPORT = ["claim_id", "article_id", "source", "text", "start", "end", "category",
                 "checkworthiness", "canonical_id", "status", "flags", "suggested_certainty",
                 "suggestion_basis"]
CITATIONS_EXPORT = ["article_id", "raw", "kind", "identifier", "status", "pmid",
                    "status_reason", "citation_id", "flags"]
ARTICLES_EXPORT = ["article_id", "source", "title", "sha256", "content_type", "revision",
                   "previous_id", "is_current", "fetched_at", "n_claims", "n_citations"]


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
    tables = {"articles": articles, "claims": claims, "citations": citations,
              "studies": studies, "links": queries.links(session),
              "assessments": queries.assessments(session),
              "verdicts": queries.verdicts(session),
              "claim_sources": queries.claim_sources(session),
              "article_scorecard": queries.article_scorecard(session),
              "claims_register": queries.claims_register(session),
              "audit_log": audit_log}
    return {name: df.map(_jsonify) if len(df) else df for name, df in tables.items()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(session: Session, *, out_dir: Path, fmt: str = "csv") -> dict[str, Any]:
    """Write every audit table to ``out_dir`` in ``fmt`` plus ``manifest.json``.

    Parameters
    ----------
    session
        Read session.
    out_dir
        Created if missing; files of the same names are replaced.
    fmt
        ``csv`` (one file per table), ``xlsx`` (one workbook, a sheet per table) or
        ``parquet`` (one file per table).

    Returns
    -------
    dict
        The manifest: generated_at, format, each file's name, rows and sha256, the audit
        chain's verification and head hash.

    Raises
    ------
    InputError
        Unknown format.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = _tables(session)
    files: list[dict[str, Any]] = []
    if fmt == "xlsx":
        path = out_dir / "substantiate.xlsx"
        with pd.ExcelWriter(path, engine="openpyxl") as xl:
            for name, df in tables.items():
                _excel_safe(df).to_excel(xl, sheet_name=name[:31], index=False)
        files.append({"file": path.name, "tables": {n: len(d) for n, d in tables.items()},
                      "sha256": _sha256(path)})
    else:
        for name, df in tables.items():
            path = out_dir / f"{name}.{fmt}"
            if fmt == "csv":
                df.to_csv(path, index=False)
            else:
                _parquet_safe(df).to_parquet(path, index=False)
            files.append({"file": path.name, "table": name, "rows": len(df),
                          "columns": list(df.columns), "sha256": _sha256(path)})
    check = audit.verify(session)
    manifest = {
        "generated_at": utcnow().isoformat(),
        "format": fmt,
        "files": files,
        "audit": {"verified": check.ok, "events": check.checked,
                  "first_bad_id": check.first_bad_id, "reason": check.reason,
                  "head_hash": check.head_hash},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _excel_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
        elif out[column].dtype == object:
            # openpyxl writes a string starting with "=" as a formula: untrusted text
            # must stay text (formula injection), so such values get a leading apostrophe.
            out[column] = out[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith("=") else v
            )
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
