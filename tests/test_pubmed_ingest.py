"""PubMed ingestion end to end: real HTTP to the fake E-utilities server, real databases."""

from __future__ import annotations

import gzip
import json
import logging
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, db
from evidence.models import AuditEvent, Citation, RawRecord, Study
from ingest import pubmed
from ingest.load import raw_body
from substantiate import cli, jobs
from tests.fake_eutils import FakeEutils, Fault
from tests.pubmed_records import IV_KETAMINE_RCT, article_set, article_xml
from tests.seed_records import (
    SEED_CASE_SERIES,
    SEED_DRUG_NAIVE_OPEN_LABEL,
    SEED_NARRATIVE_REVIEW,
    serve_seed_records,
    write_seed_corpus,
)


def _client(server: FakeEutils, **kw: object) -> pubmed.EntrezClient:
    return pubmed.EntrezClient("test@example.org", base_url=server.url, max_wait=5.0,
                               backoff_base=0.05, **kw)  # type: ignore[arg-type]


@pytest.fixture
def seeded(engine: Engine, tmp_path: Path) -> Engine:
    """A database holding the five seed articles, article 004 citing the synthetic stand-ins.

    The real records article 004 cites cannot be fetched here, and no test may put invented
    content under their identifiers; see ``tests/seed_records.py``.
    """
    jobs.ingest_articles(engine, [str(write_seed_corpus(tmp_path / "articles"))])
    return engine


def test_resolves_and_fetches_seed_citations(seeded: Engine, fake_eutils: FakeEutils) -> None:
    serve_seed_records(fake_eutils)
    summary = jobs.ingest_pubmed(seeded, _client(fake_eutils))
    assert summary.problems == []
    assert summary.resolved == {"resolved": 4}
    assert summary.fetched.inserted == 4
    with Session(seeded) as s:
        cites = {c.identifier: c for c in s.exec(select(Citation)).all()}
        assert cites["10.5555/seed.1"].pmid == SEED_CASE_SERIES["pmid"]
        assert cites["PMC90000104"].pmid == SEED_DRUG_NAIVE_OPEN_LABEL["pmid"]
        assert all(c.status == "resolved" for c in cites.values() if c.kind != "web")
        pmid = SEED_NARRATIVE_REVIEW["pmid"]
        study = s.exec(select(Study).where(Study.pmid == pmid)).one()
        assert study.design == "narrative_review" and study.evidence_level == "5"
        raw = s.get(RawRecord, study.raw_record_id)
        assert raw is not None and raw.utility == "efetch"
        assert pmid.encode() in raw_body(raw)  # type: ignore[union-attr]
        # Every response is stored: the resolution requests too.
        utilities = {r.utility for r in s.exec(select(RawRecord)).all()}
        assert {"efetch", "esearch", "elink"} <= utilities
        assert audit.verify(s).ok


def test_doi_resolving_to_a_cited_pmid_is_fetched_once(engine: Engine, tmp_path: Path,
                                                       fake_eutils: FakeEutils) -> None:
    pmid, doi = IV_KETAMINE_RCT["pmid"], IV_KETAMINE_RCT["doi"]
    post = tmp_path / "post.txt"
    post.write_text(f"Ketamine relieves depression within hours.\nSee PMID: {pmid} and "
                    f"https://doi.org/{doi}\n")
    jobs.ingest_articles(engine, [str(post)])
    fake_eutils.add_record(pmid, article_xml(**IV_KETAMINE_RCT))
    fake_eutils.add_doi(doi, pmid)
    summary = jobs.ingest_pubmed(engine, _client(fake_eutils))
    assert summary.resolved == {"resolved": 2}
    assert summary.fetched.inserted == 1
    assert [r.ids for r in fake_eutils.requests if r.utility == "efetch"] == [[pmid]]


def test_rerun_serves_from_database_and_refresh_refetches(
    seeded: Engine, fake_eutils: FakeEutils
) -> None:
    serve_seed_records(fake_eutils)
    jobs.ingest_pubmed(seeded, _client(fake_eutils))
    fake_eutils.clear_log()
    again = jobs.ingest_pubmed(seeded, _client(fake_eutils))
    assert fake_eutils.requests == []
    assert again.from_cache == 4 and again.fetched.inserted == 0
    jobs.ingest_pubmed(seeded, _client(fake_eutils), pmids=[SEED_NARRATIVE_REVIEW["pmid"]],
                         refresh=True)
    assert [r.utility for r in fake_eutils.requests] == ["efetch"]


def test_newer_version_of_record_updates_study_and_is_audited(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    pmid = str(IV_KETAMINE_RCT["pmid"])
    fake_eutils.add_record(pmid, article_xml(**IV_KETAMINE_RCT))  # type: ignore[arg-type]
    jobs.ingest_pubmed(engine, _client(fake_eutils), pmids=[pmid])
    changed = dict(IV_KETAMINE_RCT, publication_types=("Journal Article",
                                                       "Retracted Publication"))
    fake_eutils.add_record(pmid, article_xml(**changed))  # type: ignore[arg-type]
    summary = jobs.ingest_pubmed(engine, _client(fake_eutils), pmids=[pmid], refresh=True)
    assert summary.fetched.updated == 1
    with Session(engine) as s:
        study = s.exec(select(Study).where(Study.pmid == pmid)).one()
        assert study.is_retracted and study.version == 2
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "study.update")).one()
        assert ev.before["is_retracted"] is False and ev.after["is_retracted"] is True
    # Same content once more: nothing changes.
    summary = jobs.ingest_pubmed(engine, _client(fake_eutils), pmids=[pmid], refresh=True)
    assert summary.fetched.unchanged == 1 and summary.fetched.updated == 0


def test_truncated_response_stores_nothing(engine: Engine, fake_eutils: FakeEutils) -> None:
    pmids = [str(90001000 + i) for i in range(30)]
    fake_eutils.inject(Fault.truncated(0.6, utility="efetch"))
    summary = jobs.ingest_pubmed(engine, _client(fake_eutils), pmids=pmids)
    assert len(summary.problems) == 1 and "PubmedArticleSet" in summary.problems[0]
    with Session(engine) as s:
        assert s.exec(select(Study)).all() == []
        assert s.exec(select(RawRecord).where(RawRecord.utility == "efetch")).all() == []
    # The next run fetches everything.
    summary = jobs.ingest_pubmed(engine, _client(fake_eutils), pmids=pmids)
    assert summary.fetched.inserted == 30 and not summary.problems


def test_network_unavailable_marks_citations_with_reason(seeded: Engine) -> None:
    client = pubmed.EntrezClient("t@example.org", base_url="http://127.0.0.1:9/eutils/",
                                 max_wait=0.5, max_retries=1, backoff_base=0.01)
    summary = jobs.ingest_pubmed(seeded, client)
    with Session(seeded) as s:
        doi = s.exec(select(Citation).where(Citation.kind == "doi")).one()
        assert doi.status == "unavailable"
        assert (doi.status_reason or "").startswith("network unavailable:")
        # The PMID citations resolve without NCBI, but their records were not fetched.
        pmids = s.exec(select(Citation).where(Citation.kind == "pmid")).all()
        assert {c.status for c in pmids} == {"unavailable"}
    assert summary.problems  # the PMIDs' fetch failed too, and says so


def test_missing_pmid_is_not_in_pubmed(seeded: Engine, fake_eutils: FakeEutils) -> None:
    serve_seed_records(fake_eutils)
    pmid = SEED_NARRATIVE_REVIEW["pmid"]
    fake_eutils.add_missing(pmid)
    summary = jobs.ingest_pubmed(seeded, _client(fake_eutils))
    assert summary.missing == [pmid]
    with Session(seeded) as s:
        c = s.exec(select(Citation).where(Citation.pmid == pmid)).one()
        assert c.status == "not_in_pubmed"


def test_api_key_never_stored_or_logged(engine: Engine, fake_eutils: FakeEutils,
                                        caplog: pytest.LogCaptureFixture) -> None:
    key = "SECRETKEY0123456789abcdef0123456789ab"
    caplog.set_level(logging.DEBUG)
    client = _client(fake_eutils, api_key=key)
    jobs.ingest_pubmed(engine, client, query="ketamine depression", max_results=5)
    assert any(r.param("api_key") == key for r in fake_eutils.requests)  # it was sent
    with Session(engine) as s:
        for raw in s.exec(select(RawRecord)).all():
            assert key not in raw.url and key not in json.dumps(raw.params)
        for ev in s.exec(select(AuditEvent)).all():
            assert key not in json.dumps([ev.before, ev.after])
    assert key not in caplog.text


def test_query_fetches_hits_and_caches_search(engine: Engine, fake_eutils: FakeEutils) -> None:
    fake_eutils.set_search("ketamine AND depression", ["90001101", "90001102"])
    summary = jobs.ingest_pubmed(engine, _client(fake_eutils), query="ketamine AND depression",
                                   max_results=2)
    assert summary.query_pmids == ["90001101", "90001102"]
    assert summary.fetched.inserted == 2
    fake_eutils.clear_log()
    jobs.ingest_pubmed(engine, _client(fake_eutils), query="ketamine AND depression",
                         max_results=2)
    assert fake_eutils.requests == []


def test_medline_bulk_load_is_idempotent_and_applies_deletes(
    engine: Engine, tmp_path: Path
) -> None:
    base = tmp_path / "base.xml.gz"
    recs = [article_xml(str(90002000 + i), title=f"Ketamine study {i}") for i in range(25)]
    base.write_bytes(gzip.compress(article_set(*recs)))
    first = jobs.ingest_medline(engine, [base], batch_size=10)
    assert first.total.inserted == 25
    again = jobs.ingest_medline(engine, [base], batch_size=10)
    assert again.skipped == 1 and again.files[0]["skipped"]  # same sha256: not parsed
    forced = jobs.ingest_medline(engine, [base], batch_size=10, force=True)
    assert forced.total.unchanged == 25 and forced.total.inserted == 0
    update_file = tmp_path / "update.xml"
    update_file.write_bytes(
        b'<?xml version="1.0"?><PubmedArticleSet>'
        + article_xml("90002001", title="Ketamine study 1 (corrected)")
        + b"<DeleteCitation><PMID Version=\"1\">90002002</PMID>"
          b"<PMID Version=\"1\">90002003</PMID></DeleteCitation></PubmedArticleSet>")
    upd = jobs.ingest_medline(engine, [update_file])
    assert (upd.total.updated, upd.total.deleted) == (1, 2)
    with Session(engine) as s:
        deleted = s.exec(select(Study.pmid).where(col(Study.deleted))).all()
        assert sorted(deleted) == ["90002002", "90002003"]
        raw = s.exec(select(RawRecord).where(RawRecord.source == "medline_file")).first()
        assert raw is not None and len(raw.sha256) == 64
        assert audit.verify(s).ok


def test_medline_truncated_file_is_a_clear_error(engine: Engine, tmp_path: Path) -> None:
    from evidence.errors import ParseError

    bad = tmp_path / "bad.xml"
    bad.write_bytes(article_set(article_xml("90002999", title="x"))[:-40])
    with pytest.raises(ParseError):
        jobs.ingest_medline(engine, [bad])


def test_medline_real_fixtures_load(engine: Engine) -> None:
    from tests._shared import shared_path

    files = [shared_path("fixtures", "medline", "test_current_medline.xml.gz"),
             shared_path("fixtures", "medline", "pubmed-29768149.xml")]
    summary = jobs.ingest_medline(engine, files)
    assert summary.total.inserted == 5
    with Session(engine) as s:
        st = s.exec(select(Study).where(Study.pmid == "29768149")).one()
        assert st.design == "rct"
        assert "Asthma" in [m["descriptor"] for m in st.mesh]


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["substantiate", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    c = capsys.readouterr()
    return code, c.out, c.err


def test_cli_ingest_pubmed_and_studies_list(monkeypatch, capsys, tmp_path: Path,
                                            fake_eutils: FakeEutils) -> None:
    target = write_seed_corpus(tmp_path / "data" / "articles")
    serve_seed_records(fake_eutils)
    monkeypatch.setenv("EUTILS_BASE_URL", fake_eutils.url)
    code, out, err = _cli(monkeypatch, capsys, "ingest", "articles", str(target))
    assert code == 0, err
    code, out, err = _cli(monkeypatch, capsys, "ingest", "pubmed", "--json")
    assert code == 0, err
    assert json.loads(out)["fetched"]["inserted"] == 4
    code, out, _ = _cli(monkeypatch, capsys, "studies", "list", "--json")
    rows = {r["pmid"]: r for r in json.loads(out)}
    assert rows["90000102"]["design"] == "narrative_review"
    assert len(rows["90000102"]["raw_sha256"]) == 64
    out_dir = tmp_path / "exp"
    code, _, err = _cli(monkeypatch, capsys, "export", "--out", str(out_dir))
    assert code == 0, err
    header = (out_dir / "studies.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["pmid", "title", "journal", "year", "doi", "pmcid"]
    cites = (out_dir / "citations.csv").read_text()
    assert "90000103" in cites and "resolved" in cites


def test_engine_fixture_uses_database(engine: Engine) -> None:
    # Guard against the suite silently running on one backend only.
    assert engine.dialect.name in ("sqlite", "postgresql")
    assert db.schema_is_current(engine)


def test_pubmed_progress_counts_pmids_against_the_pmid_total(
    seeded: Engine, fake_eutils: FakeEutils
) -> None:
    serve_seed_records(fake_eutils)
    calls: list[tuple[str, int, int | None]] = []
    jobs.ingest_pubmed(seeded, _client(fake_eutils),
                       progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    # Four citations resolve to four PMIDs, fetched in one batch.
    assert calls == [("PubMed records", 0, 4), ("PubMed records", 4, 4)]
    # Stored PMIDs count at once; the rest as their batches are stored; one total: PMIDs.
    calls.clear()
    stored, absent = SEED_NARRATIVE_REVIEW["pmid"], "90099998"
    fake_eutils.add_missing(absent)
    summary = jobs.ingest_pubmed(seeded, _client(fake_eutils), pmids=[stored, absent, stored],
                                 progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert summary.missing == [absent]
    assert calls == [("PubMed records", 0, 2), ("PubMed records", 1, 2),
                     ("PubMed records", 2, 2)]


def test_medline_progress_counts_records_per_file(engine: Engine, tmp_path: Path) -> None:
    base = tmp_path / "base.xml"
    base.write_bytes(article_set(*[article_xml(str(90051000 + i), title=f"Study {i}")
                                   for i in range(25)]))
    calls: list[tuple[str, int, int | None]] = []
    jobs.ingest_medline(engine, [base], batch_size=10,
                        progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert calls == [("base.xml", n, None) for n in (0, 10, 20, 25)]


def test_each_job_is_one_ingest_run(seeded: Engine, fake_eutils: FakeEutils,
                                    tmp_path: Path) -> None:
    from evidence.errors import ParseError
    from evidence.models import IngestRun

    serve_seed_records(fake_eutils)
    fake_eutils.inject(Fault.truncated(0.6, utility="efetch"))  # reported: the run is partial
    assert jobs.ingest_pubmed(seeded, _client(fake_eutils)).problems
    bad = tmp_path / "bad.xml"
    bad.write_bytes(article_set(article_xml("1", title="x"))[:-40])
    with pytest.raises(ParseError):
        jobs.ingest_medline(seeded, [bad])
    jobs.link(seeded)
    with Session(seeded) as s:
        runs = [(r.kind, r.status) for r in s.exec(select(IngestRun)
                                                   .order_by(col(IngestRun.id))).all()]
    assert runs == [("ingest_articles", "ok"), ("ingest_pubmed", "partial"),
                    ("ingest_medline", "error"), ("link", "ok")]
