"""Linking claims to evidence: origins, citation fit, indirectness, certainty, idempotence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, linking
from evidence.models import Assessment, AuditEvent, Citation, Claim, EvidenceLink, Study
from ingest.load import upsert_studies
from ingest.pubmed_xml import parse_pubmed_bytes
from substantiate import jobs
from tests.pubmed_records import (
    ASTHMA_STUDY,
    EATING_DISORDER_REVIEW,
    ESKETAMINE_SPRAY,
    IV_KETAMINE_RCT,
    RETRACTED_STUDY,
    article_set,
    article_xml,
)

ARTICLE = f"""Ketamine for Depression at Our Clinic
Ketamine infusions can relieve symptoms of treatment-resistant depression within 24 hours.
Intravenous ketamine is given as an infusion over 40 minutes.
Side effects such as dissociation and raised blood pressure are transient.
Ketamine also relieves chronic pain in fibromyalgia patients.
Our friendly staff will welcome you.
References: PMID: {IV_KETAMINE_RCT["pmid"]}; https://doi.org/{EATING_DISORDER_REVIEW["doi"]}
"""


def _load(engine: Engine, *records: dict[str, object]) -> None:
    data = article_set(*(article_xml(**r) for r in records))  # type: ignore[arg-type]
    with Session(engine) as s:
        upsert_studies(s, parse_pubmed_bytes(data), raw_record_id=None)
        s.commit()


def _resolve_all(engine: Engine) -> None:
    """Resolve the article's citations as the PubMed step would (tested elsewhere)."""
    with Session(engine) as s:
        for c in s.exec(select(Citation).where(Citation.kind != "web")).all():
            c.status = "resolved"
            c.pmid = c.identifier if c.kind == "pmid" else str(EATING_DISORDER_REVIEW["pmid"])
            s.add(c)
        s.commit()


@pytest.fixture
def linked(engine: Engine, tmp_path: Path) -> Engine:
    (tmp_path / "post.txt").write_text(ARTICLE)
    jobs.ingest_articles(engine, [str(tmp_path / "post.txt")])
    _load(engine, IV_KETAMINE_RCT, EATING_DISORDER_REVIEW, ESKETAMINE_SPRAY, RETRACTED_STUDY)
    _resolve_all(engine)
    linking.link_all(engine)
    return engine


def _claim(s: Session, fragment: str) -> Claim:
    return s.exec(select(Claim).where(col(Claim.text).contains(fragment))).one()


def _links(s: Session, claim: Claim) -> dict[str, EvidenceLink]:
    rows = s.exec(select(EvidenceLink, Study.pmid).join(Study)
                  .where(EvidenceLink.claim_id == claim.id)).all()
    return {pmid: link for link, pmid in rows}


def test_cited_rct_fits_and_eating_disorder_review_is_flagged(linked: Engine) -> None:
    with Session(linked) as s:
        claim = _claim(s, "within 24 hours")
        links = _links(s, claim)
        rct = links[str(IV_KETAMINE_RCT["pmid"])]
        assert rct.origin == "cited" and rct.fits is True and rct.rank == 1
        assert any("24 hours" in sent[2] for sent in rct.explanation["sentences"])
        ed = links[str(EATING_DISORDER_REVIEW["pmid"])]
        assert ed.origin == "cited" and ed.fits is False
        assert "no_fitting_citation" not in claim.flags
        # A citation that addresses nothing is a fact about the citation, not each claim.
        assert all("cited_not_addressing" not in c.flags for c in s.exec(select(Claim)).all())
        cit = s.exec(select(Citation).where(Citation.kind == "doi")).one()
        assert cit.flags == ["addresses_no_claim"]
        pmid_cit = s.exec(select(Citation).where(Citation.kind == "pmid")).one()
        assert pmid_cit.flags == []


def test_local_evidence_found_without_citation(linked: Engine) -> None:
    with Session(linked) as s:
        links = _links(s, _claim(s, "within 24 hours"))
        spray = links[str(ESKETAMINE_SPRAY["pmid"])]
        assert spray.origin == "local"
        # IV ketamine claim vs esketamine nasal spray study: indirect, and says why.
        dims = {m["dimension"] for m in spray.indirectness["mismatches"]}
        assert {"intervention", "route"} <= dims and spray.indirect


def test_retracted_evidence_flag_and_certainty_suggestion(linked: Engine) -> None:
    with Session(linked) as s:
        claim = _claim(s, "within 24 hours")
        assert "retracted_evidence" in claim.flags
        assert claim.suggested_certainty == "high"  # a fitting RCT, retracted study excluded
        assert any("retract" in r.lower() for r in claim.suggestion_reasons)


def test_claim_with_nothing_relevant_is_flagged(linked: Engine) -> None:
    with Session(linked) as s:
        claim = _claim(s, "fibromyalgia")
        assert {"no_fitting_citation", "no_evidence"} <= set(claim.flags)
        assert claim.suggested_certainty == "very_low"


def test_relink_is_idempotent_and_keeps_manual_and_assessed_links(linked: Engine) -> None:
    with Session(linked) as s:
        claim = _claim(s, "Side effects")
        before = {pmid: (ln.origin, ln.version) for pmid, ln in _links(s, claim).items()}
        n_events = len(s.exec(select(AuditEvent)).all())
    summary = linking.link_all(linked)
    assert summary.links_created == 0 and summary.links_removed == 0
    with Session(linked) as s:
        assert {p: (ln.origin, ln.version) for p, ln in _links(s, claim).items()} == before
        assert len(s.exec(select(AuditEvent)).all()) == n_events  # nothing changed, no events
    # A reviewer's manual link to a study the ranker would never pick must survive.
    _load(linked, ASTHMA_STUDY)
    with Session(linked) as s:
        other = s.exec(select(Study).where(Study.pmid == ASTHMA_STUDY["pmid"])).one()
        s.add(EvidenceLink(claim_id=claim.id, study_id=other.id, origin="manual",  # type: ignore[arg-type]
                           created_by="alice"))
        s.commit()
    linking.link_all(linked, local_k=0)  # no local candidates at all now
    with Session(linked) as s:
        manual = s.exec(select(EvidenceLink).where(EvidenceLink.origin == "manual")).all()
        assert len(manual) == 1
        assert audit.verify(s).ok


def test_assessed_link_is_never_removed(linked: Engine) -> None:
    from tests.factories import make_user

    with Session(linked) as s:
        claim = _claim(s, "within 24 hours")
        spray = _links(s, claim)[str(ESKETAMINE_SPRAY["pmid"])]
        user = make_user(s, username="rev", role="reviewer")
        s.add(Assessment(link_id=spray.id, reviewer_id=user.id, stance="supports"))  # type: ignore[arg-type]
        s.commit()
        spray_id = spray.id
    summary = linking.link_all(linked, local_k=0)
    assert summary.links_removed > 0  # unassessed local links went
    with Session(linked) as s:
        assert s.get(EvidenceLink, spray_id) is not None


def test_discovery_fetches_pubmed_hits_per_canonical_claim(engine: Engine, tmp_path: Path,
                                                           fake_eutils) -> None:  # type: ignore[no-untyped-def]
    from evidence.match import build_pubmed_query
    from evidence.models import CanonicalClaim
    from ingest import pubmed

    (tmp_path / "post.txt").write_text(ARTICLE)
    jobs.ingest_articles(engine, [str(tmp_path / "post.txt")])
    with Session(engine) as s:
        target = _claim(s, "within 24 hours")
        cc = s.get(CanonicalClaim, target.canonical_id)
        assert cc is not None
        query = build_pubmed_query(cc.statement, category=cc.category)
    fake_eutils.set_search(query, [str(IV_KETAMINE_RCT["pmid"])])
    fake_eutils.add_record(str(IV_KETAMINE_RCT["pmid"]), article_xml(**IV_KETAMINE_RCT))  # type: ignore[arg-type]
    client = pubmed.EntrezClient("t@example.org", base_url=fake_eutils.url, max_wait=5.0)
    summary = linking.link_all(engine, discover=pubmed.discoverer(engine, client, per_claim=3))
    assert summary.discovered_pmids == 1 and not summary.problems
    with Session(engine) as s:
        links = _links(s, _claim(s, "within 24 hours"))
        assert links[str(IV_KETAMINE_RCT["pmid"])].origin == "pubmed"
        assert links[str(IV_KETAMINE_RCT["pmid"])].fits
    # Every search the discovery made is stored as provenance.
    searches = [r for r in fake_eutils.requests if r.utility == "esearch"]
    with Session(engine) as s:
        from evidence.models import RawRecord

        stored = s.exec(select(RawRecord).where(RawRecord.utility == "esearch")).all()
        assert len(stored) == len(searches) >= 1


REGULATORY = f"""Esketamine for Depression
In 2019 the FDA approved esketamine nasal spray for treatment-resistant depression.
Esketamine nasal spray relieves depressive symptoms within hours.
References: PMID: {ESKETAMINE_SPRAY["pmid"]}
"""


def test_regulatory_claim_needs_a_regulatory_source_not_a_study(engine: Engine,
                                                                 tmp_path: Path) -> None:
    from evidence import export, queries, review
    from tests.factories import make_user

    (tmp_path / "post.txt").write_text(REGULATORY)
    jobs.ingest_articles(engine, [str(tmp_path / "post.txt")])
    _load(engine, ESKETAMINE_SPRAY)
    with Session(engine) as s:
        c = s.exec(select(Citation)).one()
        c.status = "resolved"
        s.add(c)
        s.commit()
    summary = linking.link_all(engine)
    assert summary.articles[0].needs_regulatory_source == 1
    with Session(engine) as s:
        approval = _claim(s, "FDA approved")
        assert "needs_regulatory_source" in approval.flags
        link = _links(s, approval)[str(ESKETAMINE_SPRAY["pmid"])]
        assert link.fits is False
        assert any("regulatory statement (approval" in r
                   for r in link.explanation["fit_reasons"])
        # The clinical claim in the same article is fitted by the same trial.
        effect = _claim(s, "within hours")
        assert _links(s, effect)[str(ESKETAMINE_SPRAY["pmid"])].fits is True
        assert "needs_regulatory_source" not in effect.flags
        rita = make_user(s, username="rita")
        s.commit()
        review.add_claim_source(s, user=rita, claim_id=approval.id, kind="drug_label",
                                url="https://labels.example.org/spravato.pdf",
                                title="Spravato prescribing information")
        s.commit()
        s.refresh(approval)
        assert "needs_regulatory_source" not in approval.flags
    linking.link_all(engine)  # a relink keeps the answered flag answered
    with Session(engine) as s:
        assert "needs_regulatory_source" not in _claim(s, "FDA approved").flags
        assert audit.verify(s).ok
        manifest = export.export(s, out_dir=tmp_path / "out")
        assert queries.article_scorecard(s)["needs_regulatory_source"].tolist() == [0]
    tables = {f["table"]: f for f in manifest["files"]}
    assert tables["claim_sources"]["rows"] == 1 and tables["article_scorecard"]["rows"] == 1


def test_assessing_a_link_recomputes_the_claims_suggestion(linked: Engine) -> None:
    from evidence import review
    from tests.factories import make_user

    with Session(linked) as s:
        claim = _claim(s, "within 24 hours")
        assert (claim.suggested_certainty, claim.suggestion_basis) == ("high", "metadata")
        assert claim.suggestion_reasons[0].startswith("metadata-only suggestion")
        rct = _links(s, claim)[str(IV_KETAMINE_RCT["pmid"])]
        rita = make_user(s, username="rita")
        s.commit()
        review.save_assessment(s, user=rita, link_id=rct.id, stance="supports",
                               relevance="low")
        s.commit()
        s.refresh(claim)
        # Relevance rated low: indirect evidence, one level down, and it says why.
        assert (claim.suggested_certainty, claim.suggestion_basis) == ("moderate", "assessments")
        assert any("relevance rated low" in r for r in claim.suggestion_reasons)


def test_weaker_matches_raise_no_flag_and_count_nowhere(linked: Engine) -> None:
    with Session(linked) as s:
        claim = _claim(s, "fibromyalgia")
        links = _links(s, claim)
        assert links and not any(ln.fits for ln in links.values())  # local, weaker only
        assert "indirect_evidence" not in claim.flags and "no_evidence" in claim.flags
        assert claim.suggested_certainty == "very_low"
        ranks = sorted((ln.rank, ln.fits) for ln in _links(s, _claim(s, "within 24 hours"))
                       .values())
        # Fitting studies are ranked before weaker matches.
        fits = [f for _, f in ranks]
        assert fits == sorted(fits, reverse=True)


def test_seed_article_004_with_its_stand_in_citations(engine: Engine, tmp_path: Path,
                                                      fake_eutils) -> None:  # type: ignore[no-untyped-def]
    from ingest import pubmed
    from tests.seed_records import (
        SEED_DRUG_NAIVE_OPEN_LABEL,
        seed_article_004_text,
        serve_seed_records,
    )

    (tmp_path / "004.txt").write_text(seed_article_004_text())
    jobs.ingest_articles(engine, [str(tmp_path / "004.txt")])
    serve_seed_records(fake_eutils)
    client = pubmed.EntrezClient("t@example.org", base_url=fake_eutils.url, max_wait=5.0)
    jobs.ingest_pubmed(engine, client)
    summary = linking.link_all(engine)
    [fit] = summary.articles
    # The three eating-disorder stand-ins address no claim; they are flagged on the
    # citation and counted on the article, not repeated on every claim.
    assert fit.cited_not_addressing == ["90000101", "90000102", "90000103"]
    assert fit.needs_regulatory_source == 2
    naive = str(SEED_DRUG_NAIVE_OPEN_LABEL["pmid"])
    with Session(engine) as s:
        flagged = s.exec(select(Citation).where(col(Citation.flags).is_not(None))).all()
        assert sorted(c.pmid for c in flagged if c.flags == ["addresses_no_claim"]) == [
            "90000101", "90000102", "90000103"]
        study = s.exec(select(Study).where(Study.pmid == naive)).one()
        assert (study.design, study.evidence_level) == ("case_series", "4")
        bipolar = _claim(s, "Bipolar Depression")
        assert not any(ln.fits for ln in _links(s, bipolar).values())
        fda = _claim(s, "the FDA approved esketamine")
        assert "needs_regulatory_source" in fda.flags
        assert not any(ln.fits for ln in _links(s, fda).values())
        mdd = _claim(s, "Particularly effective for patients who have not found relief")
        link = _links(s, mdd)[naive]
        assert link.fits and link.indirect
        assert {"dimension": "population", "claim_terms": ["treatment-resistant depression"],
                "study_terms": ["drug-naive patients"], "blocking": False} in (
            link.indirectness["mismatches"])
        assert mdd.suggested_certainty == "very_low"
        assert any("no control group" in r for r in mdd.suggestion_reasons)
