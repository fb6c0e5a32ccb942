"""Substantiate's reviewer app: the router.

Run with ``streamlit run app.py`` (or ``substantiate app``). The screens live in
``app_pages/``; this file sets the page up, resolves who is signed in, and offers each
role its screens. Roles are enforced again by every write in ``evidence.review``.
"""

from __future__ import annotations

from typing import Literal

import streamlit as st

from app_pages import ui
from evidence import export
from evidence.errors import ConfigError

st.set_page_config(page_title="Substantiate", page_icon=":material/fact_check:",
                   layout="wide")


def _fetch_study(pmid: str) -> object:
    """Fetch one PubMed record into the database (the claim screen's "Add by PMID")."""
    from ingest import pubmed

    return pubmed.fetch_studies(ui.engine(), pubmed.make_client(), [pmid])


if ui.FETCH_STUDY is None:  # tests may put their own in first
    ui.FETCH_STUDY = _fetch_study

try:
    user = ui.current_user()
except ConfigError as e:
    st.error(ui.md_escape(f"The database cannot be opened: {e}"))
    st.stop()
ui.sync_cookie()

# A link to a claim (``?claim=N``) opens it once signed in: remember it on the sign-in page
# and on a tab's first run (the claim screen still checks who may see it).
wanted = st.query_params.get("claim")
if (user is None or ui.PAGE_KEY not in st.session_state) and wanted and wanted.isdigit():
    st.session_state[ui.DEEP_LINK_KEY] = int(wanted)

position: Literal["sidebar", "hidden"] = "sidebar"
if user is None:
    # Every screen's address shows the sign-in (no "page not found"); a claim link's claim
    # opens once signed in.
    pages = [st.Page("app_pages/sign_in.py", title="Sign in", icon=":material/login:",
                     default=True)]
    pages += [st.Page("app_pages/sign_in.py", title="Sign in", url_path=path)
              for path in ("queue", "claim", "dashboard", "adjudication", "users")]
    position = "hidden"
else:
    pages = [
        st.Page("app_pages/queue.py", title="Queue", icon=":material/list:", default=True),
        st.Page("app_pages/claim.py", title="Claim", icon=":material/rate_review:"),
        st.Page("app_pages/dashboard.py", title="Dashboard", icon=":material/monitoring:"),
    ]
    if user.role in ("adjudicator", "admin"):
        pages.append(st.Page("app_pages/adjudication.py", title="Adjudication",
                             icon=":material/gavel:"))
    if user.role in export.EXPORT_ROLES:
        pages.append(st.Page("app_pages/export.py", title="Export",
                             icon=":material/download:"))
    if user.role == "admin":
        pages.append(st.Page("app_pages/users.py", title="Users", icon=":material/group:"))
    with st.sidebar:
        st.markdown(f"Signed in as **{ui.md_escape(user.username)}** · {user.role}")
        if st.button("Sign out", icon=":material/logout:", key="sign_out"):
            ui.sign_out()
            st.rerun()

page = st.navigation(pages, position=position)
st.session_state[ui.PREVIOUS_PAGE_KEY] = st.session_state.get(ui.PAGE_KEY)
st.session_state[ui.PAGE_KEY] = page.url_path
if user is not None and ui.DEEP_LINK_KEY in st.session_state:
    linked = int(st.session_state.pop(ui.DEEP_LINK_KEY))
    if page.url_path == "claim":  # already there: just make sure it is that claim
        st.session_state[ui.CLAIM_KEY] = linked
        st.query_params["claim"] = str(linked)
    else:
        ui.open_claim(linked)
if user is not None:
    ui.reopened_banner()
page.run()
