"""Build large, realistic PubmedArticleSet files from the real recorded fixtures.

The real ``PubmedArticle`` elements in ``../shared/fixtures`` (efetch responses and
MEDLINE files) are read once and written out again and again, in turn, each copy with a
fresh PMID, so a benchmark or a memory test parses real-shaped records (structured
abstracts, MathML, reference lists, ...) at any scale without a baseline download.

Run ``python -m benchmarks._gen_pubmed OUT.xml[.gz] --records 30000`` to write one.
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
FIXTURE_NAMES = (
    "ncbi/pubmed1.xml",
    "ncbi/pubmed2.xml",
    "ncbi/pubmed4.xml",
    "ncbi/pubmed5.xml",
    "ncbi/pubmed6.xml",
    "ncbi/pubmed7.xml",
    "ncbi/title_with_html_tags.xml",
    "medline/pubmed-29768149.xml",
    "medline/test_current_medline.xml.gz",
)
HEADER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN"'
    b' "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>\n"
)
FOOTER = b"</PubmedArticleSet>\n"
_MARK = "@@PMID@@"
FIRST_PMID = 91_000_000  # synthetic range (90000000+): never a real PubMed id


def fixture_paths(fixtures: Path = FIXTURES) -> list[Path]:
    """Return the fixture files the templates come from (they must all exist)."""
    paths = [fixtures / name for name in FIXTURE_NAMES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"fixtures not found: {', '.join(missing)}")
    return paths


def load_templates(paths: Iterable[Path] | None = None) -> list[bytes]:
    """Serialise every ``PubmedArticle`` of the fixtures with a PMID placeholder.

    Parameters
    ----------
    paths
        Fixture files; the default is :func:`fixture_paths`.

    Returns
    -------
    list[bytes]
        One UTF-8 serialisation per record, the record's own PMID (``MedlineCitation/PMID``
        and the ``pubmed`` ArticleId) replaced by a placeholder.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    templates: list[bytes] = []
    for path in paths if paths is not None else fixture_paths():
        data = path.read_bytes()
        if data.startswith(b"\x1f\x8b"):
            data = gzip.decompress(data)
        root = etree.fromstring(data, parser)
        for article in root.iterfind("PubmedArticle"):
            pmid = article.find("MedlineCitation/PMID")
            if pmid is None:
                continue
            pmid.text = _MARK
            for article_id in article.iterfind("PubmedData/ArticleIdList/ArticleId"):
                if article_id.get("IdType") == "pubmed":
                    article_id.text = _MARK
            templates.append(etree.tostring(article, encoding="utf-8", with_tail=False) + b"\n")
    if not templates:
        raise ValueError("no PubmedArticle found in the fixtures")
    return templates


def write_records(
    out: IO[bytes] | gzip.GzipFile,
    count: int,
    templates: Sequence[bytes],
    first_pmid: int = FIRST_PMID,
) -> None:
    """Write a whole PubmedArticleSet of ``count`` records to a binary stream."""
    mark = _MARK.encode()
    out.write(HEADER)
    for index in range(count):
        template = templates[index % len(templates)]
        out.write(template.replace(mark, str(first_pmid + index).encode()))
    out.write(FOOTER)


def write_pubmed_set(
    path: Path,
    count: int,
    *,
    gz: bool = False,
    templates: Sequence[bytes] | None = None,
    first_pmid: int = FIRST_PMID,
) -> Path:
    """Write ``count`` records (distinct PMIDs from ``first_pmid``) to ``path``.

    Parameters
    ----------
    path
        Output file.
    count
        Number of ``PubmedArticle`` records.
    gz
        Gzip the output (compression level 1: quick to write, still ~20x smaller).
    templates
        Serialised records from :func:`load_templates`; loaded when omitted.
    first_pmid
        PMID of the first record; the others follow consecutively.

    Returns
    -------
    Path
        ``path``.
    """
    chosen = templates if templates is not None else load_templates()
    if gz:
        with gzip.open(path, "wb", compresslevel=1) as out:
            write_records(out, count, chosen, first_pmid)
    else:
        with open(path, "wb") as plain:
            write_records(plain, count, chosen, first_pmid)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write one generated file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="output file; a .gz suffix gzips it")
    parser.add_argument("--records", type=int, default=30_000)
    args = parser.parse_args(argv)
    write_pubmed_set(args.out, args.records, gz=args.out.suffix == ".gz")
    print(args.out)


if __name__ == "__main__":
    main()
