"""Dashboard: review progress, verdicts by article and category, evidence, surveillance,
agreement."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from app_pages import ui
from evidence import charts, queries

ui.require_user()
st.title("Dashboard")

with ui.reading() as session:
    status = queries.status_counts(session)
    by_article = queries.outcomes_by(session, "article_title")
    by_category = queries.outcomes_by(session, "category")
    levels = queries.evidence_levels(session)
    fit = queries.citation_fit(session)
    flags = queries.flag_counts(session)
    agreement = queries.agreement(session)
    scorecard = queries.article_scorecard(session)
    runs = queries.surveillance_runs(session)

total = int(status["claims"].sum())
if total == 0:
    st.info("There are no claims yet: the dashboard fills in as articles are ingested and "
            "reviewed.", icon=":material/inbox:")
    st.stop()

by_status = status.set_index("status")["claims"]
cols = st.columns(5)
cols[0].metric("Claims", total)
cols[1].metric("Final verdicts", int(by_status.get("final", 0)),
               help="Claims with an adjudicated final verdict")
cols[2].metric("In review", int(by_status.get("in_review", 0)))
cols[3].metric("Disagreements", int(by_status.get("disagreement", 0)))
cols[4].metric("Re-opened", int(by_status.get("reopened", 0)),
               help="Decided claims surveillance re-opened: their evidence changed, or the "
                    "final verdict passed its review-by date")


def _section(title: str, chart: alt.LayerChart, table: object, empty: bool, note: str,
             columns: dict[str, Any] | None = None) -> None:
    st.subheader(title)
    if empty:
        st.caption(note)
        return
    left, right = st.columns([3, 2])
    left.altair_chart(chart)
    right.dataframe(table, hide_index=True, column_config=columns)


_section("Progress", charts.status_bars(status), status, False, "")
_section("Verdicts by article", charts.outcome_bars(by_article, "article_title"),
         by_article.pivot_table(index="article_title", columns="outcome", values="claims",
                                fill_value=0).reset_index() if not by_article.empty else None,
         by_article.empty, "No claims.")
_section("Verdicts by category", charts.outcome_bars(by_category, "category"),
         by_category.pivot_table(index="category", columns="outcome", values="claims",
                                 fill_value=0).reset_index() if not by_category.empty else None,
         by_category.empty, "No claims.")
_section("Evidence levels of linked studies", charts.level_bars(levels), levels, levels.empty,
         "No study is linked to a claim yet.")
_section("Citation fit (studies the articles cite)", charts.fit_bars(fit), fit, fit.empty,
         "No article cites a study that is in the database yet.")
_section("Risk flags", charts.flag_bars(flags), flags[["label", "claims"]], False, "")
_section("Surveillance", charts.surveillance_bars(runs),
         runs[["run_id", "started_at", "status", "studies_checked", "studies_changed",
               "claims_reopened", "claims_expired", "new_evidence_links"]],
         runs.empty, "No surveillance run yet: `substantiate surveil` re-checks the evidence "
         "behind decided claims and re-opens those whose evidence changed.",
         columns={"run_id": st.column_config.NumberColumn("run", format="%d"),
                  "started_at": st.column_config.DatetimeColumn(
                      "started (UTC)", format="YYYY-MM-DD HH:mm"),
                  "studies_checked": "studies checked", "studies_changed": "changed",
                  "claims_reopened": "re-opened", "claims_expired": "expired",
                  "new_evidence_links": "new links"})

st.subheader("Article scorecard")
st.caption("Per article: claims with a fitting cited study, with only fitting discovered "
           "evidence, with no fitting evidence; regulatory statements still needing a "
           "regulatory source; cited studies that fit none of the article's claims.")
st.dataframe(scorecard.drop(columns=["article_id"]), hide_index=True)

st.subheader("Agreement between reviewers (Cohen's kappa on substantiation)")
overall = agreement.iloc[-1]
if overall["claims"] == 0:
    st.caption("No claim has two reviews yet.")
else:
    kappa = overall["kappa"]
    st.metric("Overall kappa", "n/a" if kappa is None else f"{kappa:.2f}",
              help=f"Pooled over {int(overall['claims'])} pairs of reviews of the same claim")
    st.dataframe(agreement, hide_index=True, column_config={
        "percent_agreement": st.column_config.NumberColumn("agreement", format="percent"),
        "kappa": st.column_config.NumberColumn("kappa", format="%.2f"),
    })
