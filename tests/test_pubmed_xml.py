"""ingest.pubmed_xml: awkward records, the real NCBI fixtures, hostile and broken XML, memory."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import io
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.errors import InputError, ParseError
from ingest.pubmed_xml import (
    Author,
    DeletedCitations,
    MeshHeading,
    MeshQualifier,
    PubmedItem,
    PubmedRecord,
    iter_pubmed,
    parse_pubmed,
    parse_pubmed_bytes,
)
from tests._shared import PUBMED_FIXTURES, ROOT, shared_path

DATA = Path(__file__).parent / "data" / "pubmed"
AWKWARD = sorted(DATA.glob("*.xml"))


def records(items: list[PubmedItem]) -> list[PubmedRecord]:
    """The PubmedRecord items, asserting there is nothing else."""
    assert all(isinstance(item, PubmedRecord) for item in items)
    return [item for item in items if isinstance(item, PubmedRecord)]


def one(path: Path) -> PubmedRecord:
    (record,) = records(parse_pubmed(path))
    return record


# --------------------------------------------------------------------------- awkward inputs


def test_awkward_inputs_cover_the_listed_cases() -> None:
    names = {path.stem for path in AWKWARD}
    assert {
        "no_abstract",
        "structured_abstract",
        "medline_date",
        "retracted",
        "expression_of_concern",
        "erratum",
        "book_article",
        "html_mathml_title",
        "collective_orcid",
        "delete_citation",
        "vernacular",
    } <= names
    for path in AWKWARD:
        assert path.with_suffix(".expected.json").exists(), f"{path.name} has no expectations"


@pytest.mark.parametrize("path", AWKWARD, ids=lambda p: p.stem)
def test_awkward_input_parses_to_expected_fields(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    items = [item.to_dict() for item in parse_pubmed(path)]
    assert len(items) == len(expected)
    for got, want in zip(items, expected, strict=True):
        assert {key: got[key] for key in want} == want
        # to_dict is JSON-safe: it survives a round trip unchanged.
        assert json.loads(json.dumps(got)) == got


def test_delete_citation_yields_deleted_pmids_after_the_records() -> None:
    items = parse_pubmed(DATA / "delete_citation.xml")
    assert isinstance(items[0], PubmedRecord)
    assert items[1] == DeletedCitations(("90000081", "90000082", "90000083"))


def test_references_do_not_leak_into_the_record_identifiers() -> None:
    record = one(DATA / "structured_abstract.xml")
    # The ReferenceList cites 10.9999/not-this-record and PMID 90000009.
    assert record.doi == "10.5555/fixture.2021.012"
    assert all(article_id.value != "90000009" for article_id in record.article_ids)


def test_mesh_heading_is_major_topic_through_a_qualifier() -> None:
    record = one(DATA / "structured_abstract.xml")
    agents, depression, humans = record.mesh
    assert not agents.major and agents.is_major_topic
    assert depression.major and depression.is_major_topic
    assert not humans.is_major_topic


def test_author_display_name() -> None:
    authors = one(DATA / "collective_orcid.xml").authors
    assert authors[0].display_name == "Ng W"
    assert authors[-1].display_name == "Ketamine Registry Study Group"


def test_records_are_frozen() -> None:
    record = one(DATA / "no_abstract.xml")
    with pytest.raises(AttributeError):
        record.title = "changed"  # type: ignore[misc]


def _dataclass_repr(value: object) -> str:
    """``repr`` as the dataclass decorator writes it, field by field, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(f"{f.name}={_dataclass_repr(getattr(value, f.name))}"
                          for f in dataclasses.fields(value))
        return f"{type(value).__qualname__}({inner})"
    if isinstance(value, tuple):
        parts = [_dataclass_repr(v) for v in value]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_dataclass_repr(v) for v in value) + "]"
    return repr(value)


def test_record_repr_is_the_dataclass_repr_so_content_hashes_are_unchanged() -> None:
    # ``record_hash`` hashes the repr; the faster repr must spell exactly the same text.
    items = [item for path in AWKWARD for item in parse_pubmed(path)]
    items += parse_pubmed(shared_path("fixtures", PUBMED_FIXTURES[0]))
    assert any(isinstance(i, PubmedRecord) and i.authors and i.mesh for i in items)
    assert any(isinstance(i, DeletedCitations) for i in items)
    for item in items:
        assert repr(item) == _dataclass_repr(item)
    # ... written without reprlib's recursion guard (the generated repr wraps it).
    for cls in (PubmedRecord, DeletedCitations, Author, MeshHeading, MeshQualifier):
        assert not hasattr(cls.__repr__, "__wrapped__"), cls


def test_comment_in_title_is_dropped_but_its_tail_kept() -> None:
    data = _article_set(
        "<ArticleTitle>Keta<!-- a note -->mine <?pi x?>works.</ArticleTitle>", pmid="5"
    )
    (record,) = records(parse_pubmed_bytes(data))
    assert record.title == "Ketamine works."


# --------------------------------------------------------------------------- sources


def test_sources_path_str_bytes_and_file_objects_agree(tmp_path: Path) -> None:
    path = DATA / "retracted.xml"
    data = path.read_bytes()
    gz = tmp_path / "no-suffix"
    gz.write_bytes(gzip.compress(data))
    expected = parse_pubmed(path)
    assert parse_pubmed(str(path)) == expected
    assert parse_pubmed_bytes(data) == expected
    assert parse_pubmed(bytearray(data)) == expected
    assert parse_pubmed(memoryview(data)) == expected
    assert parse_pubmed(gz) == expected  # gzip found by its magic bytes, not its name
    assert parse_pubmed_bytes(gzip.compress(data)) == expected
    with path.open("rb") as handle:
        assert parse_pubmed(handle) == expected
    assert parse_pubmed(io.BytesIO(gzip.compress(data))) == expected


def test_non_seekable_gzip_stream_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pipe.xml.gz"
    path.write_bytes(gzip.compress((DATA / "retracted.xml").read_bytes()))
    with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
        assert cat.stdout is not None
        items = parse_pubmed(cat.stdout)
    assert [item.pmid for item in records(items)] == ["90000020", "90000021", "90000022"]


def test_text_mode_file_is_refused() -> None:
    with open(DATA / "retracted.xml", encoding="utf-8") as handle:
        with pytest.raises(TypeError, match="binary mode"):
            parse_pubmed(handle)  # type: ignore[arg-type]


def test_parse_pubmed_bytes_refuses_str() -> None:
    with pytest.raises(TypeError):
        parse_pubmed_bytes("<PubmedArticleSet/>")  # type: ignore[arg-type]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        parse_pubmed(tmp_path / "absent.xml")


def test_empty_article_set_gives_no_records() -> None:
    assert parse_pubmed_bytes(b"<?xml version='1.0'?><PubmedArticleSet></PubmedArticleSet>") == []


# --------------------------------------------------------------------------- real fixtures


def test_fixture_pubmed1_season_date_pages_and_keywords() -> None:
    first, second = records(parse_pubmed(shared_path("fixtures", "ncbi", "pubmed1.xml")))
    assert (first.pmid, second.pmid) == ("12091962", "9997")
    assert first.pub_year == 1990 and first.pub_season == "Spring" and first.pub_date == "1990"
    assert first.pages == "113-25"
    assert first.abstract is None
    assert first.publication_types == ("Journal Article", "Review")
    assert first.publication_type_uis == ("D016428", "D016454")
    assert [k.text for k in first.keywords] == ["Health Care and Public Health", "Legal Approach"]
    assert all(k.major is False for k in first.keywords)
    assert len(first.mesh) + len(second.mesh) == 32
    assert MeshHeading("Acquired Immunodeficiency Syndrome", "D000163", True, ()) in first.mesh
    assert first.authors == (Author("Olivero", "J Michael", "JM", None, None, None, ()),)
    assert second.pub_date == "1976-09-28"
    assert second.doi is not None and second.doi.startswith("10.1016/0005-2795")


def test_fixture_pubmed2_statuses_entities_and_qualifiers() -> None:
    first, second = records(parse_pubmed(shared_path("fixtures", "ncbi", "pubmed2.xml")))
    assert (first.status, second.status) == ("MEDLINE", "PubMed-not-MEDLINE")
    assert second.title == "Proton MRI of (13)C distribution by J and chemical shift editing."
    assert first.copyright == "Copyright 2001 Elsevier Science."
    assert (
        first.authors[0]
        .affiliations[0]
        .startswith("Dipartimento di Scienze Ambientali, Università degli Studi della Tuscia")
    )
    assert "Research Support, Non-U.S. Gov't" in first.publication_types
    sea_bream = next(m for m in first.mesh if m.descriptor == "Sea Bream")
    assert sea_bream.qualifiers == (
        MeshQualifier("anatomy & histology", "Q000033", True),
        MeshQualifier("physiology", "Q000502", False),
    )
    assert (first.doi, first.pii) == ("10.1006/cryo.2001.2328", "S0011-2240(01)92328-4")


def test_fixture_pubmed4_structured_abstract_and_links() -> None:
    record = one(shared_path("fixtures", "ncbi", "pubmed4.xml"))
    assert record.pmid == "27797938"
    assert record.title == (
        "Leucocyte telomere length, genetic variants at the TERT gene region and risk of "
        "pancreatic cancer."
    )
    assert [s.label for s in record.abstract_sections] == [
        "OBJECTIVE",
        "DESIGN",
        "RESULTS",
        "CONCLUSIONS",
    ]
    assert record.abstract is not None
    assert record.abstract.count("\n") == 3
    assert "p trend=0.048" not in record.abstract and "ptrend=0.048" in record.abstract
    assert "r2<0.25" in record.abstract
    assert "Observational Study" in record.publication_types
    assert len(record.mesh) == 21
    # One CommentIn; the 48 "Cites" entries are the reference list and are not kept.
    assert [c.ref_type for c in record.comments_corrections] == ["CommentIn"]
    assert (record.doi, record.pmcid) == ("10.1136/gutjnl-2016-312510", "PMC5442267")
    assert record.pub_date == "2017-06" and record.article_date is not None


def test_fixture_title_with_html_tags_keeps_word_boundaries() -> None:
    # The 2018 download wrote "the<i>TERT</i>gene"; pubmed4.xml, the same record, has the
    # spaces. Both must read as the same words.
    record = one(shared_path("fixtures", "ncbi", "title_with_html_tags.xml"))
    spaced = one(shared_path("fixtures", "ncbi", "pubmed4.xml"))
    assert record.title == (
        "Leucocyte telomere length, genetic variants at the TERT gene region and risk of "
        "pancreatic cancer."
    )
    assert record.title == spaced.title
    assert "<i>" not in (record.abstract or "")


def test_fixture_pubmed5_in_data_review_with_nlm_categories() -> None:
    record = one(shared_path("fixtures", "ncbi", "pubmed5.xml"))
    assert record.status == "In-Data-Review"
    assert record.mesh == ()
    assert [(s.label, s.nlm_category) for s in record.abstract_sections][0] == (
        "OBJECTIVES",
        "OBJECTIVE",
    )
    assert len(record.keywords) == 5


def test_fixture_pubmed6_quotes_across_tags_and_mathml() -> None:
    record = one(shared_path("fixtures", "ncbi", "pubmed6.xml"))
    assert record.title.startswith('A "Blood Relationship" Between the Overlooked')
    abstract = record.abstract or ""
    assert "maximal oxygen uptake ( V.O2max ) 67.6 ± 4.1 ml·kg-1·min-1" in abstract
    assert "LEmin" in abstract and "m a x" not in abstract
    assert "<sub>" not in abstract and "math" not in abstract


def test_fixture_pubmed7_mathml_prescripts_and_orcid() -> None:
    record = one(shared_path("fixtures", "ncbi", "pubmed7.xml"))
    assert "(1) inhaled He3/Xe129 MRI ventilation" in (record.abstract or "")
    assert record.authors[1].orcid == "0000-0002-4590-7461"
    assert record.pmcid == "PMC6022861"


def test_fixture_medline_nejm_trial() -> None:
    record = one(shared_path("fixtures", "medline", "pubmed-29768149.xml"))
    assert record.pub_date == "2018-05-17"
    assert "Randomized Controlled Trial" in record.publication_types
    assert [c.ref_type for c in record.comments_corrections] == ["CommentIn", "CommentIn"]
    assert len(record.mesh) == 23
    assert record.doi == "10.1056/NEJMoa1715274"


def test_fixture_medline_gzip_file() -> None:
    path = shared_path("fixtures", "medline", "test_current_medline.xml.gz")
    items = records(parse_pubmed(path))
    assert [r.pmid for r in items] == ["36400559", "2930949", "11446611", "28786991"]
    acute = items[2]
    assert (acute.pub_year, acute.pub_season, acute.pub_date) == (2001, "May-Jun", "2001-05")
    assert {"Meta-Analysis", "Systematic Review"} <= set(items[3].publication_types)
    assert parse_pubmed_bytes(path.read_bytes()) == items


def test_every_real_fixture_serialises_to_json() -> None:
    names = PUBMED_FIXTURES
    total = 0
    for name in names:
        for item in parse_pubmed(shared_path("fixtures", *name.split("/"))):
            data = item.to_dict()
            assert json.loads(json.dumps(data)) == data
            total += 1
    assert total == 14


def test_non_pubmed_document_is_refused() -> None:
    with pytest.raises(ParseError, match="not a PubMed document.*eSearchResult"):
        parse_pubmed(shared_path("fixtures", "ncbi", "esearch1.xml"))
    with pytest.raises(ParseError, match="not a PubMed document.*pmc-articleset"):
        parse_pubmed(shared_path("fixtures", "ncbi", "efetch_pmc.xml"))


# --------------------------------------------------------------------------- hostile XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE PubmedArticleSet [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>
<ArticleTitle>&lol9;</ArticleTitle></Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>"""


def _article_set(title_xml: str, pmid: str = "1", doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>\n{doctype}\n<PubmedArticleSet><PubmedArticle><MedlineCitation>'
        f"<PMID>{pmid}</PMID><Article>{title_xml}<Language>eng</Language></Article>"
        f"</MedlineCitation></PubmedArticle></PubmedArticleSet>"
    ).encode()


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError, match=r"declares entities in its DTD \(lol, lol1"):
        parse_pubmed_bytes(BILLION_LAUGHS)
    # Expanded, lol9 is 3 GB of text; refusing it takes milliseconds. (A generous bound,
    # not a timing benchmark.)
    assert time.perf_counter() - started < 5


def test_internal_entity_declarations_are_refused_before_any_record() -> None:
    doc = _article_set(
        "<ArticleTitle>&claim;</ArticleTitle>",
        doctype='<!DOCTYPE PubmedArticleSet [<!ENTITY claim "FDA approved">]>',
    )
    stream = iter_pubmed(doc)
    with pytest.raises(ParseError, match=r"declares entities in its DTD \(claim\)"):
        next(stream)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-CONTENT")
    return path


def test_external_file_entity_is_refused_and_not_read(secret_file: Path) -> None:
    doc = _article_set(
        "<ArticleTitle>a &xxe; b</ArticleTitle>",
        doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]>',
    )
    with pytest.raises(ParseError, match=r"declares entities.*\(xxe\)") as caught:
        parse_pubmed_bytes(doc)
    assert "TOP-SECRET" not in str(caught.value)


def test_etc_passwd_entity_is_refused() -> None:
    doc = _article_set(
        "<ArticleTitle>&xxe;</ArticleTitle>",
        doctype='<!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    )
    with pytest.raises(ParseError, match="entity-expansion / external-entity") as caught:
        parse_pubmed_bytes(doc)
    assert "root:" not in str(caught.value)


def test_external_parameter_entity_is_refused(secret_file: Path) -> None:
    doc = _article_set(
        "<ArticleTitle>x</ArticleTitle>",
        doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY % p SYSTEM "{secret_file.as_uri()}"> %p;]>',
    )
    with pytest.raises(ParseError):
        parse_pubmed_bytes(doc)


def test_external_dtd_is_not_loaded_and_its_entities_stay_unexpanded(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "TOP-SECRET-CONTENT">')
    doc = _article_set(
        "<ArticleTitle>before &leak; after</ArticleTitle>",
        doctype=f'<!DOCTYPE PubmedArticleSet SYSTEM "{dtd.as_uri()}">',
    )
    (record,) = records(parse_pubmed_bytes(doc))
    assert record.title == "before &leak; after"


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).requests.append(self.path)
        body = b'<!ENTITY leak "FROM-THE-NETWORK">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_recorder() -> Iterator[tuple[str, list[str]]]:
    _Recorder.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.requests
    finally:
        server.shutdown()
        server.server_close()


def test_no_network_access_for_dtds_or_entities(http_recorder: tuple[str, list[str]]) -> None:
    base, requests = http_recorder
    with_dtd = _article_set(
        "<ArticleTitle>&leak;</ArticleTitle>",
        doctype=f'<!DOCTYPE PubmedArticleSet SYSTEM "{base}/evil.dtd">',
    )
    (record,) = records(parse_pubmed_bytes(with_dtd))
    assert record.title == "&leak;"
    with_entity = _article_set(
        "<ArticleTitle>&net;</ArticleTitle>",
        doctype=f'<!DOCTYPE PubmedArticleSet [<!ENTITY net SYSTEM "{base}/entity.txt">]>',
    )
    with pytest.raises(ParseError):
        parse_pubmed_bytes(with_entity)
    assert requests == []


# --------------------------------------------------------------------------- broken XML


def _two_records() -> bytes:
    return (DATA / "retracted.xml").read_bytes()


def test_truncated_document_raises_parse_error_naming_the_line() -> None:
    data = _two_records()
    cut = data[: data.index(b"<PMID", data.index(b"90000021") - 60)]
    with pytest.raises(ParseError, match=r"malformed or truncated XML: .*line \d+"):
        parse_pubmed_bytes(cut)


def test_parse_pubmed_bytes_returns_nothing_on_truncation() -> None:
    data = _two_records()
    cut = data[: len(data) - 40]  # inside the closing tags of the last record
    result: list[PubmedItem] | None = None
    with pytest.raises(ParseError):
        result = parse_pubmed_bytes(cut)
    assert result is None


def test_iter_pubmed_yields_records_before_the_fault_then_raises() -> None:
    data = _two_records()
    cut = data[: data.index(b"90000022")]
    stream = iter_pubmed(cut)
    assert [item.pmid for item in records([next(stream), next(stream)])] == [
        "90000020",
        "90000021",
    ]
    with pytest.raises(ParseError, match="truncated"):
        next(stream)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_real_fixture_truncated_anywhere_is_a_parse_error(fraction: float) -> None:
    data = shared_path("fixtures", "ncbi", "pubmed4.xml").read_bytes()
    with pytest.raises(ParseError, match="line"):
        parse_pubmed_bytes(data[: int(len(data) * fraction)])


def test_truncated_gzip_is_a_parse_error() -> None:
    data = gzip.compress(_two_records())
    with pytest.raises(ParseError, match="gzip"):
        parse_pubmed_bytes(data[: len(data) // 2])


def test_mismatched_tag_is_a_parse_error() -> None:
    data = _two_records().replace(b"</ArticleTitle>", b"</ArticleTitel>", 1)
    with pytest.raises(ParseError, match="ArticleTitel"):
        parse_pubmed_bytes(data)


@pytest.mark.parametrize("data", [b"", b"   \n", b"not xml at all", b"\x1f\x8bnot gzip"])
def test_empty_or_garbage_input_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_pubmed_bytes(data)


def test_record_without_pmid_is_a_parse_error() -> None:
    head = b'<MedlineCitation Status="MEDLINE" Owner="NLM">'
    data = _two_records().replace(head + b'<PMID Version="1">90000021</PMID>', head, 1)
    assert data != _two_records()
    with pytest.raises(ParseError, match="without a PMID"):
        parse_pubmed_bytes(data)


def test_undeclared_mathml_prefix_is_a_parse_error() -> None:
    doc = _article_set("<ArticleTitle><mml:math><mml:mi>x</mml:mi></mml:math></ArticleTitle>")
    with pytest.raises(ParseError, match="Namespace prefix mml"):
        parse_pubmed_bytes(doc)


# --------------------------------------------------------------------------- memory

_PEAK_RSS = textwrap.dedent(
    """
    import resource, sys
    from ingest.pubmed_xml import iter_pubmed
    count = sum(1 for _ in iter_pubmed(sys.argv[1]))
    print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def _peak_rss_kib(path: Path) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    count, peak = done.stdout.split()
    return int(count), int(peak)


def test_memory_stays_flat_as_the_file_grows(tmp_path: Path) -> None:
    """Peak RSS parsing 4,000 records is within a few MB of parsing 400.

    tracemalloc cannot see this: the tree lives in libxml2's own allocations, which
    tracemalloc does not trace, so the peak resident set of a fresh process is measured
    instead. Without clearing each record the 4,000-record file (~70 MB) would keep a
    tree several times its size in memory.
    """
    shared_path("fixtures", "ncbi")
    from benchmarks._gen_pubmed import load_templates, write_pubmed_set

    templates = load_templates()
    small = write_pubmed_set(tmp_path / "small.xml", 400, templates=templates)
    big = write_pubmed_set(tmp_path / "big.xml", 4000, templates=templates)
    assert big.stat().st_size > 50 * 2**20
    small_count, small_peak = _peak_rss_kib(small)
    big_count, big_peak = _peak_rss_kib(big)
    assert (small_count, big_count) == (400, 4000)
    assert big_peak - small_peak < 16 * 1024, (small_peak, big_peak)
