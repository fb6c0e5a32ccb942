"""EntrezClient against the fake E-utilities server over real loopback HTTP."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from Bio import Entrez

from evidence.errors import NCBIError, NCBIUnavailable, ParseError
from ingest.entrez import (
    KEY_INTERVAL,
    NO_KEY_INTERVAL,
    EntrezClient,
    RawResponse,
)
from tests import fixtures_eutils
from tests._shared import shared_path
from tests.fake_eutils import FakeEutils, Fault, window_counts

fake_eutils = fixtures_eutils.fake_eutils  # the pytest fixture, used by name below

EMAIL = "tests@substantiate.example"
KEY = "K3Y-5ECRET-0123456789abcdef"


def client_for(server: FakeEutils, **kwargs: object) -> EntrezClient:
    options: dict[str, object] = {"backoff_base": 0.2, "max_wait": 20.0}
    options.update(kwargs)
    return EntrezClient(EMAIL, base_url=server.url, **options)  # type: ignore[arg-type]


def pmids(start: int, count: int) -> list[str]:
    return [str(n) for n in range(start, start + count)]


def arrival_gaps(server: FakeEutils) -> list[float]:
    times = [r.time for r in server.requests]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


class MaxJitter:
    """Stands in for the client's RNG so full-jitter backoff waits its ceiling."""

    def uniform(self, low: float, high: float) -> float:
        return high


# -- recorded responses --------------------------------------------------------------


def test_esearch_parses_recorded_biopython_search(fake_eutils: FakeEutils) -> None:
    result = client_for(fake_eutils).esearch("biopython")
    assert result.count == 63
    assert len(result.ids) == 20
    assert result.ids[:2] == ("41282813", "41148224")
    assert result.ids[-1] == "37810457"
    assert (result.retmax, result.retstart) == (20, 0)
    assert result.query_translation == '"biopython"[All Fields]'
    assert result.webenv is None and result.query_key is None
    assert result.raw.body == shared_path("fixtures", "ncbi", "esearch1.xml").read_bytes()


def test_esearch_parses_history_keys_and_translation(fake_eutils: FakeEutils) -> None:
    result = client_for(fake_eutils).esearch("cancer", retmax=100, usehistory=True)
    assert result.count == 42249
    assert len(result.ids) == 100
    assert result.webenv == "MCID_6927d6e7fee3e90f880ec190"
    assert result.query_key == "1"
    assert result.query_translation is not None
    assert '"neoplasms"[MeSH Terms]' in result.query_translation
    assert fake_eutils.requests[0].param("usehistory") == "y"


def test_esearch_parses_paged_result(fake_eutils: FakeEutils) -> None:
    result = client_for(fake_eutils).esearch("PNAS[ta] AND 97[vi]", retstart=6, retmax=6)
    assert (result.count, result.retstart, result.retmax) == (2651, 6, 6)
    assert result.ids == tuple(str(n) for n in range(11121077, 11121071, -1))
    assert result.query_translation == '"proc natl acad sci u s a"[Journal] AND "97"[Volume]'
    sent = fake_eutils.requests[0]
    assert (sent.param("retstart"), sent.param("retmax")) == ("6", "6")


def test_elink_parses_recorded_neighbours(fake_eutils: FakeEutils) -> None:
    result = client_for(fake_eutils).elink(["9298984"], dbfrom="pubmed", db="pubmed")
    [linkset] = result.linksets
    assert linkset.dbfrom == "pubmed"
    assert linkset.ids == ("9298984",)
    names = [db.linkname for db in linkset.dbs]
    assert names[:3] == ["pubmed_pubmed", "pubmed_pubmed_citedin", "pubmed_pubmed_combined"]
    assert "pubmed_pubmed_reviews_five" in names
    related = linkset.linked_ids("pubmed_pubmed")
    assert related[:3] == ("9298984", "8794856", "9700164")
    body = shared_path("fixtures", "ncbi", "elink1.xml").read_bytes()
    assert sum(len(db.links) for db in linkset.dbs) == body.count(b"<Link>")


def test_epost_returns_recorded_history_keys(fake_eutils: FakeEutils) -> None:
    webenv, query_key, raw = client_for(fake_eutils).epost(["11237011"])
    assert (webenv, query_key) == ("MCID_692851c130aec64bed0a8c2a", "1")
    assert raw.method == "POST"
    assert raw.params["id"] == "11237011"


def test_epost_invalid_db_raises_ncbi_message(fake_eutils: FakeEutils) -> None:
    with pytest.raises(NCBIError, match="Invalid db name specified: nothing"):
        client_for(fake_eutils).epost(["11237011"], db="nothing")


def test_epost_invalid_ids_raises_every_ncbi_message(fake_eutils: FakeEutils) -> None:
    with pytest.raises(NCBIError) as caught:
        client_for(fake_eutils).epost(["9" * 32])
    message = str(caught.value)
    assert "Empty ID list; Nothing to store" in message
    assert "Maximum ID value 18446744073709551615" in message
    assert not isinstance(caught.value, NCBIUnavailable)


def test_esummary_without_ids_raises_recorded_error(fake_eutils: FakeEutils) -> None:
    with pytest.raises(NCBIError, match="Neither query_key nor id specified"):
        client_for(fake_eutils).esummary([])
    assert len(fake_eutils.requests) == 1


def test_esummary_parses_recorded_docsums(fake_eutils: FakeEutils) -> None:
    result = client_for(fake_eutils).esummary(["11850928", "11482001"])
    assert [doc.uid for doc in result.docs] == ["11850928", "11482001"]
    assert result.docs[0].title == "Zirconium granuloma following treatment of rhus dermatitis."
    assert result.docs[0].article_ids["pubmed"] == "11850928"


def test_efetch_returns_recorded_pubmed_xml_byte_for_byte(fake_eutils: FakeEutils) -> None:
    [raw] = client_for(fake_eutils).efetch_pubmed(["12091962", "9997"])
    expected = shared_path("fixtures", "ncbi", "pubmed1.xml").read_bytes()
    assert raw.body == expected
    assert raw.sha256 == hashlib.sha256(expected).hexdigest()


# -- RawResponse provenance ------------------------------------------------------------


def test_raw_response_records_request_and_retrieval(fake_eutils: FakeEutils) -> None:
    before = datetime.now(UTC)
    result = client_for(fake_eutils).esearch("biopython")
    raw = result.raw
    assert isinstance(raw, RawResponse)
    assert (raw.utility, raw.method, raw.status) == ("esearch", "GET", 200)
    assert raw.url.startswith(fake_eutils.url + "esearch.fcgi?")
    assert "term=biopython" in raw.url
    assert raw.params["term"] == "biopython"
    assert raw.params["email"] == EMAIL
    assert raw.params["tool"] == "substantiate"
    assert raw.retrieved_at.tzinfo is not None
    assert before <= raw.retrieved_at <= datetime.now(UTC)
    assert raw.sha256 == hashlib.sha256(raw.body).hexdigest()


# -- efetch batching, POST and history -----------------------------------------------------


def test_efetch_sends_at_most_200_ids_per_request(fake_eutils: FakeEutils) -> None:
    ids = pmids(91_000_000, 450)
    bodies = list(client_for(fake_eutils).efetch_pubmed(ids))
    sent = fake_eutils.requests
    assert [r.id_count for r in sent] == [200, 200, 50]
    assert [i for r in sent for i in r.ids] == ids
    assert sum(b.body.count(b"<PubmedArticle>") for b in bodies) == 450
    assert b'<PMID Version="1">91000449</PMID>' in bodies[-1].body


def test_efetch_posts_long_id_lists_and_gets_short_ones(fake_eutils: FakeEutils) -> None:
    client = client_for(fake_eutils)
    [short] = client.efetch_pubmed(pmids(92_000_000, 3))
    [long] = client.efetch_pubmed(pmids(92_000_100, 60))
    assert [r.method for r in fake_eutils.requests] == ["GET", "POST"]
    assert (short.method, long.method) == ("GET", "POST")
    assert long.url == fake_eutils.url + "efetch.fcgi"
    assert long.params["id"].count(",") == 59


def test_efetch_1000_pmids_takes_at_most_6_requests(fake_eutils: FakeEutils) -> None:
    bodies = list(client_for(fake_eutils).efetch_pubmed(pmids(93_000_000, 1000)))
    assert len(fake_eutils.requests) <= 6
    assert sum(b.body.count(b"<PubmedArticle>") for b in bodies) == 1000


def test_efetch_fetches_duplicates_once_and_rejects_bad_input(fake_eutils: FakeEutils) -> None:
    client = client_for(fake_eutils)
    list(client.efetch_pubmed(["90003301", "90003302", " 90003301 "]))
    assert fake_eutils.requests[0].ids == ["90003301", "90003302"]
    with pytest.raises(ValueError, match="not a PMID"):
        client.efetch_pubmed(["90003301", "doi:10.1/x"])
    with pytest.raises(ValueError, match="batch_size"):
        client.efetch_pubmed(["1"], batch_size=201)
    assert len(fake_eutils.requests) == 1


def test_efetch_serves_records_registered_by_tests(fake_eutils: FakeEutils) -> None:
    record = b'<PubmedArticle><MedlineCitation><PMID Version="1">90000042</PMID></MedlineCitation>'
    record += b"<PubmedData/></PubmedArticle>"
    fake_eutils.add_record("90000042", record)
    [raw] = client_for(fake_eutils).efetch_pubmed(["90000042"])
    assert record in raw.body


def test_efetch_history_pages_through_posted_set(fake_eutils: FakeEutils) -> None:
    client = client_for(fake_eutils)
    ids = pmids(95_000_000, 450)
    webenv, query_key, _ = client.epost(ids)
    assert fake_eutils.history(webenv, query_key) == ids
    bodies = list(client.efetch_pubmed_history(webenv, query_key, len(ids)))
    fetches = [r for r in fake_eutils.requests if r.utility == "efetch"]
    assert [(r.param("retstart"), r.param("retmax")) for r in fetches] == [
        ("0", "200"),
        ("200", "200"),
        ("400", "50"),
    ]
    assert all(r.param("WebEnv") == webenv and r.param("query_key") == query_key for r in fetches)
    assert sum(b.body.count(b"<PubmedArticle>") for b in bodies) == 450


def test_esearch_usehistory_then_fetch_from_history(fake_eutils: FakeEutils) -> None:
    fake_eutils.set_search("ketamine AND depression", pmids(96_000_000, 7))
    client = client_for(fake_eutils)
    found = client.esearch("ketamine AND depression", usehistory=True, retmax=0)
    assert found.count == 7 and found.webenv and found.query_key
    [raw] = client.efetch_pubmed_history(found.webenv, found.query_key, found.count)
    assert raw.body.count(b"<PubmedArticle>") == 7
    assert b'<PMID Version="1">96000006</PMID>' in raw.body


# -- rate limiting ----------------------------------------------------------------------


def test_rate_without_key_stays_under_3_per_second(fake_eutils: FakeEutils) -> None:
    client = client_for(fake_eutils)
    for _ in range(10):
        client.esearch("biopython")
    assert fake_eutils.max_rate(1.0) <= 3
    assert fake_eutils.rate_violations(3) == 0
    gaps = arrival_gaps(fake_eutils)
    assert min(gaps) >= NO_KEY_INTERVAL * 0.75
    # One limiter, not Biopython's sleep stacked on ours: 9 gaps of ~0.4 s, not ~0.8 s.
    assert sum(gaps) < 9 * NO_KEY_INTERVAL + 1.0


def test_rate_with_key_stays_under_10_per_second(fake_eutils: FakeEutils) -> None:
    client = client_for(fake_eutils, api_key=KEY)
    for _ in range(25):
        client.esearch("biopython")
    assert fake_eutils.max_rate(1.0) <= 10
    assert fake_eutils.rate_violations(10) == 0
    assert fake_eutils.max_rate(1.0) >= 8  # the key's higher limit is used
    # Arrival times carry scheduling jitter; the sliding-window checks above are exact.
    assert min(arrival_gaps(fake_eutils)) >= KEY_INTERVAL * 0.75


def test_rate_limit_is_shared_by_all_clients_and_threads(fake_eutils: FakeEutils) -> None:
    clients = [client_for(fake_eutils), client_for(fake_eutils, tool="other")]
    errors: list[BaseException] = []

    def work(client: EntrezClient) -> None:
        try:
            for _ in range(2):
                client.esearch("biopython")
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(clients[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(fake_eutils.requests) == 12
    assert fake_eutils.max_rate(1.0) <= 3
    assert fake_eutils.rate_violations(3) == 0


def test_retries_also_respect_the_rate_limit(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.server_error(503), times=4)
    client_for(fake_eutils, backoff_base=0.0).esearch("biopython")
    assert len(fake_eutils.requests) == 5
    assert min(arrival_gaps(fake_eutils)) >= NO_KEY_INTERVAL * 0.75


# -- retries and backoff ----------------------------------------------------------------


def test_retry_after_seconds_is_honoured(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.too_many_requests(retry_after=1))
    result = client_for(fake_eutils).esearch("biopython")
    assert result.count == 63
    assert len(fake_eutils.requests) == 2
    assert arrival_gaps(fake_eutils)[0] >= 1.0


def test_retry_after_http_date_is_honoured(fake_eutils: FakeEutils) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    fake_eutils.inject(Fault.too_many_requests(retry_after=when))
    client_for(fake_eutils).esearch("biopython")
    assert len(fake_eutils.requests) == 2
    # The date has one-second resolution, so the wait is between 2 and 3 s.
    assert arrival_gaps(fake_eutils)[0] >= 1.5


def test_429_without_retry_after_backs_off_exponentially(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.too_many_requests(), times=3)
    client = client_for(fake_eutils, backoff_base=0.4)
    client._random = MaxJitter()  # type: ignore[assignment]
    assert client.esearch("biopython").count == 63
    gaps = arrival_gaps(fake_eutils)
    assert len(gaps) == 3
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8 and gaps[2] >= 1.6


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(fake_eutils: FakeEutils, status: int) -> None:
    fake_eutils.inject(Fault.server_error(status), times=2)
    assert client_for(fake_eutils, backoff_base=0.05).esearch("biopython").count == 63
    assert [r.fault for r in fake_eutils.requests] == ["status", "status", None]


def test_dropped_connection_is_retried(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.drop())
    assert client_for(fake_eutils, backoff_base=0.05).esearch("biopython").count == 63
    assert len(fake_eutils.requests) == 2


def test_body_shorter_than_content_length_is_retried(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.incomplete(utility="efetch"))
    [raw] = client_for(fake_eutils, backoff_base=0.05).efetch_pubmed(pmids(97_000_000, 5))
    assert raw.body.count(b"<PubmedArticle>") == 5
    assert len(fake_eutils.requests) == 2


def test_timeout_is_retried(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.slow(3.0))
    client = client_for(fake_eutils, timeout=0.5, backoff_base=0.05)
    started = time.monotonic()
    assert client.esearch("biopython").count == 63
    assert time.monotonic() - started < 2.5
    assert len(fake_eutils.requests) == 2


def test_total_wait_is_bounded_then_unavailable(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.server_error(503), times=100)
    client = client_for(fake_eutils, max_wait=2.0, max_retries=50, backoff_base=0.5)
    started = time.monotonic()
    with pytest.raises(NCBIUnavailable) as caught:
        client.esearch("biopython")
    assert time.monotonic() - started <= 2.0 + 0.5
    attempts = len(fake_eutils.requests)
    message = str(caught.value)
    assert message.startswith("esearch: ")
    assert f"after {attempts} attempt(s)" in message
    assert "HTTP 503" in message
    assert "max_wait" in message


def test_max_retries_bounds_attempts(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.server_error(500), times=10)
    with pytest.raises(NCBIUnavailable, match=r"after 3 attempt\(s\).*HTTP 500"):
        client_for(fake_eutils, max_retries=2, backoff_base=0.05).esearch("biopython")
    assert len(fake_eutils.requests) == 3


def test_retry_after_beyond_budget_gives_up_at_once(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.too_many_requests(retry_after=600, utility="efetch"))
    started = time.monotonic()
    with pytest.raises(NCBIUnavailable, match=r"efetch: .*1 attempt\(s\).*HTTP 429"):
        list(client_for(fake_eutils, max_wait=10).efetch_pubmed(["90000001"]))
    assert time.monotonic() - started < 2.0
    assert len(fake_eutils.requests) == 1


# -- error bodies and truncation ---------------------------------------------------------


def test_error_element_in_200_response_raises_ncbi_error(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.error_body("Search Backend failed: timeout", utility="esearch"))
    with pytest.raises(NCBIError, match="esearch: NCBI error: Search Backend failed: timeout"):
        client_for(fake_eutils).esearch("biopython")
    assert len(fake_eutils.requests) == 1


def test_error_element_in_efetch_body_raises_ncbi_error(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.error_body("Unable to obtain query #1", utility="efetch"))
    with pytest.raises(NCBIError, match="Unable to obtain query #1"):
        list(client_for(fake_eutils).efetch_pubmed(["90000001", "90000002"]))


def test_http_400_with_error_body_raises_ncbi_error_without_retry(
    fake_eutils: FakeEutils,
) -> None:
    fake_eutils.inject(Fault.error_body("Invalid query syntax", status=400))
    with pytest.raises(NCBIError, match="esearch: HTTP 400: Invalid query syntax") as caught:
        client_for(fake_eutils).esearch("((")
    assert not isinstance(caught.value, NCBIUnavailable)
    assert len(fake_eutils.requests) == 1


def test_truncated_efetch_body_raises_and_yields_nothing_partial(
    fake_eutils: FakeEutils,
) -> None:
    fake_eutils.inject(Fault.truncated(0.6, utility="efetch"))
    batches = client_for(fake_eutils).efetch_pubmed(pmids(98_000_000, 3))
    with pytest.raises(ParseError, match="does not end with </PubmedArticleSet>"):
        next(batches)
    assert len(fake_eutils.requests) == 1


def test_truncated_second_batch_raises_after_complete_first(fake_eutils: FakeEutils) -> None:
    batches = client_for(fake_eutils).efetch_pubmed(pmids(98_100_000, 10), batch_size=5)
    first = next(batches)
    assert first.body.rstrip().endswith(b"</PubmedArticleSet>")
    fake_eutils.inject(Fault.truncated(0.9, utility="efetch"))
    with pytest.raises(ParseError, match="truncated"):
        next(batches)


def test_truncated_envelope_raises_parse_error(fake_eutils: FakeEutils) -> None:
    fake_eutils.inject(Fault.truncated(0.5, utility="esearch"))
    with pytest.raises(ParseError, match="esearch: response is not well-formed XML"):
        client_for(fake_eutils).esearch("biopython")


# -- the API key stays secret ------------------------------------------------------------


def test_api_key_is_sent_but_never_stored_logged_or_raised(
    fake_eutils: FakeEutils, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(fake_eutils, api_key=KEY, max_wait=1.0, backoff_base=0.05)
    raws = [client.esearch("biopython").raw, client.epost(["11237011"]).raw]
    raws += list(client.efetch_pubmed(pmids(99_000_000, 3)))  # GET
    raws += list(client.efetch_pubmed(pmids(99_000_100, 80)))  # POST
    # NCBI's 429 JSON echoes the key back; it must not leak through our messages.
    leaky = f'{{"error":"API rate limit exceeded","api-key":"{KEY}"}}'.encode()
    fake_eutils.inject(Fault.too_many_requests(body=leaky), times=50)
    with pytest.raises(NCBIUnavailable) as unavailable:
        client.esearch("biopython")
    fake_eutils.clear_faults()
    fake_eutils.inject(Fault.error_body(f"bad api_key {KEY}", status=400))
    with pytest.raises(NCBIError) as refused:
        client.esearch("biopython")
    fake_eutils.inject(Fault.error_body(f"bad api_key {KEY}", utility="efetch"))
    with pytest.raises(NCBIError) as refused_in_body:
        list(client.efetch_pubmed(["90000001"]))

    assert all(r.param("api_key") == KEY for r in fake_eutils.requests)
    for raw in raws:
        assert KEY not in raw.url
        assert "api_key" not in raw.params
        assert KEY not in repr(raw.params)
    assert KEY not in repr(client) and "***" in repr(client)
    assert KEY not in str(unavailable.value)
    for error in (refused.value, refused_in_body.value):
        assert KEY not in str(error) and "bad api_key ***" in str(error)
    assert "retrying" in caplog.text and "efetch POST" in caplog.text
    assert KEY not in caplog.text
    assert all(KEY not in str(record.args) for record in caplog.records)


def test_biopython_module_globals_are_neither_used_nor_changed(
    fake_eutils: FakeEutils, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Entrez, "api_key", "GLOBAL-KEY")
    monkeypatch.setattr(Entrez, "email", "global@example.org")
    client_for(fake_eutils).esearch("biopython")
    client_for(fake_eutils, api_key=KEY).esearch("biopython")
    no_key, keyed = fake_eutils.requests
    assert no_key.param("api_key") is None
    assert no_key.param("email") == keyed.param("email") == EMAIL
    assert keyed.param("api_key") == KEY
    globals_after = (getattr(Entrez, "api_key"), getattr(Entrez, "email"))  # noqa: B009
    assert globals_after == ("GLOBAL-KEY", "global@example.org")


# -- identifier resolution --------------------------------------------------------------


def test_dois_resolve_in_one_batch_and_map_back(fake_eutils: FakeEutils) -> None:
    fake_eutils.add_doi("10.1056/NEJMoa1715274", "29768149")
    fake_eutils.add_doi("10.5555/jad.2020.01.001", "90003999")
    fake_eutils.add_doi("10.5555/da.22951", "90003001")
    inputs = [
        "10.5555/da.22951",
        "doi:10.1056/nejmoa1715274",
        "https://doi.org/10.5555/jad.2020.01.001",
        "10.9999/not-in-pubmed",
        "not a doi",
    ]
    assert client_for(fake_eutils).dois_to_pmids(inputs) == {
        "10.5555/da.22951": "90003001",
        "doi:10.1056/nejmoa1715274": "29768149",
        "https://doi.org/10.5555/jad.2020.01.001": "90003999",
        "10.9999/not-in-pubmed": None,
        "not a doi": None,
    }
    search, summary = fake_eutils.requests
    assert search.utility == "esearch" and summary.utility == "esummary"
    assert search.param("term") == (
        '"10.5555/da.22951"[AID] OR "10.1056/nejmoa1715274"[AID] OR '
        '"10.5555/jad.2020.01.001"[AID] OR "10.9999/not-in-pubmed"[AID]'
    )
    assert sorted(summary.ids) == ["29768149", "90003001", "90003999"]


def test_doi_shared_by_two_records_maps_to_lowest_pmid(fake_eutils: FakeEutils) -> None:
    fake_eutils.add_doi("10.5555/shared.1", "90003102")
    fake_eutils.add_doi("10.5555/shared.1", "90003101")
    fake_eutils.add_doi("10.5555/other.2", "90003103")
    result = client_for(fake_eutils).dois_to_pmids(["10.5555/shared.1", "10.5555/other.2"])
    assert result == {"10.5555/shared.1": "90003101", "10.5555/other.2": "90003103"}


def test_single_doi_with_single_match_needs_one_request(fake_eutils: FakeEutils) -> None:
    fake_eutils.add_doi("10.5555/only.one", "90003110")
    assert client_for(fake_eutils).dois_to_pmids(["10.5555/only.one"]) == {
        "10.5555/only.one": "90003110"
    }
    assert [r.utility for r in fake_eutils.requests] == ["esearch"]


def test_unusual_dois_are_searched_alone_and_quotes_never_sent(fake_eutils: FakeEutils) -> None:
    sici = "10.5555/(SICI)1097-4636(199603)30:3<305::AID-JBM3>3.0.CO;2-N"
    fake_eutils.add_doi(sici, "90003120")
    fake_eutils.add_doi("10.5555/plain", "90003121")
    result = client_for(fake_eutils).dois_to_pmids([sici, "10.5555/plain", '10.5555/a"b'])
    assert result == {sici: "90003120", "10.5555/plain": "90003121", '10.5555/a"b': None}
    terms = [r.param("term") for r in fake_eutils.requests if r.utility == "esearch"]
    assert terms == ['"10.5555/plain"[AID]', f'"{sici}"[AID]']


def test_many_dois_are_batched_50_per_search(fake_eutils: FakeEutils) -> None:
    dois = [f"10.5555/batch.{n}" for n in range(120)]
    for n, doi in enumerate(dois):
        fake_eutils.add_doi(doi, str(90_004_000 + n))
    result = client_for(fake_eutils, api_key=KEY).dois_to_pmids(dois)
    assert result == {doi: str(90_004_000 + n) for n, doi in enumerate(dois)}
    searches = [r for r in fake_eutils.requests if r.utility == "esearch"]
    assert [r.param("term").count("[AID]") for r in searches] == [50, 50, 20]  # type: ignore[union-attr]
    assert len(fake_eutils.requests) == 6


def test_pmcids_resolve_through_one_elink_request(fake_eutils: FakeEutils) -> None:
    fake_eutils.add_pmcid("PMC8435807", "34527728")
    fake_eutils.add_pmcid("PMC90000123", "90003201")
    inputs = ["PMC8435807", "pmc90000123", "90000123", "PMC90000999", "PMCxyz"]
    assert client_for(fake_eutils).pmcids_to_pmids(inputs) == {
        "PMC8435807": "34527728",
        "pmc90000123": "90003201",
        "90000123": "90003201",
        "PMC90000999": None,
        "PMCxyz": None,
    }
    [sent] = fake_eutils.requests
    assert (sent.param("dbfrom"), sent.param("db"), sent.param("linkname")) == (
        "pmc",
        "pubmed",
        "pmc_pubmed",
    )
    assert sent.params["id"] == ["8435807", "90000123", "90000999"]  # one parameter per id


def test_many_pmcids_are_batched(fake_eutils: FakeEutils) -> None:
    pmcs = [f"PMC{90_006_000 + n}" for n in range(250)]
    for n, pmc in enumerate(pmcs):
        fake_eutils.add_pmcid(pmc, str(90_005_000 + n))
    result = client_for(fake_eutils, api_key=KEY).pmcids_to_pmids(pmcs)
    assert result == {pmc: str(90_005_000 + n) for n, pmc in enumerate(pmcs)}
    assert [r.id_count for r in fake_eutils.requests] == [100, 100, 50]
    assert [r.method for r in fake_eutils.requests] == ["POST", "POST", "GET"]


# -- the fake server's own measurements -------------------------------------------------


def test_window_counts_measure_sliding_one_second_windows() -> None:
    counts = window_counts([0.0, 0.3, 0.6, 0.9, 1.2, 2.5], 1.0)
    assert counts == [1, 2, 3, 4, 4, 1]


def test_synthetic_records_carry_the_requested_pmid(fake_eutils: FakeEutils) -> None:
    record = fake_eutils.synthetic_record("123456789")
    assert b'<PMID Version="1">123456789</PMID>' in record
    assert b'<ArticleId IdType="pubmed">123456789</ArticleId>' in record
    assert b"29768149" not in record
    assert b"10.5555/synthetic.123456789" in record


def test_a_real_pmid_without_a_recording_is_never_given_invented_content(
    fake_eutils: FakeEutils
) -> None:
    """Below the synthetic range a PMID may be a real record: with no recorded response the
    server leaves it out (as PubMed leaves out an id it does not have)."""
    with pytest.raises(ValueError, match="may be real"):
        fake_eutils.synthetic_record("35326338")
    [raw] = client_for(fake_eutils).efetch_pubmed(["35326338", "90000077"])
    assert b"<PMID Version=\"1\">90000077</PMID>" in raw.body
    assert b"35326338" not in raw.body and raw.body.count(b"<PubmedArticle>") == 1
