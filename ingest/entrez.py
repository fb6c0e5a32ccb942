"""NCBI E-utilities client: the only module in the project that talks to NCBI.

Requests are built with Biopython's ``Bio.Entrez`` (parameter handling, ``id`` list
formatting, its GET/POST choice) and sent by this module, which adds what the project
needs on top of Biopython:

Base URL
    Biopython 1.88 hard-codes ``https://eutils.ncbi.nlm.nih.gov/...`` inside each of
    ``Entrez.esearch``/``efetch``/...; there is no module attribute to change it. We
    therefore call ``Entrez._build_request(cgi, params, post=...)`` with ``cgi`` built
    from the client's ``base_url``. ``email``, ``tool`` and ``api_key`` are passed in the
    params of every call, so the module globals ``Entrez.email``/``tool``/``api_key`` are
    never read or written: clients with different settings can run in parallel threads.

Sending, rate limiting and retries
    ``Entrez._open`` is bypassed. Its throttle is a wall-clock sleep on a function
    attribute that threads race on, it retries HTTP 429 and 5xx at once with no
    backoff, its retry count is a module global, and it hides the status, the headers
    (``Retry-After``) and the exact bytes we keep as provenance. Because ``_open`` is
    never called there is no double sleep: each request waits only for this module's
    limiter. That limiter is process-wide: it spaces request *starts*
    (including retries) at least :data:`NO_KEY_INTERVAL` apart without a key (NCBI's
    limit is 3/s) and :data:`KEY_INTERVAL` with one (10/s), across every client and
    thread. There is one limiter per identity (no key, or a given key), because NCBI
    counts keyed requests against the key.

    Failures that are worth repeating (HTTP 429, 5xx, timeouts, refused or dropped
    connections, bodies cut short of their ``Content-Length``) are retried with
    exponential backoff and full jitter, or after exactly ``Retry-After`` when the
    server sends it (delta-seconds or HTTP-date). Retries stop after ``max_retries``
    or when the next wait would take the call past ``max_wait`` seconds, and
    :class:`~evidence.errors.NCBIUnavailable` names the utility, the attempt count and
    the last status or reason. The wall time of a call is thus bounded by roughly
    ``max_wait + timeout``.

Errors in bodies
    An ``<ERROR>`` element in a 200 (or 400) response raises
    :class:`~evidence.errors.NCBIError` with NCBI's message. A complete HTTP response
    whose XML is cut off (an efetch body that does not end with
    ``</PubmedArticleSet>``, or an envelope that does not parse) raises
    :class:`~evidence.errors.ParseError` and is *not* retried: the server said the
    response was complete, so repeating it would hide a fault rather than recover from
    one, and no partial batch is ever handed to the loader.

Parsing
    The small envelopes (esearch, epost, elink, esummary) are parsed here with lxml,
    entity resolution and network access off, no DTD loading. ``Bio.Entrez.read`` is
    not used because it may try to download DTDs it does not ship. PubMed records
    (efetch) are returned as raw bytes for ``ingest.pubmed_xml``.

The API key is sent to NCBI and nowhere else: it is removed from
:attr:`RawResponse.url` and :attr:`RawResponse.params`, masked in ``repr(client)``, and
scrubbed from every log line and exception message this module writes.
"""

from __future__ import annotations

import hashlib
import html
import http.client
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.error import HTTPError
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import OpenerDirector, ProxyHandler, Request, build_opener

from Bio import Entrez
from lxml import etree

from evidence import vocabulary
from evidence.errors import NCBIError, NCBIUnavailable, ParseError

__all__ = [
    "DEFAULT_BASE_URL",
    "DocSummary",
    "EPostResult",
    "EntrezClient",
    "Link",
    "LinkResult",
    "LinkSet",
    "LinkSetDb",
    "RawResponse",
    "SearchResult",
    "SummaryResult",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"

#: Most PMIDs per efetch request (NCBI's recommendation for PubMed XML).
MAX_EFETCH_BATCH = 200
#: Requests carrying more ids than this are sent as POST. Biopython switches at 200 ids
#: or a 1,000-character query; a 50-id GET is already ~550 characters, and long URLs
#: are what proxies and NCBI's front end truncate, so we switch earlier.
POST_ID_THRESHOLD = 50
#: Spacing of request starts without an API key: NCBI allows 3/s; Biopython found
#: exactly 1/3 s too tight in practice and uses 0.37 s. 0.4 s keeps a 17% margin, so
#: network and scheduling jitter cannot squeeze four requests into one second.
NO_KEY_INTERVAL = 0.4
#: Spacing of request starts with an API key: NCBI allows 10/s; 17% margin.
KEY_INTERVAL = 0.12
#: DOIs per batched ``"<doi>"[AID] OR ...`` esearch.
DOI_BATCH = 50
#: PMCIDs per elink request (each sent as its own ``id`` parameter).
PMC_BATCH = 100
#: Ids per esummary request.
ESUMMARY_BATCH = 200

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# DOI patterns are vocabulary. Only DOIs of Crossref's "ordinary" shape
# (vocabulary.DOI_BATCH_SAFE_RE, the vast majority) are OR-ed together in one search;
# anything stranger is searched on its own, so an odd character spoils at most its lookup.
_DOI_PREFIX_RE = re.compile(
    r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/|https?://doi\.org/)", re.IGNORECASE
)
_PMCID_RE = re.compile(r"^(?:PMC)?(\d+)$", re.IGNORECASE)
_ERROR_RE = re.compile(rb"<ERROR>(.*?)</ERROR>", re.DOTALL)
_SET_END_RE = re.compile(rb"(?:</PubmedArticleSet>|<PubmedArticleSet\s*/>)\s*$")


@dataclass(frozen=True)
class RawResponse:
    """One E-utilities response exactly as received, with its provenance.

    Attributes
    ----------
    utility
        ``"esearch"``, ``"efetch"``, ``"elink"``, ``"epost"`` or ``"esummary"``.
    url
        The URL requested; for GET it includes the query string. Never the API key.
    method
        ``"GET"`` or ``"POST"``.
    params
        The parameters sent (form body for POST), API key removed; repeated
        parameters (elink ``id``) are joined with commas.
    body
        The response bytes, unmodified.
    status
        The HTTP status (200 for every response handed back).
    retrieved_at
        When the response arrived (UTC, timezone-aware).
    sha256
        Hex SHA-256 of ``body``.
    """

    utility: str
    url: str
    method: str
    params: dict[str, str]
    body: bytes
    status: int
    retrieved_at: datetime
    sha256: str

    @property
    def id_count(self) -> int:
        """Number of ids in the request's ``id`` parameter (0 when absent)."""
        ids = self.params.get("id", "")
        return len([i for i in ids.split(",") if i]) if ids else 0


@dataclass(frozen=True)
class SearchResult:
    """A parsed esearch response.

    Attributes
    ----------
    count
        Total number of matches (not just the ones returned).
    ids
        The UIDs in this page, in NCBI's order.
    webenv, query_key
        History-server keys when ``usehistory`` was requested, else ``None``.
    query_translation
        How NCBI interpreted the term.
    raw
        The response it was parsed from.
    retstart, retmax
        The page NCBI returned.
    phrases_not_found
        Phrases NCBI reported in ``ErrorList/PhraseNotFound``.
    """

    count: int
    ids: tuple[str, ...]
    webenv: str | None
    query_key: str | None
    query_translation: str | None
    raw: RawResponse
    retstart: int = 0
    retmax: int = 0
    phrases_not_found: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link:
    """One linked UID, with NCBI's relatedness score when it gives one."""

    id: str
    score: int | None = None


@dataclass(frozen=True)
class LinkSetDb:
    """The links of one link name (e.g. ``pubmed_pubmed``) within a LinkSet."""

    dbto: str
    linkname: str
    links: tuple[Link, ...]


@dataclass(frozen=True)
class LinkSet:
    """Links from one group of source UIDs (one group per id sent)."""

    dbfrom: str
    ids: tuple[str, ...]
    dbs: tuple[LinkSetDb, ...]
    errors: tuple[str, ...] = ()

    def linked_ids(self, linkname: str) -> tuple[str, ...]:
        """Return the UIDs linked under ``linkname`` (empty when there are none)."""
        for db in self.dbs:
            if db.linkname == linkname:
                return tuple(link.id for link in db.links)
        return ()


@dataclass(frozen=True)
class LinkResult:
    """A parsed elink response: one :class:`LinkSet` per id group sent."""

    linksets: tuple[LinkSet, ...]
    raw: RawResponse


class EPostResult(NamedTuple):
    """History-server keys for a posted id list (unpacks as ``webenv, query_key, raw``)."""

    webenv: str
    query_key: str
    raw: RawResponse


@dataclass(frozen=True)
class DocSummary:
    """The parts of an esummary (v1) DocSum that identifier resolution uses.

    Attributes
    ----------
    uid
        The record's UID (PMID for PubMed).
    title
        The ``Title`` item, if any.
    article_ids
        ``ArticleIds`` items by id type (``pubmed``, ``doi``, ``pmc``, ``pii``...).
    elocation_id
        The ``ELocationID`` item (e.g. ``"doi: 10.1056/NEJMoa1715274"``).
    """

    uid: str
    title: str | None
    article_ids: dict[str, str] = field(default_factory=dict)
    elocation_id: str | None = None

    @property
    def dois(self) -> frozenset[str]:
        """Lower-cased DOIs found in ``ArticleIds`` and ``ELocationID``."""
        found: set[str] = set()
        if doi := self.article_ids.get("doi"):
            found.add(doi.strip().lower())
        if self.elocation_id:
            for match in re.finditer(r"doi:\s*(\S+)", self.elocation_id, re.IGNORECASE):
                found.add(match.group(1).lower())
        return frozenset(found)


@dataclass(frozen=True)
class SummaryResult:
    """A parsed esummary response."""

    docs: tuple[DocSummary, ...]
    raw: RawResponse


class _StartSpacer:
    """Spaces the start of successive requests by a fixed interval, across threads."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next_start = 0.0

    def wait_turn(self) -> float:
        """Block until this caller may start a request; return the seconds waited."""
        # Reserve a slot under the lock, sleep outside it: callers queue in arrival
        # order and none holds the lock while sleeping.
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        delay = start - now
        if delay > 0:
            time.sleep(delay)
        return delay


_SPACERS: dict[str, _StartSpacer] = {}
_SPACERS_LOCK = threading.Lock()


def _spacer_for(api_key: str | None) -> _StartSpacer:
    """Return the process-wide limiter for requests made with ``api_key``."""
    identity = hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""
    with _SPACERS_LOCK:
        spacer = _SPACERS.get(identity)
        if spacer is None:
            spacer = _StartSpacer(KEY_INTERVAL if api_key else NO_KEY_INTERVAL)
            _SPACERS[identity] = spacer
        return spacer


@dataclass(frozen=True)
class _Failure:
    """A failed attempt worth retrying."""

    reason: str
    status: int | None
    retry_after: float | None


class EntrezClient:
    """Rate-limited, retrying client for the NCBI E-utilities.

    Parameters
    ----------
    email
        Contact address NCBI requires with every request.
    tool
        Tool name sent to NCBI.
    api_key
        NCBI API key; raises the rate limit from 3 to 10 requests per second.
    base_url
        E-utilities base URL (ending in ``/eutils/``); point it at a mirror or a
        local test server.
    timeout
        Socket timeout per request, in seconds.
    max_wait
        Upper bound, in seconds, on the time one call spends retrying.
    max_retries
        Retries after the first attempt (so at most ``max_retries + 1`` requests).
    backoff_base, backoff_cap
        Full-jitter backoff: retry *n* waits a uniform random time in
        ``[0, min(backoff_cap, backoff_base * 2 ** (n - 1))]`` unless the server
        sent ``Retry-After``.

    Raises
    ------
    ValueError
        If ``email`` is empty or a numeric setting is out of range.
    """

    def __init__(
        self,
        email: str,
        *,
        tool: str = "substantiate",
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        max_wait: float = 120.0,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
    ) -> None:
        if not email or not email.strip():
            raise ValueError("NCBI requires a contact email with every E-utilities request")
        if timeout <= 0 or max_wait < 0 or max_retries < 0 or backoff_base < 0:
            raise ValueError("timeout must be > 0; max_wait, max_retries, backoff >= 0")
        self.email = email.strip()
        self.tool = tool
        self._api_key = api_key or None
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.max_wait = max_wait
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._spacer = _spacer_for(self._api_key)
        self._random = random.Random()
        self._opener = _make_opener(self.base_url)
        # Every response received, kept until the caller stores it (provenance).
        self._received: list[RawResponse] = []
        self._received_lock = threading.Lock()

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return (
            f"EntrezClient(email={self.email!r}, tool={self.tool!r}, api_key={key}, "
            f"base_url={self.base_url!r})"
        )

    def drain_responses(self) -> list[RawResponse]:
        """Return, and forget, every response received since the last call.

        The loader stores them all (searches and links as well as fetches) so an audit can
        show exactly what NCBI answered.
        """
        with self._received_lock:
            taken, self._received = self._received, []
        return taken

    @property
    def has_api_key(self) -> bool:
        """Whether requests carry an API key (and so may run at 10/s)."""
        return self._api_key is not None

    # -- public E-utilities -------------------------------------------------------

    def esearch(
        self,
        term: str,
        *,
        db: str = "pubmed",
        retmax: int = 20,
        retstart: int = 0,
        usehistory: bool = False,
        **params: str | int,
    ) -> SearchResult:
        """Search an Entrez database.

        Parameters
        ----------
        term
            Entrez query, e.g. ``'"10.1056/NEJMoa1715274"[AID]'``.
        db
            Database to search.
        retmax, retstart
            Page size and offset.
        usehistory
            Keep the result set on the history server (``webenv``/``query_key``).
        **params
            Further esearch parameters (``sort``, ``datetype``, ``WebEnv``...).

        Returns
        -------
        SearchResult

        Raises
        ------
        NCBIError
            NCBI answered with an ``<ERROR>``.
        NCBIUnavailable
            NCBI could not be reached within ``max_wait``.
        ParseError
            The response is not a well-formed eSearchResult.
        """
        query: dict[str, Any] = {
            "db": db,
            "term": term,
            "retmax": str(retmax),
            "retstart": str(retstart),
        }
        if usehistory:
            query["usehistory"] = "y"
        query.update({k: str(v) for k, v in params.items()})
        raw = self._call("esearch", query)
        root = _parse_envelope(raw, "eSearchResult", self._scrub)
        return SearchResult(
            count=_int(root.findtext("Count")),
            ids=tuple(_text(e) for e in root.iterfind("IdList/Id")),
            webenv=_opt(root.findtext("WebEnv")),
            query_key=_opt(root.findtext("QueryKey")),
            query_translation=_opt(root.findtext("QueryTranslation")),
            raw=raw,
            retstart=_int(root.findtext("RetStart")),
            retmax=_int(root.findtext("RetMax")),
            phrases_not_found=tuple(_text(e) for e in root.iterfind("ErrorList/PhraseNotFound")),
        )

    def efetch_pubmed(
        self, pmids: Sequence[str], *, batch_size: int = MAX_EFETCH_BATCH
    ) -> Iterator[RawResponse]:
        """Fetch PubMed XML for ``pmids``, one response per batch.

        Ids are sent directly, ``batch_size`` per request (POST above
        :data:`POST_ID_THRESHOLD` ids). This costs ``ceil(n / batch_size)`` requests;
        posting them first (epost) and paging through the history server would cost
        one more for the same records, so the history route is used only for sets
        that already live there (:meth:`efetch_pubmed_history`).

        Parameters
        ----------
        pmids
            PMIDs (digits); duplicates are fetched once.
        batch_size
            PMIDs per request, 1 to 200.

        Returns
        -------
        Iterator[RawResponse]
            Lazily, one complete ``<PubmedArticleSet>`` body per batch.

        Raises
        ------
        ValueError
            A PMID is not numeric, or ``batch_size`` is out of range (raised at once).
        NCBIError, NCBIUnavailable
            As for :meth:`esearch`, while iterating.
        ParseError
            A body is not a complete PubmedArticleSet (e.g. truncated), while iterating.
        """
        _check_batch_size(batch_size)
        ids = _unique(_clean_pmid(p) for p in pmids)
        return self._efetch_batches(ids, batch_size)

    def efetch_pubmed_history(
        self,
        webenv: str,
        query_key: str,
        count: int,
        *,
        batch_size: int = MAX_EFETCH_BATCH,
    ) -> Iterator[RawResponse]:
        """Fetch PubMed XML for a result set on the history server, page by page.

        Parameters
        ----------
        webenv, query_key
            From :meth:`epost` or ``esearch(..., usehistory=True)``.
        count
            Number of records in the set (``SearchResult.count``).
        batch_size
            Records per request, 1 to 200.

        Returns
        -------
        Iterator[RawResponse]
            One complete ``<PubmedArticleSet>`` body per page.

        Raises
        ------
        ValueError
            ``batch_size`` is out of range.
        NCBIError, NCBIUnavailable, ParseError
            As for :meth:`efetch_pubmed`.
        """
        _check_batch_size(batch_size)
        return self._efetch_history_pages(webenv, query_key, count, batch_size)

    def epost(self, ids: Sequence[str], *, db: str = "pubmed",
              webenv: str | None = None) -> EPostResult:
        """Store ``ids`` on the history server.

        Parameters
        ----------
        ids
            UIDs to post (always sent as POST).
        db
            Their database.
        webenv
            Add the set to this existing history session (a new ``query_key`` in it), so
            several posted sets can be searched together (``#1 OR #2``).

        Returns
        -------
        EPostResult
            ``(webenv, query_key, raw)``.

        Raises
        ------
        NCBIError
            NCBI refused the list (e.g. invalid db or ids), with its message.
        NCBIUnavailable, ParseError
            As for :meth:`esearch`.
        """
        id_list = [str(i).strip() for i in ids]
        query = {"db": db, "id": ",".join(id_list)}
        if webenv:
            query["WebEnv"] = webenv
        raw = self._call("epost", query, post=True)
        root = _parse_envelope(raw, "ePostResult", self._scrub)
        webenv, query_key = root.findtext("WebEnv"), root.findtext("QueryKey")
        if not webenv or not query_key:
            raise ParseError("epost: response has no WebEnv/QueryKey")
        return EPostResult(webenv.strip(), query_key.strip(), raw)

    def elink(
        self,
        ids: Sequence[str],
        *,
        dbfrom: str,
        db: str,
        linkname: str | None = None,
        cmd: str = "neighbor",
        **params: str | int,
    ) -> LinkResult:
        """Find UIDs linked to ``ids``.

        Each id is sent as its own ``id`` parameter, so NCBI answers with one
        LinkSet per id (a one-to-one mapping) instead of pooling the links.

        Parameters
        ----------
        ids
            Source UIDs in ``dbfrom``.
        dbfrom, db
            Source and target databases.
        linkname
            Restrict to one link (e.g. ``"pmc_pubmed"``).
        cmd
            ELink command.
        **params
            Further elink parameters.

        Returns
        -------
        LinkResult

        Raises
        ------
        NCBIError, NCBIUnavailable, ParseError
            As for :meth:`esearch`.
        """
        id_list = [str(i).strip() for i in ids]
        query: dict[str, Any] = {"dbfrom": dbfrom, "db": db, "cmd": cmd, "id": id_list}
        if linkname:
            query["linkname"] = linkname
        query.update({k: str(v) for k, v in params.items()})
        post = True if len(id_list) > POST_ID_THRESHOLD else None
        raw = self._call("elink", query, post=post, join_ids=False)
        root = _parse_envelope(raw, "eLinkResult", self._scrub)
        return LinkResult(tuple(_linkset(e) for e in root.iterfind("LinkSet")), raw)

    def esummary(self, ids: Sequence[str], *, db: str = "pubmed") -> SummaryResult:
        """Fetch document summaries (esummary v1) for ``ids``.

        Parameters
        ----------
        ids
            UIDs, at most :data:`ESUMMARY_BATCH` per call is sensible.
        db
            Their database.

        Returns
        -------
        SummaryResult

        Raises
        ------
        NCBIError, NCBIUnavailable, ParseError
            As for :meth:`esearch`.
        """
        id_list = [str(i).strip() for i in ids]
        query: dict[str, Any] = {"db": db}
        if id_list:
            query["id"] = ",".join(id_list)
        post = True if len(id_list) > POST_ID_THRESHOLD else None
        raw = self._call("esummary", query, post=post)
        root = _parse_envelope(raw, "eSummaryResult", self._scrub)
        return SummaryResult(tuple(_docsum(e) for e in root.iterfind("DocSum")), raw)

    def pmcids_to_pmids(self, pmcids: Iterable[str]) -> dict[str, str | None]:
        """Map PMCIDs to PMIDs with elink ``pmc_pubmed``, :data:`PMC_BATCH` per request.

        Parameters
        ----------
        pmcids
            ``"PMC1234567"``, ``"pmc1234567"`` or ``"1234567"``.

        Returns
        -------
        dict[str, str | None]
            Every input (as given) to its PMID, or ``None`` when it is malformed or
            PubMed has no record for it.

        Raises
        ------
        NCBIError, NCBIUnavailable, ParseError
            As for :meth:`esearch`.
        """
        result: dict[str, str | None] = {}
        wanted: dict[str, list[str]] = {}
        for original in pmcids:
            result[original] = None
            match = _PMCID_RE.match(original.strip())
            if match:
                wanted.setdefault(str(int(match.group(1))), []).append(original)
        numbers = list(wanted)
        for start in range(0, len(numbers), PMC_BATCH):
            batch = numbers[start : start + PMC_BATCH]
            links = self.elink(batch, dbfrom="pmc", db="pubmed", linkname="pmc_pubmed")
            for linkset in links.linksets:
                pmids = linkset.linked_ids("pmc_pubmed")
                if len(linkset.ids) == 1 and pmids and linkset.ids[0] in wanted:
                    for original in wanted[linkset.ids[0]]:
                        result[original] = pmids[0]
        return result

    def dois_to_pmids(self, dois: Iterable[str]) -> dict[str, str | None]:
        """Map DOIs to PMIDs.

        Ordinary DOIs are searched :data:`DOI_BATCH` at a time as
        ``"<doi1>"[AID] OR "<doi2>"[AID] ...``. A pooled search does not say which DOI
        matched which PMID, so the matches are then summarised (esummary, up to 200
        per request) and mapped back through each record's own DOIs (``ArticleIds``
        and ``ELocationID``, compared case-insensitively). A batch of one DOI with one
        match needs no summary. DOIs outside Crossref's common character set are
        searched alone; DOIs containing a double quote cannot be quoted in a query
        and are not searched. When several records carry the same DOI the lowest
        PMID (the original publication, in practice) wins.

        Parameters
        ----------
        dois
            Bare DOIs, ``doi:`` prefixed or ``https://doi.org/`` URLs.

        Returns
        -------
        dict[str, str | None]
            Every input (as given) to its PMID, or ``None``.

        Raises
        ------
        NCBIError, NCBIUnavailable, ParseError
            As for :meth:`esearch`.
        """
        result: dict[str, str | None] = {}
        wanted: dict[str, list[str]] = {}
        spelled: dict[str, str] = {}
        for original in dois:
            result[original] = None
            doi = _normalise_doi(original)
            if doi is None:
                continue
            wanted.setdefault(doi.lower(), []).append(original)
            spelled.setdefault(doi.lower(), doi)
        safe = [d for d in spelled.values() if vocabulary.DOI_BATCH_SAFE_RE.fullmatch(d)]
        batches = [safe[i : i + DOI_BATCH] for i in range(0, len(safe), DOI_BATCH)]
        batches += [[d] for d in spelled.values() if not vocabulary.DOI_BATCH_SAFE_RE.fullmatch(d)]
        for batch in batches:
            for lowered, pmid in self._resolve_doi_batch(batch).items():
                for original in wanted[lowered]:
                    result[original] = pmid
        return result

    # -- internals ----------------------------------------------------------------

    def _efetch_batches(self, ids: list[str], batch_size: int) -> Iterator[RawResponse]:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            post = True if len(batch) > POST_ID_THRESHOLD else None
            query = {"db": "pubmed", "id": ",".join(batch), "retmode": "xml"}
            raw = self._call("efetch", query, post=post)
            _check_pubmed_set(raw, self._scrub)
            yield raw

    def _efetch_history_pages(
        self, webenv: str, query_key: str, count: int, batch_size: int
    ) -> Iterator[RawResponse]:
        for start in range(0, count, batch_size):
            query = {
                "db": "pubmed",
                "WebEnv": webenv,
                "query_key": query_key,
                "retstart": str(start),
                "retmax": str(min(batch_size, count - start)),
                "retmode": "xml",
            }
            raw = self._call("efetch", query)
            _check_pubmed_set(raw, self._scrub)
            yield raw

    def _resolve_doi_batch(self, batch: list[str]) -> dict[str, str]:
        term = " OR ".join(f'"{doi}"[AID]' for doi in batch)
        search = self.esearch(term, retmax=max(20, 5 * len(batch)))
        if not search.ids:
            return {}
        if search.count > len(search.ids):
            logger.warning(
                "DOI search matched %d records; mapping the first %d", search.count, len(search.ids)
            )
        if len(batch) == 1 and len(search.ids) == 1:
            return {batch[0].lower(): search.ids[0]}
        wanted = {doi.lower() for doi in batch}
        matches: dict[str, set[str]] = {}
        ids = list(search.ids)
        for start in range(0, len(ids), ESUMMARY_BATCH):
            summary = self.esummary(ids[start : start + ESUMMARY_BATCH])
            for doc in summary.docs:
                for doi in doc.dois & wanted:
                    matches.setdefault(doi, set()).add(doc.uid)
        return {doi: min(pmids, key=int) for doi, pmids in matches.items()}

    def _call(
        self,
        utility: str,
        params: dict[str, Any],
        *,
        post: bool | None = None,
        join_ids: bool = True,
    ) -> RawResponse:
        """Send one E-utilities request with rate limiting and retries."""
        cgi = f"{self.base_url}{utility}.fcgi"
        full = dict(params, tool=self.tool, email=self.email, api_key=self._api_key)
        request: Request = Entrez._build_request(  # type: ignore[no-untyped-call]
            cgi, full, post=post, join_ids=join_ids
        )
        method = request.get_method()
        safe_url, safe_params = _sanitise(request, cgi, method)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            self._spacer.wait_turn()
            logger.debug("%s %s %s (attempt %d)", utility, method, safe_url, attempt)
            sent = time.monotonic()
            outcome = self._attempt(utility, request)
            if not isinstance(outcome, _Failure):
                status, body = outcome
                logger.debug(
                    "%s -> HTTP %d, %d bytes in %.3f s",
                    utility,
                    status,
                    len(body),
                    time.monotonic() - sent,
                )
                response = RawResponse(
                    utility=utility,
                    url=safe_url,
                    method=method,
                    params=safe_params,
                    body=body,
                    status=status,
                    retrieved_at=datetime.now(UTC),
                    sha256=hashlib.sha256(body).hexdigest(),
                )
                with self._received_lock:
                    self._received.append(response)
                return response
            elapsed = time.monotonic() - started
            if outcome.retry_after is not None:
                delay = outcome.retry_after
            else:
                ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
                delay = self._random.uniform(0.0, ceiling)
            if attempt > self.max_retries or elapsed + delay > self.max_wait:
                why = (
                    f"max_retries={self.max_retries} reached"
                    if attempt > self.max_retries
                    else f"next wait {delay:.1f} s would exceed max_wait={self.max_wait:g} s"
                )
                message = self._scrub(
                    f"{utility}: NCBI unavailable after {attempt} attempt(s) in "
                    f"{elapsed:.1f} s ({why}); last error: {outcome.reason}"
                )
                logger.error("%s", message)
                raise NCBIUnavailable(message)
            logger.warning(
                "%s",
                self._scrub(
                    f"{utility} attempt {attempt} failed ({outcome.reason}); "
                    f"retrying in {delay:.2f} s"
                ),
            )
            time.sleep(delay)

    def _attempt(self, utility: str, request: Request) -> tuple[int, bytes] | _Failure:
        """Make one HTTP request; return ``(status, body)`` or a retryable failure."""
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return int(response.status), response.read()
        except HTTPError as error:
            status = error.code
            try:
                body = error.read()
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                error.close()
            detail = _error_detail(body) or str(error.reason)
            if status in _RETRY_STATUSES:
                retry_after = _retry_after_seconds(error.headers.get("Retry-After"))
                return _Failure(f"HTTP {status} {detail}", status, retry_after)
            raise NCBIError(self._scrub(f"{utility}: HTTP {status}: {detail}")) from error
        except http.client.IncompleteRead as error:
            got, missing = len(error.partial), error.expected
            reason = f"connection closed mid-body ({got} bytes read, {missing} more expected)"
            return _Failure(reason, None, None)
        except (OSError, http.client.HTTPException) as error:
            # URLError (refused, reset, DNS), socket timeouts, RemoteDisconnected.
            cause = getattr(error, "reason", None) or error
            return _Failure(f"{type(error).__name__}: {cause}", None, None)

    def _scrub(self, text: str) -> str:
        """Remove the API key from text that is about to be logged or raised."""
        return text.replace(self._api_key, "***") if self._api_key else text


# -- module helpers -------------------------------------------------------------------


def _make_opener(base_url: str) -> OpenerDirector:
    """Build the urllib opener; loopback servers bypass any configured proxy."""
    host = urlsplit(base_url).hostname or ""
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    return build_opener(ProxyHandler({})) if loopback else build_opener()


def _sanitise(request: Request, cgi: str, method: str) -> tuple[str, dict[str, str]]:
    """Return the request's URL and parameters with the API key removed."""
    if method == "POST":
        data = request.data
        encoded = data.decode() if isinstance(data, bytes) else ""
    else:
        encoded = urlsplit(request.full_url).query
    pairs = [(k, v) for k, v in parse_qsl(encoded, keep_blank_values=True) if k != "api_key"]
    params: dict[str, str] = {}
    for key, value in pairs:
        params[key] = f"{params[key]},{value}" if key in params else value
    url = cgi if method == "POST" else f"{cgi}?{urlencode(pairs)}"
    return url, params


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After`` (delta-seconds or HTTP-date) into seconds from now."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _error_detail(body: bytes) -> str:
    """NCBI's message from an error body (``<ERROR>`` elements or JSON ``error``)."""
    messages = _error_messages(body)
    if messages:
        return "; ".join(messages)
    stripped = body.strip()
    if stripped.startswith(b"{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            return ""
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])
    return ""


def _error_messages(body: bytes) -> list[str]:
    found = (html.unescape(m.decode("utf-8", "replace")).strip() for m in _ERROR_RE.findall(body))
    return [m for m in found if m]


def _parse_envelope(raw: RawResponse, root_tag: str, scrub: Callable[[str], str]) -> Any:
    """Parse a small E-utilities XML envelope safely; raise on ``<ERROR>`` or bad XML."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(raw.body, parser)
    except etree.XMLSyntaxError as error:
        messages = _error_messages(raw.body)
        if messages:
            raise NCBIError(scrub(f"{raw.utility}: NCBI error: {'; '.join(messages)}")) from error
        raise ParseError(
            f"{raw.utility}: response is not well-formed XML ({len(raw.body)} bytes, "
            f"truncated or not XML): {error}"
        ) from error
    candidates = [root] if root.tag == "ERROR" else list(root.iterchildren("ERROR"))
    messages = [(e.text or "").strip() for e in candidates]
    messages = [m for m in messages if m]
    if messages:
        raise NCBIError(scrub(f"{raw.utility}: NCBI error: {'; '.join(messages)}"))
    if root.tag != root_tag:
        raise ParseError(f"{raw.utility}: expected <{root_tag}>, got <{root.tag}>")
    return root


def _check_pubmed_set(raw: RawResponse, scrub: Callable[[str], str]) -> None:
    """Raise unless ``raw.body`` is a complete ``<PubmedArticleSet>`` document."""
    if _SET_END_RE.search(raw.body[-256:]):
        return
    messages = _error_messages(raw.body)
    if messages:
        raise NCBIError(scrub(f"{raw.utility}: NCBI error: {'; '.join(messages)}"))
    raise ParseError(
        f"{raw.utility}: incomplete PubMed XML ({len(raw.body)} bytes): the body does not "
        "end with </PubmedArticleSet> (truncated response); the batch was discarded"
    )


def _linkset(element: Any) -> LinkSet:
    dbs = []
    for db in element.iterfind("LinkSetDb"):
        links = tuple(
            Link(_text(link.find("Id")), _opt_int(link.findtext("Score")))
            for link in db.iterfind("Link")
        )
        dbs.append(LinkSetDb(_text(db.find("DbTo")), _text(db.find("LinkName")), links))
    errors = tuple(m for m in (_text(e) for e in element.iter("ERROR")) if m)
    return LinkSet(
        dbfrom=_text(element.find("DbFrom")),
        ids=tuple(_text(e) for e in element.iterfind("IdList/Id")),
        dbs=tuple(dbs),
        errors=errors,
    )


def _docsum(element: Any) -> DocSummary:
    items = {item.get("Name"): item for item in element.iterfind("Item")}
    article_ids: dict[str, str] = {}
    if (ids := items.get("ArticleIds")) is not None:
        for item in ids.iterfind("Item"):
            if item.text and item.text.strip():
                article_ids[str(item.get("Name"))] = item.text.strip()
    title, eloc = items.get("Title"), items.get("ELocationID")
    return DocSummary(
        uid=_text(element.find("Id")),
        title=_opt(title.text) if title is not None else None,
        article_ids=article_ids,
        elocation_id=_opt(eloc.text) if eloc is not None else None,
    )


def _text(element: Any) -> str:
    if element is None:
        return ""
    return "".join(str(t) for t in element.itertext()).strip()


def _opt(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _int(value: str | None) -> int:
    try:
        return int(value.strip()) if value else 0
    except ValueError as error:
        raise ParseError(f"expected an integer, got {value!r}") from error


def _opt_int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _clean_pmid(value: str) -> str:
    pmid = str(value).strip()
    if not pmid.isdigit() or not pmid.isascii():
        raise ValueError(f"not a PMID: {value!r}")
    return str(int(pmid))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_batch_size(batch_size: int) -> None:
    if not 1 <= batch_size <= MAX_EFETCH_BATCH:
        raise ValueError(f"batch_size must be 1..{MAX_EFETCH_BATCH}, got {batch_size}")


def _normalise_doi(value: str) -> str | None:
    doi = _DOI_PREFIX_RE.sub("", value.strip())
    if '"' in doi or not vocabulary.DOI_RE.fullmatch(doi):
        return None
    return doi
