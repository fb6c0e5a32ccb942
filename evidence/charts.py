"""Altair charts for the dashboard, built from the DataFrames in ``evidence.queries``.

Each function takes the query's frame as it is and returns a chart whose bars carry their
numbers as labels, so a reader never has to estimate a bar's length.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from evidence.models import CLAIM_STATUSES, SUBSTANTIATION
from evidence.vocabulary import REOPEN_REASON_LABELS, STUDY_CHANGES

OUTCOME_ORDER = [*SUBSTANTIATION, "disputed", "unreviewed"]
_OUTCOME_COLORS = ["#2e7d32", "#9ccc65", "#ef6c00", "#c62828", "#9e9e9e", "#7e57c2",
                   "#e0e0e0"]
#: What the surveillance chart counts per run: ``queries.SURVEILLANCE_RUN_COLUMNS`` column ->
#: legend entry. Studies changed by kind first, then what that did to the claims.
SURVEILLANCE_MEASURES: dict[str, str] = {
    **{code: f"studies: {REOPEN_REASON_LABELS[code]}" for code in STUDY_CHANGES},
    "claims_reopened": "claims re-opened",
    "claims_expired": "verdicts expired",
    "new_evidence_links": "new evidence links",
}
_SURVEILLANCE_COLORS = ["#c62828", "#ef6c00", "#fbc02d", "#6d4c41", "#9e9e9e", "#1565c0",
                        "#7e57c2", "#2e7d32"]


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


def surveillance_run_label(started_at: pd.Series, run_id: pd.Series) -> pd.Series:
    """Each run as its start day and number (``2026-12-02 · run 7``), the chart's x axis."""
    day = pd.to_datetime(started_at, utc=True).dt.strftime("%Y-%m-%d")
    return day + " · run " + run_id.astype(int).astype(str)


def surveillance_bars(runs: pd.DataFrame) -> alt.LayerChart:
    """What each surveillance run found, run by run (``queries.surveillance_runs``).

    Per run, side by side: the linked studies that changed, by kind (retracted, expression
    of concern, erratum, deleted, title or abstract changed), the claims it re-opened, the
    final verdicts it expired and the new evidence it linked, each bar labelled with its
    count. A run that found nothing keeps its place on the axis, empty.
    """
    runs = runs.sort_values(["started_at", "run_id"])
    labels = surveillance_run_label(runs["started_at"], runs["run_id"])
    long = runs.assign(run=labels).melt(
        id_vars=["run"], value_vars=list(SURVEILLANCE_MEASURES), var_name="measure",
        value_name="count")
    long = long.assign(measure=long["measure"].map(SURVEILLANCE_MEASURES))
    long = long[long["count"] > 0]
    measures = list(SURVEILLANCE_MEASURES.values())
    x = alt.X("run:N", title="surveillance run", scale=alt.Scale(domain=list(labels)),
              axis=alt.Axis(labelAngle=-30))
    offset = alt.XOffset("measure:N", sort=measures, scale=alt.Scale(domain=measures))
    base = alt.Chart(long).encode(x=x, xOffset=offset, y=alt.Y("count:Q", title="count"))
    bars = base.mark_bar().encode(
        color=alt.Color("measure:N", title=None, sort=measures,
                        scale=alt.Scale(domain=measures, range=_SURVEILLANCE_COLORS),
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=0)),
        tooltip=["run", "measure", "count"],
    )
    counts = base.mark_text(baseline="bottom", dy=-2).encode(text=alt.Text("count:Q"))
    return alt.LayerChart(layer=[bars, counts])
