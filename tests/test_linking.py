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
    from evidence import crud

    with Session(linked) as s:
        claim = _claim(s, "within 24 hours")
        spray = _links(s, claim)[str(ESKETAMINE_SPRAY["pmid"])]
        user = crud.add_user(session=s, username="rev", role="reviewer", password="password1")
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
