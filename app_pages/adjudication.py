"""Adjudication screen: claims whose reviews disagree (or agree and await a final verdict)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages import ui
from evidence import queries, review
from evidence.errors import StaleWrite, SubstantiateError
from evidence.models import ACTIONS, CERTAINTY, DOMAIN_RATINGS, GRADE_DOMAINS, SUBSTANTIATION

user = ui.require_user()
ui.show_flash()
st.title("Adjudication")

with ui.reading() as session:
    waiting = queries.adjudication_queue(session, viewer=user)

selected = st.session_state.get("adjudication_claim")
options = [int(c) for c in waiting["claim_id"]]
if selected is not None and int(selected) not in options:
    # Keep a claim open while it is being adjudicated, even once it has left the list
    # (another adjudicator's final verdict), so a pending save is refused, not lost.
    options.insert(0, int(selected))

if not options:
    st.info("No claim is waiting for adjudication: there is no disagreement, and no claim "
            "has all its reviews yet.", icon=":material/done_all:")
    st.stop()

counts = waiting["stage"].value_counts()
st.caption(f"{counts.get('disagreement', 0)} disagreement(s) · "
           f"{counts.get('ready for final', 0)} agreed, awaiting a final verdict")
st.dataframe(waiting[["claim_id", "stage", "text", "article_title", "substantiations",
                      "certainties"]], hide_index=True, height=min(300, 40 + 35 * len(waiting)))

texts = dict(zip(waiting["claim_id"], waiting["text"], strict=True))
claim_id = st.selectbox(
    "Claim to adjudicate", options, key="adjudication_claim",
    format_func=lambda c: f"#{c} · {str(texts.get(c, ''))[:100]}")
assert claim_id is not None

with ui.reading() as session:
    ctx = queries.claim_context(session, claim_id)
    verdicts = queries.claim_verdicts(session, claim_id, viewer=user)
if ctx is None:
    st.warning(f"Claim {claim_id} does not exist.")
    st.stop()

reviews = verdicts[verdicts["kind"] == "review"]
final = verdicts[verdicts["kind"] == "final"]
final_row: dict[str, Any] | None = final.iloc[0].to_dict() if len(final) else None

loaded: dict[str, Any] | None = st.session_state.get("adjudication_loaded")
if loaded is None or loaded["claim_id"] != claim_id or ui.entered_page():
    loaded = {"claim_id": claim_id, "gen": (loaded or {}).get("gen", 0) + 1,
              "final": final_row, "conflict": None}
    st.session_state["adjudication_loaded"] = loaded

with st.container(border=True):
    st.markdown(ui.highlight(ctx.paragraph, [(ctx.claim_start, ctx.claim_end)],
                             bold_spans=True))
    st.caption(f"From **{ui.md_escape(ctx.article_title or '(untitled)')}**")
if st.button("Open on the claim screen", icon=":material/open_in_new:",
             key="adjudication_open"):
    ui.open_claim(claim_id)

st.subheader("Reviews")
if reviews.empty:
    st.caption("No review yet.")
fields = ["substantiation", "certainty", "action"]
for row, col in zip(reviews.to_dict("records"), st.columns(max(1, len(reviews))),
                    strict=False):
    with col.container(border=True):
        st.markdown(f"**{ui.md_escape(row['reviewer'])}**")
        for field in fields:
            differs = reviews[field].nunique() > 1
            value = ui.label(row[field])
            st.markdown(f"{ui.label(field)}: " + (f":red[**{value}**]" if differs else value))
        worse = {d: r for d, r in (row["domains"] or {}).items() if r != "not_serious"}
        st.caption("Domains: " + (", ".join(f"{ui.label(d)} {ui.label(r)}"
                                            for d, r in worse.items()) or "none serious"))
        if row["rationale"]:
            st.markdown("> " + ui.md_escape(row["rationale"]))

if ctx.suggested_certainty:
    st.info(f"Suggested certainty: **{ui.label(ctx.suggested_certainty)}**",
            icon=":material/lightbulb:")


def _agreed(field: str, domain: str | None = None) -> Any:
    # Pre-fill the existing final verdict, else what the reviewers agree on; leave the
    # disputed choices to the adjudicator.
    assert loaded is not None
    if loaded["final"] is not None:
        value = loaded["final"].get(field)
        return (value or {}).get(domain) if domain else value
    values = reviews[field].tolist()
    if domain:
        values = [(v or {}).get(domain, "not_serious") for v in values]
    return values[0] if values and all(v == values[0] for v in values) else None


def _index(options: tuple[str, ...], value: Any) -> int | None:
    return options.index(value) if value in options else None


st.subheader("Final verdict" + (" (revising)" if final_row else ""))
key = f"adjudication_form_{claim_id}_{loaded['gen']}"
with st.form(key):
    substantiation = st.radio("Substantiation", SUBSTANTIATION, horizontal=True,
                              format_func=ui.label, key=f"{key}_substantiation",
                              index=_index(SUBSTANTIATION, _agreed("substantiation")))
    certainty = st.radio("GRADE certainty", CERTAINTY, horizontal=True, format_func=ui.label,
                         key=f"{key}_certainty",
                         index=_index(CERTAINTY, _agreed("certainty")
                                      or ctx.suggested_certainty))
    domain_cols = st.columns(len(GRADE_DOMAINS))
    domains = {d: domain_cols[i].radio(ui.label(d), DOMAIN_RATINGS, format_func=ui.label,
                                       index=_index(DOMAIN_RATINGS, _agreed("domains", d)),
                                       key=f"{key}_{d}")
               for i, d in enumerate(GRADE_DOMAINS)}
    rationale = st.text_area("Rationale", key=f"{key}_rationale", height=80,
                             value=(loaded["final"] or {}).get("rationale", ""))
    action = st.radio("Action", ACTIONS, horizontal=True, format_func=ui.label,
                      key=f"{key}_action", index=_index(ACTIONS, _agreed("action")))
    submitted = st.form_submit_button("Record final verdict", type="primary",
                                      key="adjudication_save", shortcut="Ctrl+S")

if loaded["conflict"]:
    st.error(ui.md_escape(loaded["conflict"]) + "  \nYour verdict is still in the form: "
             "record it again to replace theirs, or reload to see theirs.",
             icon=":material/sync_problem:")
    if st.button("Load theirs (discard my edits)", key="adjudication_load_theirs"):
        del st.session_state["adjudication_loaded"]
        st.rerun()

if submitted:
    if (substantiation is None or certainty is None or action is None
            or any(r is None for r in domains.values())):
        st.error("Choose a substantiation, a certainty, a rating for each GRADE domain and "
                 "an action.")
        st.stop()
    try:
        with ui.writing() as session:
            v = review.save_final_verdict(
                session, user=user, claim_id=claim_id, substantiation=substantiation,
                certainty=certainty, action=action,
                domains={d: r for d, r in domains.items() if r is not None},
                rationale=rationale or "",
                expected_version=int(loaded["final"]["version"]) if loaded["final"] else None)
            version = v.version
    except StaleWrite as e:
        loaded["final"] = dict(e.current)
        loaded["conflict"] = str(e)
        st.rerun()
    except SubstantiateError as e:
        ui.show_error(e)
        st.stop()
    st.session_state.pop("adjudication_loaded", None)
    st.session_state.pop("adjudication_claim", None)
    ui.flash("success", f"Final verdict on claim #{claim_id} recorded (version {version}).")
    st.rerun()
