"""Claim screen: the claim in its paragraph, its studies, and the grading forms.

The forms remember the version of each row they were filled from (``claim_loaded``), so a
save that would overwrite someone else's newer change is refused and the change is shown.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import streamlit as st

from app_pages import ui
from evidence import queries, report, review, surveillance
from evidence.errors import NotFound, StaleWrite, SubstantiateError
from evidence.models import (
    ACTIONS,
    CERTAINTY,
    DOMAIN_RATINGS,
    GRADE_DOMAINS,
    RELEVANCE,
    SOURCE_KINDS,
    STANCES,
    SUBSTANTIATION,
)

user = ui.require_user()
ui.show_flash()


def _selected_claim() -> int | None:
    param = st.query_params.get("claim")
    if param is not None and str(param).isdigit():
        st.session_state[ui.CLAIM_KEY] = int(param)
    claim_id = st.session_state.get(ui.CLAIM_KEY)
    return int(claim_id) if claim_id is not None else None


def _go(claim_id: int) -> None:
    st.session_state[ui.CLAIM_KEY] = claim_id
    st.query_params["claim"] = str(claim_id)
    st.rerun()


def _index(options: tuple[str, ...], value: Any) -> int | None:
    return options.index(value) if value in options else None


claim_id = _selected_claim()
if claim_id is None:
    st.title("Claim")
    st.info("Pick a claim in the queue to review it.", icon=":material/list:")
    st.page_link(ui.QUEUE_PAGE, label="Go to the queue", icon=":material/list:")
    st.stop()

with ui.reading() as session:
    ctx = queries.claim_context(session, claim_id)
    if ctx is not None:
        studies = queries.claim_studies(session, claim_id)
        siblings = queries.canonical_siblings(session, claim_id)
        verdicts = queries.claim_verdicts(session, claim_id, viewer=user)
        assessments = queries.claim_assessments(session, claim_id, viewer=user)
        others_visible = queries.others_visible(session, claim_id, user)
        required = review.required_reviews()
        suggestion = queries.certainty_suggestion(session, claim_id, user)
        sources = queries.claim_sources(session, claim_id)

if ctx is None:
    st.title("Claim")
    st.warning(f"Claim {claim_id} does not exist.")
    st.page_link(ui.QUEUE_PAGE, label="Go to the queue", icon=":material/list:")
    st.stop()
st.query_params["claim"] = str(claim_id)

reviews = verdicts[verdicts["kind"] == "review"]
mine = reviews[reviews["reviewer_id"] == user.id]
my_assessments = assessments[assessments["reviewer_id"] == user.id]


def _snapshot() -> dict[str, Any]:
    # A new generation gives the forms new widget keys, so they show the loaded values.
    gen = st.session_state.get("claim_gen", 0) + 1
    st.session_state["claim_gen"] = gen
    return {
        "claim_id": claim_id,
        "gen": gen,
        "verdict": mine.iloc[0].to_dict() if len(mine) else None,
        "assessments": {int(r["link_id"]): r for r in my_assessments.to_dict("records")},
    }


previous: dict[str, Any] | None = st.session_state.get("claim_loaded")
if previous is None or previous["claim_id"] != claim_id or ui.entered_page():
    st.session_state["claim_loaded"] = _snapshot()
    st.session_state["claim_conflicts"] = {}
loaded: dict[str, Any] = st.session_state["claim_loaded"]
conflicts: dict[str, str] = st.session_state.setdefault("claim_conflicts", {})
gen = loaded["gen"]


def _reload() -> None:
    """Load the rows afresh on the next run (after a save, or to take someone's change)."""
    st.session_state.pop("claim_loaded", None)
    st.session_state["claim_conflicts"] = {}


def _conflict(slot: str, error: StaleWrite, *, link_id: int | None = None) -> None:
    # Keep the user's input, remember what they now know the row to be, and say so: a
    # second save is then a deliberate choice, never a silent overwrite.
    conflicts[slot] = str(error)
    current = {**error.current}
    if link_id is None:
        loaded["verdict"] = current
    else:
        loaded["assessments"][link_id] = current


# --------------------------------------------------------------------------- header

# The stage counts reviews; someone who may not see the others' reviews gets the status.
stage = (review.review_stage(ctx.status, len(reviews), required) if others_visible
         else ui.label(ctx.status))
top = st.columns([6, 1, 1], vertical_alignment="bottom")
top[0].title(f"Claim #{ctx.claim_id}")
top[1].page_link(ui.QUEUE_PAGE, label="Queue", icon=":material/arrow_back:")
if top[2].button("Skip", icon=":material/skip_next:", key="claim_skip", shortcut="Alt+N"):
    filters = st.session_state.get(ui.QUEUE_FILTERS_KEY, {})
    with ui.reading() as session:
        nxt = queries.next_claim_id(session, after_claim_id=claim_id, **filters)
    if nxt is None:
        st.info("No other claim in the queue.")
    else:
        _go(nxt)

badges = [f":blue-badge[{ui.md_escape(ui.label(stage))}]",
          f":gray-badge[{ui.md_escape(ui.label(ctx.category))}]",
          f":gray-badge[check-worthiness {ctx.checkworthiness:.2f}]"]
badges += [f":red-badge[{ui.md_escape(review.FLAG_LABELS.get(f, ui.label(f)))}]"
           for f in ctx.flags]
st.markdown(" ".join(badges))
if user.role == "viewer":
    st.caption("You are signed in as a viewer: you can read everything here, but not save.")
if ctx.status == "reopened":
    # The reasons quote PubMed's notice citations: shown as typed, never as Markdown.
    when = f" on {ctx.reopened_at:%Y-%m-%d %H:%M} UTC" if ctx.reopened_at else ""
    reasons = "".join(f"\n- {ui.md_escape(ui.label(r.get('code')))}: "
                      f"{ui.md_escape(str(r.get('text', '')))}" for r in ctx.reopen_reasons)
    st.warning(f"**Re-opened by surveillance{when}.** Its evidence changed after the final "
               f"verdict:{reasons}\n\nThe claim stays re-opened until a final verdict is "
               "recorded again; reviewers' verdicts do not close it.",
               icon=":material/restart_alt:")

with st.container(border=True):
    st.markdown(ui.highlight(ctx.paragraph, [(ctx.claim_start, ctx.claim_end)],
                             bold_spans=True))
    st.caption(f"From **{ui.md_escape(ctx.article_title or '(untitled)')}** · "
               f"{ui.md_escape(ctx.article_source)}")
if not ctx.article_is_current:
    st.warning("This claim is from an earlier revision of the article.")
if ctx.canonical_statement:
    st.markdown(f"**Canonical claim #{ctx.canonical_id}:** "
                f"{ui.md_escape(ctx.canonical_statement)}")
    if not siblings.empty:
        with st.expander(f"Repeated in {siblings['article_id'].nunique()} other article(s)"):
            st.dataframe(siblings[["claim_id", "article_title", "text", "status"]],
                         hide_index=True)

# --------------------------------------------------------------------------- report

with st.expander("Substantiation report of this article", icon=":material/description:"):
    st.caption("Every claim of the article with its verdict, evidence and reviewers, for the "
               "compliance file. Preparing one is recorded in the audit trail.")
    report_cols = st.columns([2, 2, 3], vertical_alignment="bottom")
    report_fmt = report_cols[0].radio("Format", tuple(report.FORMATS), horizontal=True,
                                      format_func=str.upper, key="claim_report_format")
    if report_cols[1].button("Prepare report", key="claim_report_prepare",
                             icon=":material/description:"):
        try:
            report_data = report.generate(ui.engine(), article_id=ctx.article_id,
                                          fmt=report_fmt or "html", actor=user.username,
                                          viewer=user)
        except SubstantiateError as e:
            ui.show_error(e)
        else:
            st.session_state["claim_report"] = {"article_id": ctx.article_id,
                                                "fmt": report_fmt or "html",
                                                "data": report_data}
    prepared: dict[str, Any] | None = st.session_state.get("claim_report")
    if prepared is not None and prepared["article_id"] == ctx.article_id:
        report_cols[2].download_button(
            f"Download the {prepared['fmt'].upper()} report", data=prepared["data"],
            file_name=f"substantiation-report-article-{ctx.article_id}.{prepared['fmt']}",
            mime=report.FORMATS[prepared["fmt"]], key="claim_report_download",
            icon=":material/download:")

# --------------------------------------------------------------------------- studies

# Fitting studies are the evidence; weaker matches (another condition or drug) are kept
# behind a switch. A reviewer's own links, and links someone assessed, always show.
shown = studies[(studies["fits"] == True) | (studies["origin"] == "manual")  # noqa: E712
                | studies["assessed"]] if not studies.empty else studies
weaker = studies.drop(shown.index) if not studies.empty else studies
st.subheader(f"Linked studies ({len(shown)})")
if shown.empty:
    st.info("No fitting study is linked to this claim. Add one by PMID below"
            + (f", or look at the {len(weaker)} weaker match(es)." if len(weaker) else "."),
            icon=":material/science:")


def _badges(row: dict[str, Any]) -> str:
    # A study surveillance linked after the decision stands out from the others.
    origin = "blue" if row["origin"] == surveillance.ORIGIN else "gray"
    out = [f":violet-badge[{ui.md_escape(ui.label(row['design'] or 'design unknown'))}]",
           f":violet-badge[level {ui.md_escape(row['evidence_level'] or '?')}]",
           f":{origin}-badge[{ui.md_escape(ui.label(row['origin']))}]"]
    if row["indirect"]:
        out.append(":orange-badge[indirect]")
    if row["fits"] is False:
        out.append(":orange-badge[weaker match: does not fit the claim]")
    elif row["fits"] is True:
        out.append(":green-badge[fits the claim]")
    return " ".join(out)


def _links(row: dict[str, Any]) -> str:
    out = []
    if str(row["pmid"]).isdigit():
        out.append(f"[PubMed {row['pmid']}](https://pubmed.ncbi.nlm.nih.gov/{row['pmid']}/)")
    if row["doi"]:
        url = f"https://doi.org/{quote(row['doi'], safe='/')}"
        out.append(f"[DOI {ui.md_escape(row['doi'])}]({url})")
    return " · ".join(out)


def _assessment_form(row: dict[str, Any]) -> None:
    link_id = int(row["link_id"])
    mine_a = loaded["assessments"].get(link_id)
    key = f"claim_assess_{link_id}_{gen}"
    with st.form(key, border=False):
        cols = st.columns([3, 2])
        stance = cols[0].radio("Stance", STANCES, horizontal=True, format_func=ui.label,
                               index=_index(STANCES, (mine_a or {}).get("stance")),
                               key=f"{key}_stance")
        relevance = cols[1].radio("Relevance", RELEVANCE, horizontal=True,
                                  format_func=ui.label,
                                  index=_index(RELEVANCE, (mine_a or {}).get("relevance",
                                                                             "medium")),
                                  key=f"{key}_relevance")
        cols = st.columns([5, 1], vertical_alignment="bottom")
        note = cols[0].text_input("Note", value=(mine_a or {}).get("note", ""),
                                  key=f"{key}_note", placeholder="optional; Enter saves")
        saved = cols[1].form_submit_button("Save assessment", key=f"claim_assess_save_{link_id}")
    if f"link_{link_id}" in conflicts:
        st.error(ui.md_escape(conflicts[f"link_{link_id}"]) + "  \nYour assessment is still "
                 "in the form: save again to replace theirs with it, or load theirs instead.",
                 icon=":material/sync_problem:")
        if st.button("Load theirs (discard my edits)", key=f"claim_assess_reload_{link_id}"):
            _reload()
            st.rerun()
    if not saved:
        return
    if stance is None:
        st.error("Choose a stance.")
        return
    try:
        with ui.writing() as session:
            a = review.save_assessment(
                session, user=user, link_id=link_id, stance=stance, relevance=relevance or
                "medium", note=note or "",
                expected_version=int(mine_a["version"]) if mine_a else None)
            saved_row = {"link_id": link_id, "stance": a.stance, "relevance": a.relevance,
                         "note": a.note, "version": a.version}
    except StaleWrite as e:
        _conflict(f"link_{link_id}", e, link_id=link_id)
        st.rerun()
    except SubstantiateError as e:
        ui.show_error(e)
    else:
        loaded["assessments"][link_id] = saved_row
        conflicts.pop(f"link_{link_id}", None)
        # The suggested certainty follows the assessment: show the page again with it.
        ui.flash("success", f"Assessment saved (version {saved_row['version']}).")
        st.rerun()


def _study_card(row: dict[str, Any]) -> None:
    with st.container(border=True):
        flags = {str(f.get("code")): str(f.get("reason", "")) for f in row["flags"] or []}
        if row["retracted"]:
            st.error("**RETRACTED.** This study has been retracted; it cannot substantiate "
                     "the claim. " + ui.md_escape(flags.get("retracted", "")),
                     icon=":material/dangerous:")
        if row["expression_of_concern"]:
            st.warning("The journal has published an expression of concern about this study: "
                       + ui.md_escape(flags.get("expression_of_concern", "")),
                       icon=":material/report:")
        for code in ("corrected_and_republished", "erratum", "deleted", "not_english",
                     "preprint", "retraction_notice"):
            if code in flags:
                st.caption(f"{ui.label(code)}: {ui.md_escape(flags[code])}")
        rank = f"{int(row['rank'])}. " if row["rank"] is not None else ""
        st.markdown(f"**{rank}{ui.md_escape(row['title'] or '(no title)')}**")
        year = str(int(row["year"])) if row["year"] is not None else None
        meta = " · ".join(ui.md_escape(x) for x in (row["journal"], year) if x)
        st.markdown(" · ".join(p for p in (meta, _badges(row), _links(row)) if p))
        reasons = (row["indirectness"] or {}).get("reasons") or []
        fit_reasons = (row["explanation"] or {}).get("fit_reasons") or []
        if fit_reasons:
            st.caption("Fit: " + ui.md_escape("; ".join(map(str, fit_reasons))))
        if row["indirect"] and reasons:
            st.caption("Indirect: " + ui.md_escape("; ".join(map(str, reasons))))
        explanation = row["explanation"] or {}
        terms = [str(t) for t in explanation.get("terms", [])]
        spans = []
        abstract = row["abstract"] or ""
        for sentence in explanation.get("sentences", []):
            start, end, text = int(sentence[0]), int(sentence[1]), str(sentence[2])
            if abstract[start:end] != text:
                found = abstract.find(text)
                start, end = (found, found + len(text)) if found >= 0 else (-1, -1)
            if start >= 0:
                spans.append((start, end))
            st.markdown("> " + ui.highlight(text, [(0, len(text))], terms=terms))
        with st.expander("Abstract"):
            if abstract:
                st.markdown(ui.highlight(abstract, spans, terms=terms, inline=False))
            else:
                st.caption("PubMed has no abstract for this record.")
        theirs = assessments[(assessments["link_id"] == row["link_id"])
                             & (assessments["reviewer_id"] != user.id)]
        if not theirs.empty:
            st.caption("Other reviewers' assessments")
            st.dataframe(theirs[["reviewer", "stance", "relevance", "note"]], hide_index=True)
        _assessment_form(row)


# Missing values as None (pandas turns them into NaN in mixed columns).
for study_row in shown.astype(object).where(shown.notna(), None).to_dict("records"):
    _study_card(study_row)
if len(weaker) and st.toggle(f"Show weaker matches ({len(weaker)})",
                             key=f"claim_weaker_{claim_id}"):
    st.caption("These studies do not share the claim's condition and intervention: they "
               "count towards no flag, summary or certainty.")
    for study_row in weaker.astype(object).where(weaker.notna(), None).to_dict("records"):
        _study_card(study_row)

with st.form(f"claim_add_pmid_{claim_id}", border=False):
    cols = st.columns([4, 1], vertical_alignment="bottom")
    pmid = cols[0].text_input("Add a study by PMID", key=f"claim_pmid_{claim_id}",
                              placeholder="e.g. 31109201")
    add = cols[1].form_submit_button("Link study", key="claim_add_link")
if add:
    try:
        cleaned = review.clean_pmid(pmid or "")
        if ui.FETCH_STUDY is not None:
            with ui.reading() as session:
                review.require_reviewer(session, user)  # fetching writes too: not for viewers
                known = queries.has_study(session, cleaned)
            if not known:
                with st.spinner(f"Fetching PMID {cleaned} from PubMed…"):
                    ui.FETCH_STUDY(cleaned)
        with ui.writing() as session:
            link = review.add_manual_link(session, user=user, claim_id=claim_id, pmid=cleaned)
            linked = link.id
    except NotFound as e:
        st.warning(ui.md_escape(str(e)), icon=":material/cloud_download:")
    except SubstantiateError as e:
        ui.show_error(e)
    else:
        ui.flash("success", f"Study linked (link {linked}).")
        st.rerun()

# ---------------------------------------------------------------------------- sources

st.subheader(f"Other sources ({len(sources)})")
if "needs_regulatory_source" in ctx.flags:
    st.warning("A regulatory statement: no clinical study can substantiate it. Attach the "
               "drug label or the agency's decision.", icon=":material/policy:")
for src in sources.to_dict("records"):
    st.markdown(f"- {ui.label(src['kind'])}: [{ui.md_escape(src['title'] or src['url'])}]"
                f"({quote(str(src['url']), safe=':/?&=#%.-_~+')}) · "
                f"{ui.md_escape(src['note'])} · added by {ui.md_escape(src['created_by'])}")
with st.expander("Attach a non-PubMed source"):
    with st.form(f"claim_source_{claim_id}", border=False):
        kind = st.selectbox("Kind", SOURCE_KINDS, format_func=lambda k: SOURCE_KINDS[k],
                            key=f"claim_source_kind_{claim_id}")
        url = st.text_input("URL", key=f"claim_source_url_{claim_id}",
                            placeholder="https://www.accessdata.fda.gov/...")
        title = st.text_input("Title", key=f"claim_source_title_{claim_id}")
        note = st.text_input("Note: what it shows about the claim",
                             key=f"claim_source_note_{claim_id}")
        attach = st.form_submit_button("Attach source", key="claim_source_attach")
    if attach:
        try:
            with ui.writing() as session:
                review.add_claim_source(session, user=user, claim_id=claim_id,
                                        kind=kind or "other", url=url or "",
                                        title=title or "", note=note or "")
        except SubstantiateError as e:
            ui.show_error(e)
        else:
            ui.flash("success", "Source attached.")
            st.rerun()

# --------------------------------------------------------------------------- verdicts

st.subheader("Verdict")
final = verdicts[verdicts["kind"] == "final"]
if not final.empty:
    f = final.iloc[0]
    st.success(f"**Final verdict** by {ui.md_escape(f['reviewer'])}: "
               f"{ui.label(f['substantiation'])} · certainty {ui.label(f['certainty'])} · "
               f"action {ui.label(f['action'])}", icon=":material/gavel:")
others = reviews[reviews["reviewer_id"] != user.id]
if not others_visible:
    until = ("the claim's final verdict" if user.role == "viewer"
             else "you submit your own verdict")
    st.info(f"Independent review: reviewers' verdicts and assessments stay hidden until "
            f"{until}.", icon=":material/visibility_off:")
elif not others.empty:
    st.caption("Other reviewers' verdicts")
    st.dataframe(others[["reviewer", "substantiation", "certainty", "action", "rationale",
                         "updated_at"]], hide_index=True)
if user.role in ("adjudicator", "admin"):
    if st.button("Adjudicate this claim", icon=":material/gavel:", key="claim_adjudicate"):
        st.session_state["adjudication_claim"] = claim_id
        st.switch_page(ui.ADJUDICATION_PAGE)

suggested = suggestion.level if suggestion else None
if suggestion is not None:
    basis = ("from the linked records only: nobody has assessed the studies yet"
             if suggestion.basis == "metadata" else "from the assessed studies")
    reasons = "".join(f"\n- {ui.md_escape(r)}" for r in suggestion.reasons)
    st.info(f"Suggested certainty: **{ui.label(suggested)}** ({basis}){reasons}",
            icon=":material/lightbulb:")

mine_v: dict[str, Any] | None = loaded["verdict"]
key = f"claim_verdict_{claim_id}_{gen}"
with st.form(key):
    substantiation = st.radio(
        "Substantiation", SUBSTANTIATION, horizontal=True, format_func=ui.label,
        index=_index(SUBSTANTIATION, (mine_v or {}).get("substantiation")),
        key=f"{key}_substantiation")
    # Keyed by the suggestion: when an assessment moves the suggestion, the choice starts
    # from the new one (a saved verdict's own certainty still wins).
    certainty = st.radio(
        "GRADE certainty", CERTAINTY, horizontal=True, format_func=ui.label,
        index=_index(CERTAINTY, (mine_v or {}).get("certainty", suggested)),
        key=f"{key}_certainty_{suggested}")
    domain_cols = st.columns(len(GRADE_DOMAINS))
    given = (mine_v or {}).get("domains") or {}
    domains = {
        d: domain_cols[i].radio(ui.label(d), DOMAIN_RATINGS, format_func=ui.label,
                                index=_index(DOMAIN_RATINGS, given.get(d, "not_serious")),
                                key=f"{key}_{d}")
        for i, d in enumerate(GRADE_DOMAINS)
    }
    rationale = st.text_area(
        "Rationale" + (f" (required if your certainty is not {ui.label(suggested)})"
                       if suggested else ""),
        value=(mine_v or {}).get("rationale", ""), key=f"{key}_rationale", height=80,
        placeholder="Why this verdict? Ctrl+S saves and opens the next claim.")
    action = st.radio("Action", ACTIONS, horizontal=True, format_func=ui.label,
                      index=_index(ACTIONS, (mine_v or {}).get("action")), key=f"{key}_action")
    with st.container(horizontal=True):
        save_next = st.form_submit_button("Save and next", type="primary",
                                          key="claim_save_next", shortcut="Ctrl+S")
        save_only = st.form_submit_button("Save", key="claim_save")

if "verdict" in conflicts:
    st.error(ui.md_escape(conflicts["verdict"]) + "  \nYour verdict is still in the form: "
             "save again to replace theirs with it, or load theirs instead.",
             icon=":material/sync_problem:")
    if st.button("Load theirs (discard my edits)", key="claim_load_theirs"):
        _reload()
        st.rerun()

if save_next or save_only:
    missing = [n for n, v in (("a substantiation", substantiation),
                              ("a certainty", certainty), ("an action", action)) if v is None]
    if missing:
        st.error("Choose " + ", ".join(missing) + ".")
        st.stop()
    assert substantiation is not None and certainty is not None and action is not None
    try:
        with ui.writing() as session:
            v = review.save_verdict(
                session, user=user, claim_id=claim_id, substantiation=substantiation,
                certainty=certainty, action=action,
                domains={d: r for d, r in domains.items() if r is not None},
                rationale=rationale or "",
                expected_version=int(mine_v["version"]) if mine_v else None)
            version = v.version
    except StaleWrite as e:
        _conflict("verdict", e)
        st.rerun()
    except SubstantiateError as e:
        ui.show_error(e)
        st.stop()
    message = f"Verdict on claim #{claim_id} saved (version {version})."
    if save_only:
        _reload()
        ui.flash("success", message)
        st.rerun()
    with ui.reading() as session:
        filters = st.session_state.get(ui.QUEUE_FILTERS_KEY,
                                       {"unreviewed_by": user.id})
        nxt = queries.next_claim_id(session, after_claim_id=claim_id, **filters)
    if nxt is None:
        ui.flash("success", message + " No claim is left in your queue.")
        st.switch_page(ui.QUEUE_PAGE)
    ui.flash("success", message)
    _go(nxt)

# --------------------------------------------------------------------------- claim library

if ctx.canonical_id is not None and user.role != "viewer":
    st.subheader("Claim library")
    st.caption("Claims that repeat the same canonical claim are graded once: apply your "
               "verdict to all of them, or correct the grouping.")
    mine_now: dict[str, Any] | None = loaded["verdict"]
    if mine_now is not None and not siblings.empty:
        overwrite = st.checkbox("Also replace verdicts I recorded on those claims myself",
                                key=f"claim_apply_overwrite_{claim_id}")
        if st.button(f"Apply my verdict to the {len(siblings)} other claim(s)",
                     key="claim_apply_group", icon=":material/done_all:"):
            try:
                with ui.writing() as session:
                    result = review.apply_verdict_to_group(
                        session=session, user=user, verdict_id=int(mine_now["verdict_id"]),
                        expected_version=int(mine_now["version"]), overwrite=overwrite)
                    applied, skipped = len(result.applied), result.skipped
            except SubstantiateError as e:
                ui.show_error(e)
                st.stop()
            message = f"Verdict applied to {applied} claim(s)."
            if skipped:
                message += " Left as they were: " + "; ".join(
                    f"#{cid} {reason}" for cid, reason in skipped) + "."
            _reload()
            ui.flash("success", message)
            st.rerun()
    regroup = st.columns(2, vertical_alignment="bottom")
    statement = regroup[0].text_input("Wording of a new canonical claim (optional)",
                                      key=f"claim_split_statement_{claim_id}")
    if regroup[1].button("Split this claim into its own canonical claim", key="claim_split",
                         icon=":material/call_split:"):
        try:
            with ui.writing() as session:
                review.split_claim(session=session, user=user, claim_id=claim_id,
                                   expected_version=ctx.version, statement=statement)
        except SubstantiateError as e:
            ui.show_error(e)
            st.stop()
        ui.flash("success", f"Claim #{claim_id} now has a canonical claim of its own.")
        st.rerun()
    merge = st.columns(2, vertical_alignment="bottom")
    target = merge[0].number_input("Canonical claim to merge this one into (its number)",
                                   min_value=1, step=1, value=None,
                                   key=f"claim_merge_target_{claim_id}")
    if merge[1].button(f"Merge canonical claim #{ctx.canonical_id} into it", key="claim_merge",
                       icon=":material/call_merge:"):
        if target is None:
            st.error("Enter the number of the canonical claim to merge into.")
            st.stop()
        try:
            with ui.writing() as session:
                moved = review.merge_groups(session=session, user=user,
                                            source_id=ctx.canonical_id, target_id=int(target))
                n_moved = len(moved)
        except SubstantiateError as e:
            ui.show_error(e)
            st.stop()
        ui.flash("success", f"{n_moved} claim(s) moved into canonical claim #{int(target)}.")
        st.rerun()
