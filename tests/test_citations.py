"""Citations: PubMed, PMC, DOI (bare, doi.org, publisher pages) and plain web links."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.articles import Link, read_path
from ingest.citations import (
    KINDS,
    CitationCandidate,
    classify_url,
    extract_citations,
    is_scholarly,
    normalise_doi,
    normalise_url,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "articles"

URL_CASES: list[tuple[str, str, str]] = [
    # PubMed
    ("https://pubmed.ncbi.nlm.nih.gov/35326338/", "pmid", "35326338"),
    ("http://pubmed.ncbi.nlm.nih.gov/35326338", "pmid", "35326338"),
    ("https://www.ncbi.nlm.nih.gov/pubmed/16894061", "pmid", "16894061"),
    ("https://www.ncbi.nlm.nih.gov/pubmed/?term=29108451", "pmid", "29108451"),
    ("https://europepmc.org/article/MED/23982301", "pmid", "23982301"),
    ("https://www.ncbi.nlm.nih.gov/pmc/articles/pmid/23982301/", "pmid", "23982301"),
    # PMC
    ("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC6767816/", "pmcid", "PMC6767816"),
    ("https://pmc.ncbi.nlm.nih.gov/articles/PMC6767816/", "pmcid", "PMC6767816"),
    ("https://www.ncbi.nlm.nih.gov/pmc/articles/pmc6767816", "pmcid", "PMC6767816"),
    ("https://europepmc.org/article/PMC/PMC6767816", "pmcid", "PMC6767816"),
    # DOI resolvers
    ("https://doi.org/10.1186/s40337-022-00588-9", "doi", "10.1186/s40337-022-00588-9"),
    ("http://dx.doi.org/10.1176/APPI.AJP.2013.13030392", "doi", "10.1176/appi.ajp.2013.13030392"),
    ("https://doi.org/10.1176%2Fappi.ajp.2018.17060720", "doi", "10.1176/appi.ajp.2018.17060720"),
    (
        "https://dx.doi.org/10.1016/S0140-6736(19)30401-X",
        "doi",
        "10.1016/s0140-6736(19)30401-x",
    ),
    # publisher pages that embed the DOI
    (
        "https://jeatdisord.biomedcentral.com/articles/10.1186/s40337-022-00588-9",
        "doi",
        "10.1186/s40337-022-00588-9",
    ),
    ("https://onlinelibrary.wiley.com/doi/full/10.1002/da.22345", "doi", "10.1002/da.22345"),
    ("https://onlinelibrary.wiley.com/doi/epdf/10.1002/da.22345", "doi", "10.1002/da.22345"),
    ("https://onlinelibrary.wiley.com/doi/10.1002/da.22345/abstract", "doi", "10.1002/da.22345"),
    (
        "https://www.tandfonline.com/doi/abs/10.1080/15622975.2019.1234567?journalCode=iwbp20",
        "doi",
        "10.1080/15622975.2019.1234567",
    ),
    (
        "https://www.frontiersin.org/articles/10.3389/fpsyt.2020.00123/full",
        "doi",
        "10.3389/fpsyt.2020.00123",
    ),
    (
        "https://link.springer.com/content/pdf/10.1007/s00213-019-05266-1.pdf",
        "doi",
        "10.1007/s00213-019-05266-1",
    ),
    (
        "https://journals.plos.org/plosone/article?id=10.1371/journal.pone.0123456",
        "doi",
        "10.1371/journal.pone.0123456",
    ),
    (
        "https://psychiatryonline.org/doi/10.1176/appi.ajp.2018.17060720#sec-3",
        "doi",
        "10.1176/appi.ajp.2018.17060720",
    ),
    # no DOI in the URL: a web page, even when it is a journal
    (
        "https://www.sciencedirect.com/science/article/pii/S0165032719300000",
        "web",
        "https://www.sciencedirect.com/science/article/pii/S0165032719300000",
    ),
    (
        "https://www.webmd.com/depression/features/what-does-ketamine-do-your-brain",
        "web",
        "https://www.webmd.com/depression/features/what-does-ketamine-do-your-brain",
    ),
    ("https://www.fieldtriphealth.com/", "web", "https://www.fieldtriphealth.com"),
    (
        "https://pubmed.ncbi.nlm.nih.gov/?term=ketamine",
        "web",
        "https://pubmed.ncbi.nlm.nih.gov/?term=ketamine",
    ),
    (
        "HTTPS://Example.ORG:443/a/b/?utm_source=x&id=7#top",
        "web",
        "https://example.org/a/b?id=7",
    ),
]


@pytest.mark.parametrize(("url", "kind", "identifier"), URL_CASES)
def test_classify_url(url: str, kind: str, identifier: str) -> None:
    assert classify_url(url) == (kind, identifier)


@pytest.mark.parametrize("url", ["mailto:a@b.org", "tel:4155551234", "/relative/page", ""])
def test_classify_url_ignores_non_http(url: str) -> None:
    assert classify_url(url) is None


TEXT_CASES: list[tuple[str, str, str, str]] = [
    ("See PMID: 35326338.", "PMID: 35326338", "pmid", "35326338"),
    ("(PMID 16894061)", "PMID 16894061", "pmid", "16894061"),
    ("pmid:0012345", "pmid:0012345", "pmid", "12345"),
    ("Free text at PMC6767816.", "PMC6767816", "pmcid", "PMC6767816"),
    (
        "doi:10.1186/S40337-022-00588-9.",
        "doi:10.1186/S40337-022-00588-9",
        "doi",
        "10.1186/s40337-022-00588-9",
    ),
    ("DOI: 10.1002/da.22345;", "DOI: 10.1002/da.22345", "doi", "10.1002/da.22345"),
    (
        "(10.1186/s40337-022-00588-9)",
        "10.1186/s40337-022-00588-9",
        "doi",
        "10.1186/s40337-022-00588-9",
    ),
    (
        "Lancet 10.1016/S0140-6736(19)30401-X, 2019",
        "10.1016/S0140-6736(19)30401-X",
        "doi",
        "10.1016/s0140-6736(19)30401-x",
    ),
    (
        "Read www.webmd.com/depression.",
        "www.webmd.com/depression",
        "web",
        "https://www.webmd.com/depression",
    ),
    (
        "(see https://example.org/a_(b))",
        "https://example.org/a_(b)",
        "web",
        "https://example.org/a_(b)",
    ),
    (
        "at pubmed.ncbi.nlm.nih.gov/35326338.",
        "pubmed.ncbi.nlm.nih.gov/35326338",
        "pmid",
        "35326338",
    ),
    ("via doi.org/10.1002/da.22345", "doi.org/10.1002/da.22345", "doi", "10.1002/da.22345"),
    (
        "Link: https://example.org/page).",
        "https://example.org/page",
        "web",
        "https://example.org/page",
    ),
]


@pytest.mark.parametrize(("text", "raw", "kind", "identifier"), TEXT_CASES)
def test_citation_in_text(text: str, raw: str, kind: str, identifier: str) -> None:
    [citation] = extract_citations(text)
    assert (citation.raw, citation.kind, citation.identifier) == (raw, kind, identifier)
    assert citation.start is not None and citation.end is not None
    assert text[citation.start : citation.end] == raw


def test_seed_004_citations_in_order() -> None:
    article = read_path(SEEDS / "004_fd66a576c14499d5.txt")
    citations = extract_citations(article.text, article.links)
    assert [(c.kind, c.identifier) for c in citations] == [
        ("doi", "10.1186/s40337-022-00588-9"),
        ("pmid", "35326338"),
        ("pmid", "35997954"),
        ("pmcid", "PMC6767816"),
        ("web", "https://www.webmd.com/depression/features/what-does-ketamine-do-your-brain"),
    ]
    for c in citations:
        assert c.start is not None and c.end is not None
        assert article.text[c.start : c.end] == c.raw


def test_seed_003_provider_websites_are_web_citations() -> None:
    article = read_path(SEEDS / "003_04ab9df95ae66768.txt")
    citations = extract_citations(article.text)
    assert [c.identifier for c in citations] == [
        "https://www.fieldtriphealth.com",
        "https://www.mindbloom.com",
        "https://www.klarisana.com",
        "https://www.ketaminewellness.com",
    ]
    assert not any(is_scholarly(c.kind) for c in citations)


@pytest.mark.parametrize(
    "name",
    ["000_dc881faf5833b505.txt", "001_a65c4a164c189854.txt", "002_35e70ec8a29c28c4.txt"],
)
def test_seeds_without_citations(name: str) -> None:
    assert extract_citations(read_path(SEEDS / name).text) == []


def test_duplicates_keep_the_first_offset() -> None:
    text = (
        "Shown in doi:10.1186/s40337-022-00588-9 and again at "
        "https://doi.org/10.1186/S40337-022-00588-9/full and "
        "https://jeatdisord.biomedcentral.com/articles/10.1186/s40337-022-00588-9."
    )
    citations = extract_citations(text)
    assert citations == [
        CitationCandidate(
            "doi:10.1186/s40337-022-00588-9", "doi", "10.1186/s40337-022-00588-9", 9, 39
        )
    ]


def test_pmid_url_and_pmid_label_are_one_citation() -> None:
    text = "PMID: 35326338. https://pubmed.ncbi.nlm.nih.gov/35326338/"
    [citation] = extract_citations(text)
    assert (citation.raw, citation.start) == ("PMID: 35326338", 0)


def test_links_add_citations_without_offsets_after_text_ones() -> None:
    text = "A 2013 trial (PMID: 23982301) found relief within a day."
    links = [
        Link("https://pubmed.ncbi.nlm.nih.gov/23982301/", "the trial"),
        Link("https://doi.org/10.1176/appi.ajp.2013.13030392", "Murrough 2013"),
        Link("mailto:info@clinic.example", "Email us"),
        Link("https://www.webmd.com/depression", "WebMD"),
        Link("https://www.webmd.com/depression/", "WebMD again"),
    ]
    citations = extract_citations(text, links)
    assert [(c.kind, c.identifier, c.start) for c in citations] == [
        ("pmid", "23982301", 14),
        ("doi", "10.1176/appi.ajp.2013.13030392", None),
        ("web", "https://www.webmd.com/depression", None),
    ]


def test_doi_inside_a_url_is_not_counted_twice() -> None:
    text = "https://onlinelibrary.wiley.com/doi/full/10.1002/da.22345"
    assert len(extract_citations(text)) == 1


def test_html_article_citations_come_from_its_links() -> None:
    article = read_path(ROOT / "tests" / "data" / "articles" / "clinic_post.html")
    citations = extract_citations(article.text, article.links)
    assert [(c.kind, c.identifier) for c in citations] == [
        ("pmid", "23982301"),
        ("doi", "10.1002/da.22345"),
        ("web", "https://www.webmd.com/depression/features/what-does-ketamine-do-your-brain"),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1186/S40337-022-00588-9/full.", "10.1186/s40337-022-00588-9"),
        ("doi: 10.1002/da.22345/abstract", "10.1002/da.22345"),
        ("https://doi.org/10.1002/DA.22345#refs", "10.1002/da.22345"),
        ("10.1007/s00213-019-05266-1.pdf", "10.1007/s00213-019-05266-1"),
        ("10.1002/da.22345/full/", "10.1002/da.22345"),
        ("not a doi", ""),
    ],
)
def test_normalise_doi(raw: str, expected: str) -> None:
    assert normalise_doi(raw) == expected


def test_normalise_url_is_idempotent() -> None:
    for url, _, identifier in URL_CASES:
        if classify_url(url) == ("web", identifier):
            assert normalise_url(identifier) == identifier


def test_is_scholarly() -> None:
    assert [k for k in KINDS if is_scholarly(k)] == ["pmid", "pmcid", "doi"]
    assert not is_scholarly("web")
