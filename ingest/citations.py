"""Finding citations in an article: PubMed IDs, PMC IDs, DOIs and plain web links.

Marketing articles cite in every shape: a PubMed URL, a PMC URL, a publisher page whose
path embeds the DOI, a bare ``doi:10.x/y``, ``PMID: 123``, or a provider's home page
listed under "Sources". Each is reduced to a kind and a normalised identifier so that the
same work cited twice is one citation, and so that ``ingest.entrez`` knows which
identifiers it can resolve to a PubMed record (:func:`is_scholarly`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from evidence import vocabulary
from ingest.articles import Link

__all__ = [
    "KINDS",
    "SCHOLARLY_KINDS",
    "CitationCandidate",
    "classify_url",
    "extract_citations",
    "is_scholarly",
    "normalise_doi",
    "normalise_url",
]

#: Every citation kind, most specific first.
KINDS: tuple[str, ...] = ("pmid", "pmcid", "doi", "web")
#: Kinds that identify a scholarly record (resolvable to PubMed or a DOI registry).
SCHOLARLY_KINDS: frozenset[str] = frozenset({"pmid", "pmcid", "doi"})


@dataclass(frozen=True)
class CitationCandidate:
    """A citation found in an article.

    Attributes
    ----------
    raw : str
        The citation as written (the URL, ``"PMID: 123"``, ``"doi:10.1/x"``).
    kind : str
        One of :data:`KINDS`.
    identifier : str
        Normalised: PMID digits, upper-case ``PMC123``, lower-case DOI, or the
        normalised URL for ``web``.
    start, end : int or None
        Character span of ``raw`` in the article text; ``None`` for a citation that
        exists only as a hyperlink target.
    """

    raw: str
    kind: str
    identifier: str
    start: int | None
    end: int | None


def is_scholarly(kind: str) -> bool:
    """Whether a citation kind names a scholarly record rather than a web page.

    Parameters
    ----------
    kind : str
        A citation kind.

    Returns
    -------
    bool
        True for ``pmid``, ``pmcid`` and ``doi``.
    """
    return kind in SCHOLARLY_KINDS


# --- patterns -----------------------------------------------------------------------

# Stops at whitespace, quotes and angle brackets; trailing punctuation and unbalanced
# closing brackets are trimmed afterwards (a URL ending a sentence or inside parentheses).
_URL = re.compile(
    r"(?:https?://|(?<![\w@./-])(?:www\.|(?:pubmed|pmc)\.ncbi\.nlm\.nih\.gov/"
    r"|ncbi\.nlm\.nih\.gov/|(?:dx\.)?doi\.org/))[^\s<>\"'\u201c\u201d\u2018\u2019]+",
    re.IGNORECASE,
)
# Identifier patterns are vocabulary (one definition, shared with the E-utilities client).
_DOI = vocabulary.DOI_IN_TEXT_RE
_PMID = vocabulary.PMID_IN_TEXT_RE
_PMCID = vocabulary.PMCID_RE

_PUBMED_PATH = re.compile(r"^/(\d{1,9})/?$")
_NCBI_PUBMED_PATH = re.compile(r"^/pubmed/(\d{1,9})/?$", re.IGNORECASE)
_PMC_PATH = re.compile(r"^/(?:pmc/)?articles/(PMC\d+)(?:/|$)", re.IGNORECASE)
_PMC_PMID_PATH = re.compile(r"^/pmc/articles/pmid/(\d{1,9})/?$", re.IGNORECASE)
_EUROPEPMC_PATH = re.compile(r"^/(?:article|abstract)/(MED|PMC)/((?:PMC)?\d+)/?$", re.I)
_DOI_IN_URL = vocabulary.DOI_RE

# Publisher URLs put views of the article after the DOI: strip them, repeatedly.
_DOI_VIEW_SUFFIXES = (
    "/full",
    "/abstract",
    "/abs",
    "/pdf",
    "/epdf",
    "/pdfdirect",
    "/fulltext",
    "/full.pdf",
    "/full-text",
    "/html",
    "/meta",
    "/summary",
    "/references",
    "/figures",
    "/tables",
    "/metrics",
    "/citations",
    "/supplementary",
    "/suppl_file",
    ".pdf",
    ".full",
    ".abstract",
    ".short",
    ".long",
)
_TRAILING = ".,;:!?*'\""
_TRACKING_PARAMS = re.compile(r"^(?:utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|src)$", re.I)


def extract_citations(text: str, links: Sequence[Link] = ()) -> list[CitationCandidate]:
    """Find the citations in an article's text and links.

    URLs, bare DOIs, ``PMID: N`` and bare ``PMC`` identifiers are found in ``text``
    (with offsets); hyperlink targets in ``links`` follow (without offsets). Each
    kind+identifier appears once, at its first occurrence in the text, or from the
    first link when the text does not show it. Links that are not http(s) are ignored.

    Parameters
    ----------
    text : str
        The article text.
    links : sequence of Link
        The article's hyperlinks (see :class:`ingest.articles.ParsedArticle`).

    Returns
    -------
    list[CitationCandidate]
        In text order, then link order.
    """
    found: list[CitationCandidate] = []
    taken: list[tuple[int, int]] = []

    def claim_span(start: int, end: int) -> bool:
        if any(s < end and start < e for s, e in taken):
            return False
        taken.append((start, end))
        return True

    for match in _URL.finditer(text):
        raw = _trim(match.group(0))
        start, end = match.start(), match.start() + len(raw)
        # Written without a scheme ("www.webmd.com/...", "doi.org/10...").
        url = raw if re.match(r"https?://", raw, re.IGNORECASE) else "https://" + raw
        kind_id = classify_url(url)
        if kind_id is not None and claim_span(start, end):
            found.append(CitationCandidate(raw, kind_id[0], kind_id[1], start, end))

    for match in _DOI.finditer(text):
        doi = normalise_doi(match.group(1))
        raw = _trim(match.group(0))
        start, end = match.start(), match.start() + len(raw)
        if doi and claim_span(start, end):
            found.append(CitationCandidate(raw, "doi", doi, start, end))

    for match in _PMID.finditer(text):
        if claim_span(match.start(), match.end()):
            pmid = str(int(match.group(1)))
            found.append(CitationCandidate(match.group(0), "pmid", pmid, *match.span()))

    for match in _PMCID.finditer(text):
        if claim_span(match.start(), match.end()):
            pmcid = match.group(1).upper()
            found.append(CitationCandidate(match.group(0), "pmcid", pmcid, *match.span()))

    found.sort(key=lambda c: c.start if c.start is not None else -1)
    for link in links:
        kind_id = classify_url(link.url.strip())
        if kind_id is not None:
            found.append(CitationCandidate(link.url, kind_id[0], kind_id[1], None, None))

    unique: list[CitationCandidate] = []
    seen: set[tuple[str, str]] = set()
    for citation in found:
        key = (citation.kind, citation.identifier)
        if key not in seen:
            seen.add(key)
            unique.append(citation)
    return unique


def classify_url(url: str) -> tuple[str, str] | None:
    """Classify a URL as a citation.

    Parameters
    ----------
    url : str
        An absolute URL.

    Returns
    -------
    tuple[str, str] or None
        ``(kind, identifier)``; ``None`` when the URL is not http(s) or has no host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    host = host.removeprefix("www.")
    path = unquote(parts.path)

    if host == "pubmed.ncbi.nlm.nih.gov":
        match = _PUBMED_PATH.match(path)
        if match:
            return "pmid", str(int(match.group(1)))
    if host in ("ncbi.nlm.nih.gov", "pmc.ncbi.nlm.nih.gov", "europepmc.org"):
        match = _NCBI_PUBMED_PATH.match(path) or _PMC_PMID_PATH.match(path)
        if match:
            return "pmid", str(int(match.group(1)))
        if path.rstrip("/").lower() == "/pubmed":
            # An old-style search link whose term is a single PMID.
            term = dict(parse_qsl(parts.query)).get("term", "").strip()
            if term.isdigit():
                return "pmid", str(int(term))
        match = _PMC_PATH.match(path)
        if match:
            return "pmcid", match.group(1).upper()
        match = _EUROPEPMC_PATH.match(path)
        if match:
            source, ident = match.group(1).upper(), match.group(2).upper()
            if source == "MED" and ident.isdigit():
                return "pmid", str(int(ident))
            if source == "PMC":
                return "pmcid", ident if ident.startswith("PMC") else "PMC" + ident
    if host in ("doi.org", "dx.doi.org"):
        doi = normalise_doi(path.lstrip("/"))
        if doi:
            return "doi", doi
    # Publisher pages (Wiley, Taylor & Francis, BMC, Springer, Frontiers, PLOS ...)
    # carry the DOI in the path or, for PLOS, in the query.
    for part in (path, unquote(parts.query)):
        match = _DOI_IN_URL.search(part)
        if match:
            doi = normalise_doi(match.group(0).split("&")[0])
            if doi:
                return "doi", doi
    return "web", normalise_url(url)


def normalise_doi(doi: str) -> str:
    """Normalise a DOI: lower case, no ``doi:`` prefix, no view suffix or punctuation.

    Parameters
    ----------
    doi : str
        A DOI as found, e.g. ``"10.1186/S40337-022-00588-9/full."``.

    Returns
    -------
    str
        The DOI (``"10.1186/s40337-022-00588-9"``), or ``""`` when nothing DOI-shaped
        remains.
    """
    doi = unquote(doi.strip())
    doi = re.sub(r"^(?:doi\s*:\s*|https?://(?:dx\.)?doi\.org/)", "", doi, flags=re.I)
    doi = re.split(r"[#?\s]", doi, maxsplit=1)[0]
    doi = _trim(doi).lower()
    changed = True
    while changed:
        changed = False
        for suffix in _DOI_VIEW_SUFFIXES:
            if doi.endswith(suffix) and len(doi) > len(suffix):
                doi = _trim(doi[: -len(suffix)])
                changed = True
        if doi.endswith("/"):
            doi = doi.rstrip("/")
            changed = True
    if not vocabulary.DOI_RE.fullmatch(doi):
        return ""
    return doi


def normalise_url(url: str) -> str:
    """Normalise a web URL for identity: the same page written twice is one citation.

    Lower-cases scheme and host, drops default ports, fragments, tracking parameters
    (``utm_*``, ``fbclid`` ...) and a trailing slash.

    Parameters
    ----------
    url : str

    Returns
    -------
    str
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host
    if port and not (scheme == "http" and port == 80 or scheme == "https" and port == 443):
        netloc = f"{host}:{port}"
    path = parts.path.rstrip("/")
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
         if not _TRACKING_PARAMS.match(k)]
    )  # fmt: skip
    if query and not path:
        path = "/"
    return urlunsplit((scheme, netloc, path, query, ""))


def _trim(raw: str) -> str:
    """Drop trailing punctuation and unbalanced closing brackets from a URL or DOI."""
    while raw:
        last = raw[-1]
        if last in _TRAILING:
            raw = raw[:-1]
        elif last in ")]}":
            opening = {")": "(", "]": "[", "}": "{"}[last]
            if raw.count(opening) < raw.count(last):
                raw = raw[:-1]
            else:
                break
        else:
            break
    return raw
