"""Altair charts for the dashboard, built from the DataFrames in ``evidence.queries``.

Each function takes the query's frame as it is and returns a chart whose bars carry their
numbers as labels, so a reader never has to estimate a bar's length.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from evidence.models import CLAIM_STATUSES, SUBSTANTIATION

OUTCOME_ORDER = [*SUBSTANTIATION, "disputed", "unreviewed"]
_OUTCOME_COLORS = ["#2e7d32", "#9ccc65", "#ef6c00", "#c62828", "#9e9e9e", "#7e57c2",
                   "#e0e0e0"]


def _labelled_bars(df: pd.DataFrame, *, category: str, value: str, title: str,
                   sort: list[str] | None = None) -> alt.LayerChart:
    y = alt.Y(f"{category}:N", sort=sort or "-x", title=None)
    base = alt.Chart(df).encode(y=y, x=alt.X(f"{value}:Q", title=title))
    bars = base.mark_bar()
    labels = base.mark_text(align="left", dx=3).encode(text=alt.Text(f"{value}:Q"))
    return alt.LayerChart(layer=[bars, labels])


def status_bars(status: pd.DataFrame) -> alt.LayerChart:
    """Claims per status (``queries.status_counts``), in workflow order."""
    return _labelled_bars(status, category="status", value="claims", title="claims",
                          sort=list(CLAIM_STATUSES))


def outcome_bars(outcomes: pd.DataFrame, by: str) -> alt.LayerChart:
    """Claims per outcome, stacked, per ``by`` (``queries.outcomes_by``), with totals."""
    color = alt.Color("outcome:N", title="outcome",
                      scale=alt.Scale(domain=OUTCOME_ORDER, range=_OUTCOME_COLORS))
    bars = alt.Chart(outcomes).mark_bar().encode(
        y=alt.Y(f"{by}:N", title=None),
        x=alt.X("sum(claims):Q", title="claims"),
        color=color,
        order=alt.Order("outcome:N"),
        tooltip=[by, "outcome", "claims"],
    )
    totals = alt.Chart(outcomes).mark_text(align="left", dx=3).encode(
        y=alt.Y(f"{by}:N"), x=alt.X("sum(claims):Q"), text=alt.Text("sum(claims):Q"))
    return alt.LayerChart(layer=[bars, totals])


def level_bars(levels: pd.DataFrame) -> alt.LayerChart:
    """Linked studies per evidence level, coloured by design (``queries.evidence_levels``)."""
    bars = alt.Chart(levels).mark_bar().encode(
        y=alt.Y("evidence_level:N", title="evidence level", sort="ascending"),
        x=alt.X("sum(studies):Q", title="studies"),
        color=alt.Color("design:N", title="design"),
        tooltip=["evidence_level", "design", "studies", "links"],
    )
    totals = alt.Chart(levels).mark_text(align="left", dx=3).encode(
        y=alt.Y("evidence_level:N", sort="ascending"), x=alt.X("sum(studies):Q"),
        text=alt.Text("sum(studies):Q"))
    return alt.LayerChart(layer=[bars, totals])


def fit_bars(fit: pd.DataFrame) -> alt.LayerChart:
    """Cited links that fit / do not fit their claim, per article (``queries.citation_fit``)."""
    bars = alt.Chart(fit).mark_bar().encode(
        y=alt.Y("article_title:N", title=None),
        x=alt.X("sum(links):Q", title="cited studies linked to claims"),
        color=alt.Color("fit:N", title="fit", scale=alt.Scale(
            domain=["fits", "does not fit", "not assessed"],
            range=["#2e7d32", "#c62828", "#9e9e9e"])),
        tooltip=["article_title", "fit", "links"],
    )
    totals = alt.Chart(fit).mark_text(align="left", dx=3).encode(
        y=alt.Y("article_title:N"), x=alt.X("sum(links):Q"), text=alt.Text("sum(links):Q"))
    return alt.LayerChart(layer=[bars, totals])


def flag_bars(flags: pd.DataFrame) -> alt.LayerChart:
    """Claims per risk flag (``queries.flag_counts``)."""
    return _labelled_bars(flags, category="label", value="claims", title="claims")


def certainty_bars(counts: pd.DataFrame) -> alt.LayerChart:
    """Claims per GRADE certainty, one row per basis (``queries.certainty_counts``)."""
    from evidence.vocabulary import CERTAINTY

    order = [*CERTAINTY, "none"]
    bars = alt.Chart(counts).mark_bar().encode(
        y=alt.Y("basis:N", title=None, sort=["suggested", "review", "final"]),
        x=alt.X("sum(claims):Q", title="claims"),
        color=alt.Color("certainty:N", title="certainty", sort=order),
        order=alt.Order("certainty:N"),
        tooltip=["basis", "certainty", "claims"],
    )
    totals = alt.Chart(counts).mark_text(align="left", dx=3).encode(
        y=alt.Y("basis:N", sort=["suggested", "review", "final"]), x=alt.X("sum(claims):Q"),
        text=alt.Text("sum(claims):Q"))
    return alt.LayerChart(layer=[bars, totals])


def decision_timeline(history: pd.DataFrame) -> alt.Chart:
    """Verdict events per day, new verdicts and changed ones (``queries.decision_history``)."""
    df = history.assign(
        day=pd.to_datetime(history["occurred_at"], utc=True).dt.strftime("%Y-%m-%d"),
        event=history["changed"].map({True: "changed", False: "recorded"}),
    )
    chart: alt.Chart = alt.Chart(df).mark_bar().encode(
        x=alt.X("day:O", title="day"), y=alt.Y("count():Q", title="verdict events"),
        color=alt.Color("event:N", title="event"), tooltip=["day", "event", "count()"],
    )
    return chart
