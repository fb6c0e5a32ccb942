"""Surveillance: re-fetch linked records, re-open decided claims, expire verdicts, find new
evidence. Against the fake E-utilities server over loopback, on SQLite and PostgreSQL.

Every record here is hand-written and synthetic (PMIDs 90000000 and up, DOIs under
10.5555/).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from evidence import audit, queries, report, review, surveillance
from evidence.db import session_scope
from evidence.errors import NCBIUnavailable
from evidence.match import build_pubmed_query
from evidence.models import (
    AuditEvent,
    CanonicalClaim,
    Claim,
    EvidenceLink,
    RawRecord,
    Study,
    Verdict,
)
from ingest import pubmed
from ingest.entrez import EntrezClient
from ingest.surveil import surveil
from substantiate import jobs
from tests._cli import run_cli
from tests.factories import make_article, make_assessment, make_claim, make_link, make_user
from tests.fake_eutils import FakeEutils, Fault
from tests.pubmed_records import article_xml

TEXT = ("Ketamine infusions for depression\n\n"
        "Intravenous ketamine relieves treatment-resistant depression within hours.\n\n"
        "Our clinic also offers group therapy.\n")
SENTENCE = "Intravenous ketamine relieves treatment-resistant depression within hours."
RCT: dict[str, Any] = dict(
    title="Intravenous ketamine for treatment-resistant depression: a randomized "
          "placebo-controlled trial",
    abstract="Adults with treatment-resistant depression received intravenous ketamine or "
             "placebo infusions. Depressive symptoms improved within 24 hours of the first "
             "ketamine infusion compared with placebo.",
    publication_types=("Journal Article", "Randomized Controlled Trial"),
    mesh=("Humans", "Ketamine", "Depressive Disorder, Treatment-Resistant"),
)
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def client_for(server: FakeEutils, **kwargs: Any) -> EntrezClient:
    options: dict[str, Any] = {"backoff_base": 0.05, "max_wait": 5.0}
    options.update(kwargs)
    return EntrezClient("test@example.org", base_url=server.url, **options)


def serve(server: FakeEutils, pmid: str, **fields: Any) -> None:
    values = {**RCT, **fields}
    values.setdefault("doi", f"10.5555/surveil.{pmid}")
    server.add_record(pmid, article_xml(pmid, **values))


def decide(engine: Engine, server: FakeEutils, pmids: list[str], *,
           stance: str = "supports") -> tuple[int, int, int]:
    """Fetch ``pmids``, link them to one claim, assess them and record a final verdict.

    Returns (claim id, adjudicator id, canonical id).
    """
    client = client_for(server)
    pubmed.fetch_studies(engine, client, pmids)
    with session_scope(engine) as s:
        article = make_article(s, text=TEXT)
        cc = CanonicalClaim(statement=SENTENCE, category="efficacy")
        s.add(cc)
        s.flush()
        start = TEXT.index(SENTENCE)
        assert article.id is not None and cc.id is not None
        claim = Claim(article_id=article.id, start=start, end=start + len(SENTENCE),
                      text=SENTENCE, category="efficacy", checkworthiness=0.9,
                      canonical_id=cc.id)
        s.add(claim)
        s.flush()
        for pmid in pmids:
            study = s.exec(select(Study).where(Study.pmid == pmid)).one()
            assert claim.id is not None and study.id is not None
            s.add(EvidenceLink(claim_id=claim.id, study_id=study.id, origin="cited",
                               score=5.0, rank=1, fits=True))
        adj = make_user(s, role="adjudicator")
        ids = (claim.id, adj.id, cc.id)
    claim_id, adj_id, cc_id = ids
    assert claim_id is not None and adj_id is not None and cc_id is not None
    with session_scope(engine) as s:
        for link in s.exec(select(EvidenceLink).where(EvidenceLink.claim_id == claim_id)):
            assert link.id is not None
            review.save_assessment(s, user=adj_id, link_id=link.id, stance=stance,
                                   relevance="high")
    final(engine, claim_id, adj_id)
    return claim_id, adj_id, cc_id


def final(engine: Engine, claim_id: int, adj_id: int) -> None:
    with session_scope(engine) as s:
        claim = s.get(Claim, claim_id)
        assert claim is not None
        suggested = review.suggestion_for(s, claim=claim, user=None, kind="final")
        verdict = s.exec(select(Verdict).where(Verdict.claim_id == claim_id,
                                               Verdict.kind == "final")).first()
        review.save_final_verdict(
            s, user=adj_id, claim_id=claim_id, substantiation="substantiated",
            certainty=suggested.level if suggested else "low", action="approve",
            rationale="as suggested", expected_version=verdict.version if verdict else None)


def claim_row(engine: Engine, claim_id: int) -> Claim:
    with Session(engine) as s:
        claim = s.get(Claim, claim_id)
        assert claim is not None
        return claim


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {"audit": s.exec(select(func.count()).select_from(AuditEvent)).one(),
                "raw": s.exec(select(func.count()).select_from(RawRecord)).one(),
                "links": s.exec(select(func.count()).select_from(EvidenceLink)).one()}


# --------------------------------------------------------------------------- rules


def test_compare_names_each_kind_of_change() -> None:
    before = {"is_retracted": False, "has_expression_of_concern": False,
              "has_erratum": False, "comments_corrections": [], "title": "A trial",
              "abstract": "Text.", "deleted": False}
    assert surveillance.compare(before, dict(before)) == ((), ())
    assert surveillance.compare(before, {**before, "title": "A  trial"}) == ((), ())
    assert surveillance.compare(before, {**before, "abstract": "New text."})[0] == ("changed",)
    assert surveillance.compare(before, None)[0] == ("deleted",)
    assert surveillance.compare({**before, "deleted": True}, None)[0] == ()
    retracted = {**before, "is_retracted": True, "comments_corrections": [
        {"ref_type": "RetractionIn", "pmid": "90000999", "ref_source": "J Test. 2026 May 2"}]}
    codes, notices = surveillance.compare(before, retracted)
    assert codes == ("retracted",)
    assert notices == ({"code": "retracted", "pmid": "90000999",
                        "source": "J Test. 2026 May 2"},)
    # A second erratum is news even though the study already had one.
    one = {**before, "has_erratum": True, "comments_corrections": [
        {"ref_type": "ErratumIn", "pmid": "90000998", "ref_source": "x"}]}
    two = {**one, "comments_corrections": [*one["comments_corrections"],
                                           {"ref_type": "ErratumIn", "pmid": "90000997",
                                            "ref_source": "y"}]}
    assert surveillance.compare(one, two)[0] == ("erratum",)
    concern = {**before, "has_expression_of_concern": True}
    assert surveillance.compare(before, concern)[0] == ("expression_of_concern",)


def test_review_by_adds_calendar_months() -> None:
    assert surveillance.add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(
        2026, 2, 28, tzinfo=UTC)
    assert surveillance.review_by(datetime(2025, 12, 2, 8, tzinfo=UTC), 12) == datetime(
        2026, 12, 2, 8, tzinfo=UTC)
    assert surveillance.add_months(datetime(2024, 2, 29), 12) == datetime(2025, 2, 28)


# --------------------------------------------------------------------------- runs


def test_retraction_on_second_fetch_reopens_the_claim(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    serve(fake_eutils, "90000401")
    serve(fake_eutils, "90000402", title="Ketamine infusions for treatment-resistant "
          "depression in a clinic cohort: an observational study",
          abstract="We followed adults with treatment-resistant depression given "
                   "intravenous ketamine infusions in a clinic; depressive symptoms fell "
                   "within hours of the first infusion.",
          publication_types=("Journal Article", "Observational Study"))
    claim_id, _, _ = decide(engine, fake_eutils, ["90000401", "90000402"])
    before = claim_row(engine, claim_id)
    assert before.status == "final"
    with Session(engine) as s:
        certainty_before = queries.certainty_suggestion(s, claim_id, None)
    assert certainty_before is not None

    first = surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    assert first.studies_checked == 2 and first.changes == [] and first.exit_code == 0
    assert claim_row(engine, claim_id).status == "final"

    serve(fake_eutils, "90000401", retracted_in="90000499",
          publication_types=("Journal Article", "Randomized Controlled Trial",
                             "Retracted Publication"))
    raws = counts(engine)["raw"]
    second = surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    assert [c.as_dict()["changes"] for c in second.changes] == [["retracted"]]
    assert second.exit_code == 3 and [c.pmid for c in second.alerts] == ["90000401"]
    assert counts(engine)["raw"] == raws + 1  # the response carrying the new version only
    claim = claim_row(engine, claim_id)
    assert claim.status == "reopened"
    assert [r["code"] for r in claim.reopen_reasons] == ["retracted"]
    text = claim.reopen_reasons[0]["text"]
    assert text.startswith("PMID 90000401 retracted (notice PMID 90000499")
    assert "found on 2026-12-02" in text and "it was supporting evidence" in text
    assert "retracted_evidence" in claim.flags
    with Session(engine) as s:
        study = s.exec(select(Study).where(Study.pmid == "90000401")).one()
        assert study.is_retracted
        listed = queries.studies(s)
        assert bool(listed.set_index("pmid").loc["90000401", "retracted"]) is True
        after = queries.certainty_suggestion(s, claim_id, None)
        assert after is not None
        assert any("PMID 90000401" in r and "retracted" in r for r in after.reasons)
        # The previous verdict is still there; the re-opening is audited with before/after.
        assert s.exec(select(Verdict).where(Verdict.claim_id == claim_id,
                                            Verdict.kind == "final")).one()
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "claim.reopen")).one()
        assert event.before is not None and event.after is not None
        assert event.before["status"] == "final" and event.after["status"] == "reopened"
        assert audit.verify(s).ok
    # Certainty drops: the retracted study no longer counts.
    order = ["very_low", "low", "moderate", "high"]
    assert order.index(after.level) < order.index(certainty_before.level)

    audit_before = counts(engine)["audit"]
    third = surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    assert third.changes == [] and third.reopened == [] and third.exit_code == 0
    assert len(claim_row(engine, claim_id).reopen_reasons) == 1
    assert counts(engine)["audit"] == audit_before  # the run row is apart from the engine
    # A reviewer's review keeps the claim re-opened; a new final verdict closes it again.
    with session_scope(engine) as s:
        reviewer = make_user(s, role="reviewer")
        rid = reviewer.id
    with session_scope(engine) as s:
        review.save_verdict(s, user=rid, claim_id=claim_id, substantiation="unsubstantiated",
                            certainty="very_low", action="remove", rationale="retracted")
    assert claim_row(engine, claim_id).status == "reopened"


def test_new_final_verdict_closes_a_reopened_claim(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    serve(fake_eutils, "90000411")
    claim_id, adj_id, _ = decide(engine, fake_eutils, ["90000411"])
    serve(fake_eutils, "90000411", abstract="Adults with treatment-resistant depression "
          "received intravenous ketamine or placebo. The abstract was revised.")
    report = surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    assert [c.changes for c in report.changes] == [("changed",)]
    assert report.exit_code == 3  # a claim was re-opened, though the change is no alert
    assert report.alerts == []
    assert claim_row(engine, claim_id).status == "reopened"
    final(engine, claim_id, adj_id)
    claim = claim_row(engine, claim_id)
    assert claim.status == "final" and claim.reopen_reasons == [] and claim.reopened_at is None


def test_undecided_claims_are_flagged_not_reopened(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    serve(fake_eutils, "90000421")
    pubmed.fetch_studies(engine, client_for(fake_eutils), ["90000421"])
    with session_scope(engine) as s:
        article = make_article(s, text=TEXT)
        start = TEXT.index(SENTENCE)
        assert article.id is not None
        claim = Claim(article_id=article.id, start=start, end=start + len(SENTENCE),
                      text=SENTENCE, category="efficacy")
        s.add(claim)
        s.flush()
        study = s.exec(select(Study).where(Study.pmid == "90000421")).one()
        assert claim.id is not None and study.id is not None
        s.add(EvidenceLink(claim_id=claim.id, study_id=study.id, origin="cited", fits=True))
        claim_id = claim.id
    serve(fake_eutils, "90000421", retracted_in="90000498")
    report = surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    assert report.reopened == [] and report.exit_code == 3  # an alert all the same
    claim = claim_row(engine, claim_id)
    assert claim.status == "unreviewed" and "retracted_evidence" in claim.flags


def test_outage_mid_run_applies_nothing_and_the_next_run_completes(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    serve(fake_eutils, "90000431")
    serve(fake_eutils, "90000432")
    claim_id, _, _ = decide(engine, fake_eutils, ["90000431", "90000432"])
    serve(fake_eutils, "90000431", retracted_in="90000497")
    serve(fake_eutils, "90000432", abstract="A rewritten abstract about ketamine.")
    before = counts(engine)

    def fail_from_now_on(_: int) -> None:  # the first batch went through; NCBI goes down
        fake_eutils.inject(Fault.server_error(503), times=50)

    with pytest.raises(NCBIUnavailable):
        surveil(engine, client_for(fake_eutils, max_wait=1.0, max_retries=2),
                discover=False, now=NOW, batch_size=1, on_batch=fail_from_now_on)
    assert counts(engine) == before
    assert claim_row(engine, claim_id).status == "final"
    with Session(engine) as s:
        assert not s.exec(select(Study).where(Study.pmid == "90000431")).one().is_retracted
    fake_eutils.clear_faults()
    report = surveil(engine, client_for(fake_eutils), discover=False, now=NOW, batch_size=1)
    assert sorted(c.pmid for c in report.changes) == ["90000431", "90000432"]
    claim = claim_row(engine, claim_id)
    assert claim.status == "reopened"
    assert sorted(r["code"] for r in claim.reopen_reasons) == ["changed", "retracted"]


def test_deleted_record_reopens(engine: Engine, fake_eutils: FakeEutils) -> None:
    serve(fake_eutils, "90000441")
    claim_id, _, _ = decide(engine, fake_eutils, ["90000441"])
    fake_eutils.add_missing("90000441")
    report = surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    assert [c.changes for c in report.changes] == [("deleted",)]
    claim = claim_row(engine, claim_id)
    assert claim.status == "reopened"
    assert "deleted from PubMed" in claim.reopen_reasons[0]["text"]
    with Session(engine) as s:
        assert s.exec(select(Study).where(Study.pmid == "90000441")).one().deleted


def test_since_sends_the_date_filter_and_fetches_only_modified_records(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    serve(fake_eutils, "90000451")
    serve(fake_eutils, "90000452")
    claim_id, _, _ = decide(engine, fake_eutils, ["90000451", "90000452"])
    serve(fake_eutils, "90000452", retracted_in="90000496")
    fake_eutils.set_dates("90000452", modified="2026/11/20")
    fake_eutils.set_dates("90000451", modified="2026/10/01")
    fake_eutils.clear_log()
    report = surveil(engine, client_for(fake_eutils), since=date(2026, 11, 1),
                     discover=False, now=NOW)
    sent = fake_eutils.requests
    assert [r.utility for r in sent] == ["epost", "esearch", "efetch"]
    search = sent[1]
    assert search.param("datetype") == "mdat"
    assert search.param("mindate") == "2026/11/01" and search.param("maxdate") == "2026/12/02"
    assert search.param("term") == "#1" and search.param("WebEnv")
    assert sorted(sent[0].ids) == ["90000451", "90000452"]
    assert report.records_fetched == 1  # only the modified record
    assert [c.pmid for c in report.changes] == ["90000452"]
    assert claim_row(engine, claim_id).status == "reopened"
    assert report.as_dict()["since"] == "2026-11-01"


def test_expiry_with_a_frozen_clock(engine: Engine, fake_eutils: FakeEutils) -> None:
    serve(fake_eutils, "90000461")
    claim_id, adj_id, _ = decide(engine, fake_eutils, ["90000461"])
    with Session(engine) as s:
        decided = s.exec(select(Verdict.updated_at).where(
            Verdict.claim_id == claim_id, Verdict.kind == "final")).one()
    decided = decided if decided.tzinfo else decided.replace(tzinfo=UTC)
    due = surveillance.review_by(decided, 12)
    early = surveil(engine, client_for(fake_eutils), discover=False,
                    now=due - timedelta(days=1))
    assert early.expired == [] and early.exit_code == 0
    late = surveil(engine, client_for(fake_eutils), discover=False,
                   now=due + timedelta(seconds=1))
    assert [r.claim_id for r in late.expired] == [claim_id] and late.exit_code == 3
    claim = claim_row(engine, claim_id)
    assert claim.status == "reopened"
    assert claim.reopen_reasons[0]["code"] == "expired"
    assert f"review-by date {due.date().isoformat()}" in claim.reopen_reasons[0]["text"]
    with Session(engine) as s:
        register = queries.claims_register(s).set_index("claim_id")
    assert register.loc[claim_id, "review_by"] == due
    assert register.loc[claim_id, "status"] == "reopened"
    assert register.loc[claim_id, "reopen_reasons"] == [claim.reopen_reasons[0]["text"]]
    with Session(engine) as s:
        built = report.build(s, article_id=claim.article_id, generated_by="test")
    section = next(c for c in built.claims if c.claim_id == claim_id)
    assert section.review_by == due.replace(microsecond=0).isoformat()
    assert section.reopened == [claim.reopen_reasons[0]["text"]]
    page = report.render_html(built)
    assert "Re-opened" in page and "passed its review-by date" in page
    again = surveil(engine, client_for(fake_eutils), discover=False,
                    now=due + timedelta(days=2))
    assert again.expired == []  # re-opened once
    final(engine, claim_id, adj_id)  # recorded again today: a new review-by date
    assert claim_row(engine, claim_id).status == "final"
    shorter = surveil(engine, client_for(fake_eutils), discover=False,
                      now=datetime.now(UTC) + timedelta(days=1))
    assert shorter.expired == []


def test_new_evidence_is_linked_and_flagged(engine: Engine, fake_eutils: FakeEutils) -> None:
    serve(fake_eutils, "90000471")
    claim_id, _, _ = decide(engine, fake_eutils, ["90000471"])
    query = build_pubmed_query(SENTENCE, category="efficacy")
    # A fitting new trial, a fitting narrative review (not a design surveillance links),
    # an off-topic trial, and an old trial added before the claim was decided.
    serve(fake_eutils, "90000472", title="Ketamine infusions in treatment-resistant "
          "depression: a multicentre randomized controlled trial")
    serve(fake_eutils, "90000473", title="Ketamine for treatment-resistant depression: a "
          "narrative review", publication_types=("Journal Article", "Review"))
    serve(fake_eutils, "90000474", title="Inhaled budesonide in mild asthma: a randomized "
          "trial", abstract="Asthma exacerbations fell with inhaled budesonide.",
          mesh=("Humans", "Asthma", "Budesonide"))
    serve(fake_eutils, "90000475")
    fake_eutils.set_search(query, ["90000472", "90000473", "90000474", "90000475"])
    for pmid in ("90000472", "90000473", "90000474"):
        fake_eutils.set_dates(pmid, added=NOW.strftime("%Y/%m/%d"))
    fake_eutils.set_dates("90000475", added="2020/01/01")
    fake_eutils.clear_log()
    report = surveil(engine, client_for(fake_eutils), now=NOW)
    searches = [r for r in fake_eutils.requests if r.param("term") == query]
    assert len(searches) == 1 and searches[0].param("datetype") == "edat"
    assert [(n.claim_id, n.pmid, n.design) for n in report.new_evidence] == [
        (claim_id, "90000472", "rct")]
    assert report.exit_code == 3
    claim = claim_row(engine, claim_id)
    assert claim.status == "final" and "new_evidence" in claim.flags
    with Session(engine) as s:
        link = s.exec(select(EvidenceLink).join(Study).where(
            EvidenceLink.claim_id == claim_id, Study.pmid == "90000472")).one()
        assert link.origin == "surveillance" and link.fits
    again = surveil(engine, client_for(fake_eutils), now=NOW)
    assert again.new_evidence == [] and again.exit_code == 0
    # A re-link keeps the surveillance link; assessing it clears the flag.
    jobs.link(engine)
    with Session(engine) as s:
        kept = s.exec(select(EvidenceLink).where(col(EvidenceLink.id) == link.id)).one()
        assert kept.origin == "surveillance"
    assert "new_evidence" in claim_row(engine, claim_id).flags
    with session_scope(engine) as s:
        reviewer = make_user(s, role="reviewer")
        rid = reviewer.id
    with session_scope(engine) as s:
        assert link.id is not None
        review.save_assessment(s, user=rid, link_id=link.id, stance="supports",
                               relevance="high")
    assert "new_evidence" not in claim_row(engine, claim_id).flags


def test_surveillance_runs_are_recorded_for_the_dashboard(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    serve(fake_eutils, "90000481")
    decide(engine, fake_eutils, ["90000481"])
    jobs.surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    serve(fake_eutils, "90000481", retracted_in="90000495")
    jobs.surveil(engine, client_for(fake_eutils), discover=False, now=NOW)
    with Session(engine) as s:
        runs = queries.surveillance_runs(s)
    assert list(runs["retracted"]) == [0, 1]
    assert list(runs["claims_reopened"]) == [0, 1]
    assert list(runs["status"]) == ["ok", "ok"]



def test_cli_surveil_exit_codes_and_json(
    migrated_eutils: Engine, fake_eutils: FakeEutils, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    engine = migrated_eutils
    serve(fake_eutils, "90000491")
    claim_id, _, _ = decide(engine, fake_eutils, ["90000491"])
    code, out, err = run_cli(monkeypatch, capsys, "surveil", "--no-discover", "--json")
    assert code == 0, err
    assert json.loads(out)["needs_attention"] is False
    serve(fake_eutils, "90000491", retracted_in="90000494")
    code, out, _ = run_cli(monkeypatch, capsys, "surveil", "--no-discover")
    assert code == 3
    assert "PMID 90000491: retracted" in out and f"claim {claim_id}: PMID 90000491" in out
    assert "needs attention (exit 3)" in out
    code, out, err = run_cli(monkeypatch, capsys, "surveil", "--since", "last week")
    assert code == 1 and err.strip().count("\n") == 0 and "YYYY-MM-DD" in err


def test_an_assessed_weak_match_that_is_retracted_reopens_and_flags(engine: Engine) -> None:
    with session_scope(engine) as s:
        claim = make_claim(s, status="final")
        weak = make_link(s, claim=claim, fits=False)
        unread = make_link(s, claim=claim, fits=False)
        reviewer = make_user(s, role="reviewer")
        make_assessment(s, link=weak, reviewer=reviewer, stance="contradicts",
                        relevance="medium")
        studies = [s.get(Study, ln.study_id) for ln in (weak, unread)]
        for study in studies:
            assert study is not None
            study.is_retracted = True
            s.add(study)
        changes = [surveillance.StudyChange(st.pmid, int(st.id or 0), ("retracted",))
                   for st in studies if st is not None]
        reopened, refreshed = surveillance.reopen_for_changes(s, changes, actor="test",
                                                              now=NOW)
        claim_id = claim.id
        weak_pmid = studies[0].pmid if studies[0] else ""
    assert refreshed == [claim_id]
    # Only the study a reviewer read bears on the decision; the unread weak match does not.
    assert [r["pmid"] for r in reopened[0].reasons] == [weak_pmid]
    assert "it was contradicting evidence" in reopened[0].reasons[0]["text"]
    assert "retracted_evidence" in claim_row(engine, claim_id).flags
