"""Conformance: ingest.pubmed_xml agrees with Biopython's ``Bio.Entrez.read``.

Every PubMed record in the recorded NCBI and MEDLINE fixtures is parsed by both and
compared field by field: PMID, title, abstract, publication types, MeSH descriptors with
major-topic flags and qualifiers, DOI, PMCID, year, journal, languages and author names.

Where the two differ by design, the Biopython side is normalised explicitly, in
:func:`bio_text` and :func:`bio_doi`, and each step says why:

- Biopython keeps inline markup (``<i>``, ``<sup>``, MathML) as raw tags in its strings;
  ours keeps the text only. ``Entrez.read(escape=True)`` escapes the text itself, so tags
  and text can be told apart: tags are removed and the text unescaped. Every Biopython
  string (MeSH terms, identifiers too) is escaped, so every one goes through
  :func:`bio_text`.
- Inside MathML, Biopython keeps the whitespace that indents the markup; MathML ignores
  it, and so does ours (except in ``<mtext>``, where a space is content).
- Ours collapses every whitespace run (newlines, no-break and thin spaces) to one space
  and trims; the same collapse is applied to Biopython's text.
- Ours joins abstract sections with ``"\\n"``; Biopython's sections are joined the same.
- Ours falls back to the ``ELocationID`` DOI when ``ArticleIdList`` has none, and takes
  the year from ``MedlineDate`` when there is no ``Year``; the same rules are applied to
  Biopython's values.

- Ours keeps word boundaries at emphasis tags (``<i>``, ``<b>``, ``<u>``): where the XML
  writes ``the<i>TERT</i>gene`` (title_with_html_tags.xml; pubmed4.xml has the spaces)
  ours reads ``the TERT gene``, Biopython ``theTERTgene``. The same space is inserted in
  Biopython's tagged text where a letter meets an emphasis tag. Sub- and superscripts
  (``H<sub>2</sub>O``) never get a space, in either.
"""

from __future__ import annotations

import gzip
import html
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from ingest.pubmed_xml import PubmedRecord, parse_pubmed
from tests._shared import PUBMED_FIXTURES, shared_path

FIXTURES = list(PUBMED_FIXTURES)

_MATH = re.compile(r"<math\b.*?</math>", re.DOTALL)
_INDENT_IN_MATH = re.compile(r"(<(?!mtext\b)[^>]*>)\s+(?=<)")
_TAG = re.compile(r"<[^>]+>")
_OPEN_EMPHASIS = re.compile(r"(?<=\w)(<(?:i|b|u)>)(?=\w)")
_CLOSE_EMPHASIS = re.compile(r"(?<=\w)(</(?:i|b|u)>)(?=\w)")
_YEAR = re.compile(r"\d{4}")


def bio_text(value: Any) -> str:
    """Biopython's (escaped) string normalised to ours; see the module docstring."""
    text = str(value)
    # MathML indentation is not text: drop whitespace between tags, except after <mtext>.
    text = _MATH.sub(lambda m: _INDENT_IN_MATH.sub(r"\1", m.group(0)), text)
    # Word boundaries at emphasis tags, as ours keeps them.
    text = _CLOSE_EMPHASIS.sub(r"\1 ", _OPEN_EMPHASIS.sub(r" \1", text))
    # Inline markup: keep the text, drop the tags, undo escape=True.
    text = html.unescape(_TAG.sub("", text))
    # Whitespace runs of any kind become one space; ends are trimmed.
    return " ".join(text.split())


def bio_doi(article: Any, pubmed_data: Any) -> str | None:
    """DOI from ArticleIdList, else from ELocationID (the rule ours applies)."""
    for article_id in pubmed_data.get("ArticleIdList", []):
        if article_id.attributes.get("IdType") == "doi":
            return bio_text(article_id)
    for location in article.get("ELocationID", []):
        if location.attributes.get("EIdType") == "doi":
            return bio_text(location)
    return None


def bio_pmcid(pubmed_data: Any) -> str | None:
    for article_id in pubmed_data.get("ArticleIdList", []):
        if article_id.attributes.get("IdType") == "pmc":
            return bio_text(article_id)
    return None


def bio_year(article: Any) -> int | None:
    """PubDate/Year, else the first year in MedlineDate (the rule ours applies)."""
    pub_date = article["Journal"]["JournalIssue"]["PubDate"]
    if "Year" in pub_date:
        return int(pub_date["Year"])
    match = _YEAR.search(str(pub_date.get("MedlineDate", "")))
    return int(match.group()) if match else None


def bio_read(path: Path) -> Any:
    from Bio import Entrez

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return Entrez.read(handle, escape=True)  # type: ignore[no-untyped-call]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Biopython ships the PubMed DTDs; fail loudly if it tries to download one."""
    import Bio.Entrez.Parser

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(Bio.Entrez.Parser, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_fixture_list_covers_every_pubmed_file() -> None:
    ncbi = shared_path("fixtures", "ncbi")
    medline = shared_path("fixtures", "medline")
    on_disk = {f"ncbi/{p.name}" for p in ncbi.glob("pubmed*.xml")}
    on_disk |= {"ncbi/title_with_html_tags.xml"}
    on_disk |= {f"medline/{p.name}" for p in medline.iterdir() if p.name != "README.md"}
    assert on_disk == set(FIXTURES)


@pytest.mark.parametrize("name", FIXTURES)
def test_records_match_biopython(name: str) -> None:
    path = shared_path("fixtures", *name.split("/"))
    ours = [item for item in parse_pubmed(path) if isinstance(item, PubmedRecord)]
    theirs = bio_read(path)
    assert len(theirs["PubmedBookArticle"]) == 0
    articles = theirs["PubmedArticle"]
    assert len(ours) == len(articles) > 0

    for record, bio in zip(ours, articles, strict=True):
        citation, data = bio["MedlineCitation"], bio.get("PubmedData", {})
        article = citation["Article"]
        where = f"{name} PMID {record.pmid}"

        assert record.pmid == bio_text(citation["PMID"]), where
        assert record.version == citation["PMID"].attributes.get("Version"), where
        assert record.title == bio_text(article["ArticleTitle"]), where

        sections = article.get("Abstract", {}).get("AbstractText", [])
        bio_sections = [bio_text(section) for section in sections]
        assert [s.text for s in record.abstract_sections] == bio_sections, where
        assert [s.label for s in record.abstract_sections] == [
            section.attributes.get("Label") for section in sections
        ], where
        assert record.abstract == ("\n".join(t for t in bio_sections if t) or None), where

        assert list(record.publication_types) == [
            bio_text(p) for p in article["PublicationTypeList"]
        ], where

        assert [
            (m.descriptor, m.major, [(q.name, q.major) for q in m.qualifiers]) for m in record.mesh
        ] == [
            (
                bio_text(h["DescriptorName"]),
                h["DescriptorName"].attributes["MajorTopicYN"] == "Y",
                [(bio_text(q), q.attributes["MajorTopicYN"] == "Y") for q in h["QualifierName"]],
            )
            for h in citation.get("MeshHeadingList", [])
        ], where
        assert [m.descriptor_ui for m in record.mesh] == [
            h["DescriptorName"].attributes["UI"] for h in citation.get("MeshHeadingList", [])
        ], where

        assert record.doi == bio_doi(article, data), where
        assert record.pmcid == bio_pmcid(data), where
        assert record.pub_year == bio_year(article), where
        assert record.journal == bio_text(article["Journal"]["Title"]), where
        assert list(record.languages) == [bio_text(lang) for lang in article["Language"]], where
        assert [a.last_name or a.collective_name for a in record.authors] == [
            bio_text(a.get("LastName") or a.get("CollectiveName"))
            for a in article.get("AuthorList", [])
        ], where


def test_normalisation_is_needed_for_markup_fixtures() -> None:
    """The normalisation is not a no-op: without it the HTML/MathML fixtures differ."""
    path = shared_path("fixtures", "ncbi", "pubmed6.xml")
    (record,) = [item for item in parse_pubmed(path) if isinstance(item, PubmedRecord)]
    raw = str(bio_read(path)["PubmedArticle"][0]["MedlineCitation"]["Article"]["ArticleTitle"])
    assert "<i>" in raw and record.title != raw
    assert record.title == bio_text(raw)
