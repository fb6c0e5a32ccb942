"""Queue screen: the claims to review, filtered, searched and paged, highest priority first."""

from __future__ import annotations

import math

import streamlit as st

from app_pages import ui
from evidence import queries, review
from evidence.models import CLAIM_STATUSES

user = ui.require_user()
ui.show_flash()
st.title("Review queue")


def _first_page() -> None:
    st.session_state["queue_page"] = 1


if st.session_state.pop(ui.SHOW_REOPENED_KEY, False):
    # The re-opened banner's button: every re-opened claim, whoever reviewed it before.
    st.session_state.update(queue_article=None, queue_category=None, queue_status="reopened",
                            queue_flags=[], queue_search="", queue_not_mine=False,
                            queue_page=1)
st.session_state.setdefault("queue_not_mine", user.role != "viewer")

with ui.reading() as session:
    articles = queries.articles(session, current_only=True)
    categories = list(queries.claim_counts(session))

titles = dict(zip(articles["article_id"], articles["title"], strict=True))
cols = st.columns([3, 2, 2, 3])
article_id = cols[0].selectbox(
    "Article", [None, *titles], key="queue_article", on_change=_first_page,
    format_func=lambda a: "All articles" if a is None else f"#{a} {titles[a] or '(untitled)'}")
category = cols[1].selectbox(
    "Category", [None, *categories], key="queue_category", on_change=_first_page,
    format_func=lambda c: "All categories" if c is None else ui.label(c))
status = cols[2].selectbox(
    "Status", [None, *CLAIM_STATUSES], key="queue_status", on_change=_first_page,
    format_func=lambda s: "Any status" if s is None else ui.label(s))
flags = cols[3].multiselect(
    "Risk flags (any of)", list(review.FLAG_LABELS), key="queue_flags", on_change=_first_page,
    format_func=lambda f: review.FLAG_LABELS[f])
cols = st.columns([5, 3, 2])
search = cols[0].text_input("Search claims and article titles", key="queue_search",
                            on_change=_first_page, placeholder="e.g. within hours")
not_mine = cols[1].toggle("Only claims I have not reviewed", key="queue_not_mine",
                          on_change=_first_page)
page_size = cols[2].selectbox("Rows per page", [25, 50, 100], index=1, key="queue_page_size",
                              on_change=_first_page)

filters = {"article_id": article_id, "category": category, "status": status,
           "flags": list(flags), "search": search or None,
           "unreviewed_by": user.id if not_mine else None}
st.session_state[ui.QUEUE_FILTERS_KEY] = filters

page = int(st.session_state.get("queue_page", 1))
with ui.reading() as session:
    frame, total = queries.claim_queue(session, page=page, page_size=page_size, **filters)
    if frame.empty and page > 1:
        page = 1
        st.session_state["queue_page"] = 1
        frame, total = queries.claim_queue(session, page=1, page_size=page_size, **filters)

if total == 0:
    if not titles:
        st.info("There are no claims yet. Ingest articles first, e.g. "
                "`substantiate ingest articles data/articles`.", icon=":material/inbox:")
    else:
        st.info("No claim matches these filters.", icon=":material/filter_alt_off:")
    st.stop()

pages = max(1, math.ceil(total / page_size))
left, right = st.columns([3, 2], vertical_alignment="bottom")
left.caption(f"{total} claim{'' if total == 1 else 's'} · page {page} of {pages} · sorted by "
             "priority (check-worthiness × risk flags)")
if right.button("Review the top claim", type="primary", icon=":material/play_arrow:",
                key="queue_start", shortcut="Ctrl+Enter"):
    ui.open_claim(int(frame.iloc[0]["claim_id"]))

view = frame.assign(
    flags=frame["flags"].map(lambda fs: ", ".join(review.FLAG_LABELS.get(f, f) for f in fs)),
    status=frame["stage"].map(ui.label),
    reopened=frame["reopen_codes"].map(lambda cs: ", ".join(map(ui.label, cs))),
)
reopened_column = ["reopened"] if frame["reopen_codes"].map(len).any() else []
# A fresh table key after each opening, so coming back does not re-open the same row.
table_key = f"queue_table_{st.session_state.get('queue_opened', 0)}"
event = st.dataframe(
    view,
    key=table_key,
    on_select="rerun",
    selection_mode="single-row",
    hide_index=True,
    column_order=["claim_id", "priority", *reopened_column, "text", "article_title",
                  "category", "status", "flags", "n_links", "n_reviews"],
    column_config={
        "claim_id": st.column_config.NumberColumn("#", format="%d", width="small"),
        "priority": st.column_config.ProgressColumn(
            "Priority", min_value=0.0, max_value=max(2.0, float(frame["priority"].max())),
            format="%.2f", width="small"),
        "text": st.column_config.TextColumn("Claim", width="large"),
        "article_title": st.column_config.TextColumn("Article"),
        "category": st.column_config.TextColumn("Category", width="small"),
        "status": st.column_config.TextColumn("Stage"),
        "reopened": st.column_config.TextColumn("Why re-opened"),
        "flags": st.column_config.TextColumn("Flags"),
        "n_links": st.column_config.NumberColumn("Studies", width="small"),
        "n_reviews": st.column_config.NumberColumn("Reviews", width="small"),
    },
)
rows = event.selection.rows if event is not None else []
if rows:
    st.session_state["queue_opened"] = st.session_state.get("queue_opened", 0) + 1
    ui.open_claim(int(frame.iloc[rows[0]]["claim_id"]))

if pages > 1:
    prev_col, num_col, next_col = st.columns([1, 2, 1], vertical_alignment="bottom")
    if prev_col.button("Previous page", disabled=page <= 1, key="queue_prev"):
        st.session_state["queue_page"] = page - 1
        st.rerun()
    num_col.caption(f"Page {page} of {pages}")
    if next_col.button("Next page", disabled=page >= pages, key="queue_next"):
        st.session_state["queue_page"] = page + 1
        st.rerun()
