"""Export screen (adjudicators and admins): the audit tables and their manifest, as a zip.

The export is the library's (``evidence.export.create``): the same files, manifest and
``export.create`` audit event as ``substantiate export``, made by the signed-in user.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, time
from pathlib import Path

import streamlit as st

from app_pages import ui
from evidence import export, queries
from evidence.errors import SubstantiateError

ZIP_KEY = "export_zip"
NAME_KEY = "export_zip_name"
SUMMARY_KEY = "export_summary"

user = ui.require_user()
st.title("Export")
if user.role not in export.EXPORT_ROLES:  # the row read this run; create() checks again
    st.error("Exports are for adjudicators and admins.")
    st.stop()

st.caption("The audit tables (articles, claims, citations, studies, links, assessments, "
           "verdicts, sources, scorecard, audit log) with a manifest: each file's sha256, "
           "rows and columns, the audit chain's head, who exported and with which filters. "
           "Check a download later with `substantiate export verify DIR`. The export is "
           "itself recorded in the audit trail.")

with ui.reading() as session:
    articles = queries.articles(session, current_only=True)
titles = {int(a): str(t) for a, t in zip(articles["article_id"], articles["title"],
                                         strict=True)}

with st.form("export_form"):
    cols = st.columns(3)
    fmt = cols[0].selectbox("Format", export.FORMATS, key="export_format")
    article = cols[1].selectbox("Article", [None, *titles], key="export_article",
                                format_func=lambda a: "every article" if a is None
                                else f"#{a} {titles[a]}")
    since_day = cols[2].date_input("Changed since (optional)", value=None,
                                   key="export_since")
    make = st.form_submit_button("Prepare export", type="primary", key="export_submit")

if make:
    since = (datetime.combine(since_day, time(), tzinfo=UTC)
             if since_day is not None else None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "export"
            manifest = export.create(ui.engine(), out_dir=folder, fmt=fmt or "csv",
                                     article_id=None if article is None else int(article),
                                     since=since, exported_by=user.username,
                                     user=user)
            data = export.archive(folder)
    except SubstantiateError as e:
        ui.show_error(e)
    else:
        stamp = manifest["exported_at"][:19].replace(":", "").replace("-", "")
        st.session_state[ZIP_KEY] = data
        st.session_state[NAME_KEY] = f"substantiate-export-{stamp}.zip"
        st.session_state[SUMMARY_KEY] = [
            {"file": f["file"], "rows": f.get("rows", sum(f.get("tables", {}).values())),
             "sha256": f["sha256"]} for f in manifest["files"]]

if ZIP_KEY in st.session_state:
    st.success("Export ready.", icon=":material/inventory_2:")
    st.dataframe(st.session_state[SUMMARY_KEY], hide_index=True)
    st.download_button("Download the export (zip)", data=st.session_state[ZIP_KEY],
                       file_name=st.session_state[NAME_KEY], mime="application/zip",
                       key="export_download", icon=":material/download:")
