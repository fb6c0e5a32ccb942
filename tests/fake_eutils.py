"""A fake NCBI E-utilities server on 127.0.0.1 for tests and benchmarks.

It is a real threaded HTTP server (GET and form-encoded POST) that answers
``esearch.fcgi``, ``efetch.fcgi``, ``elink.fcgi``, ``epost.fcgi`` and ``esummary.fcgi``:

* with the recorded NCBI files in ``../shared/fixtures`` (read in place), byte for byte,
  for the requests they were recorded from (esearch1/2/3, elink1, epost1/2/3,
  esummary1/8, pubmed*.xml, the MEDLINE files);
* otherwise with synthesised answers: PubMed XML for any PMID (a real record with its
  PMID and DOI rewritten), esearch results from tables tests fill in (terms, DOIs),
  elink ``pmc_pubmed`` from a PMCID table, esummary DocSums, and a history server for
  epost / ``usehistory`` (WebEnv + query_key, paged with retstart/retmax).

Faults are scripted per request (optionally per utility): HTTP statuses with or without
``Retry-After``, slow responses, truncated XML, bodies cut short of their
``Content-Length``, dropped connections, ``<ERROR>`` bodies. Every request is logged
with its arrival time so tests can check the request rate.

Usage::

    with FakeEutils(fixtures_dir) as server:
        client = EntrezClient("me@example.org", base_url=server.url)
        server.inject(Fault.too_many_requests(retry_after=1))
        ...
        assert server.max_rate() <= 3
"""

from __future__ import annotations

import gzip
import html
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PUBMED_HEADER = (
    b'<?xml version="1.0" ?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>\n"
)
PUBMED_FOOTER = b"\n</PubmedArticleSet>\n"
TEMPLATE_FILE = ("medline", "pubmed-29768149.xml")
KNOWN_DBS = frozenset({"pubmed", "pmc", "nlmcatalog", "mesh", "gene", "protein", "nuccore"})
MAX_UID = 18446744073709551615

_RECORD_RE = re.compile(
    rb"<(PubmedArticle|PubmedBookArticle)>.*?</(?:PubmedArticle|PubmedBookArticle)>", re.S
)
_PMID_RE = re.compile(rb"<PMID[^>]*>(\d+)</PMID>")
_DOI_ID_RE = re.compile(rb'<ArticleId IdType="doi">([^<]+)</ArticleId>')
_AID_RE = re.compile(r'"([^"]+)"\[AID\]', re.IGNORECASE)


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for one request.

    Build them with the class methods; ``utility`` limits the fault to requests for
    that utility (``"efetch"``...), ``None`` matches any.
    """

    kind: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    delay: float = 0.0
    keep: float = 0.5
    utility: str | None = None

    @classmethod
    def too_many_requests(
        cls,
        retry_after: float | str | None = None,
        *,
        body: bytes = b'{"error":"API rate limit exceeded","count":"4"}',
        utility: str | None = None,
    ) -> Fault:
        """HTTP 429, with ``Retry-After`` (seconds or an HTTP-date string) if given."""
        headers = () if retry_after is None else (("Retry-After", _retry_after(retry_after)),)
        return cls("status", 429, headers, body, utility=utility)

    @classmethod
    def server_error(
        cls,
        status: int = 500,
        *,
        retry_after: float | str | None = None,
        utility: str | None = None,
    ) -> Fault:
        """An HTTP 5xx (or any status) with a short HTML body."""
        headers = () if retry_after is None else (("Retry-After", _retry_after(retry_after)),)
        body = f"<html><body><h1>{status} Server Error</h1></body></html>".encode()
        return cls("status", status, headers, body, utility=utility)

    @classmethod
    def error_body(cls, message: str, *, status: int = 200, utility: str | None = None) -> Fault:
        """An ``<ERROR>message</ERROR>`` body (NCBI's way of refusing a request)."""
        body = (
            b'<?xml version="1.0" encoding="UTF-8" ?>\n<eResult><ERROR>'
            + html.escape(message).encode()
            + b"</ERROR></eResult>\n"
        )
        return cls("status", status, (), body, utility=utility)

    @classmethod
    def respond(cls, body: bytes, *, status: int = 200, utility: str | None = None) -> Fault:
        """Answer with exactly ``body`` (e.g. a recorded fixture file)."""
        return cls("status", status, (), body, utility=utility)

    @classmethod
    def slow(cls, seconds: float, *, utility: str | None = None) -> Fault:
        """Wait ``seconds`` before answering normally (to trigger client timeouts)."""
        return cls("slow", delay=seconds, utility=utility)

    @classmethod
    def truncated(cls, keep: float = 0.5, *, utility: str | None = None) -> Fault:
        """A complete HTTP response whose XML body is cut to ``keep`` of its length."""
        return cls("truncate", keep=keep, utility=utility)

    @classmethod
    def incomplete(cls, keep: float = 0.5, *, utility: str | None = None) -> Fault:
        """Announce the full ``Content-Length``, send ``keep`` of the body, close."""
        return cls("incomplete", keep=keep, utility=utility)

    @classmethod
    def drop(cls, *, utility: str | None = None) -> Fault:
        """Close the connection without sending any response."""
        return cls("drop", utility=utility)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it."""

    time: float
    method: str
    path: str
    utility: str
    params: dict[str, list[str]]
    id_count: int
    fault: str | None = None

    def param(self, name: str) -> str | None:
        """The first value of parameter ``name``, or ``None``."""
        values = self.params.get(name)
        return values[0] if values else None

    @property
    def ids(self) -> list[str]:
        """All ids sent (comma-separated values and repeated ``id`` parameters)."""
        return [i for group in _id_groups(self.params) for i in group]


@dataclass
class _State:
    records: dict[str, bytes] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    doi_to_pmids: dict[str, list[str]] = field(default_factory=dict)
    pmid_to_doi: dict[str, str] = field(default_factory=dict)
    pmc_to_pmid: dict[str, str] = field(default_factory=dict)
    searches: dict[str, list[str]] = field(default_factory=dict)
    history: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # PMID -> {"edat": "YYYY/MM/DD", "mdat": ...}: the dates esearch's date filter reads.
    dates: dict[str, dict[str, str]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[RequestRecord] = field(default_factory=list)


SYNTHETIC_PMID_FLOOR = 90_000_000


def _is_synthetic(pmid: str) -> bool:
    """Whether ``pmid`` is in the plainly synthetic range (never a real PubMed record)."""
    return pmid.isdigit() and int(pmid) >= SYNTHETIC_PMID_FLOOR


class FakeEutils:
    """Fake NCBI E-utilities server; see the module docstring.

    Parameters
    ----------
    fixtures_dir
        ``../shared/fixtures`` (holding ``ncbi/`` and ``medline/``), read in place.
    """

    def __init__(self, fixtures_dir: Path) -> None:
        self.fixtures_dir = fixtures_dir
        self._lock = threading.Lock()
        self._state = _State()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        template = self._fixture(*TEMPLATE_FILE)
        record = _RECORD_RE.search(template)
        pmid, doi = _PMID_RE.search(template), _DOI_ID_RE.search(template)
        if record is None or pmid is None or doi is None:
            raise RuntimeError(f"{TEMPLATE_FILE} has no usable PubmedArticle")
        self._template = record.group(0)
        self._template_pmid = pmid.group(1)
        self._template_doi = doi.group(1)
        self._fixture_records: dict[str, bytes] = {}
        self._fixture_sets: dict[tuple[str, ...], bytes] = {}
        for parts in _PUBMED_FIXTURES:
            data = self._fixture(*parts)
            records = [m.group(0) for m in _RECORD_RE.finditer(data)]
            pmids = tuple(_first_pmid(r) for r in records)
            self._fixture_sets[tuple(sorted(pmids))] = data
            for pmid_value, record_bytes in zip(pmids, records, strict=True):
                self._fixture_records.setdefault(pmid_value, record_bytes)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeEutils:
        """Start serving on an ephemeral port of 127.0.0.1."""
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeEutils:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to give ``EntrezClient(base_url=...)``."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/entrez/eutils/"

    # -- data tables -------------------------------------------------------------

    def add_record(self, pmid: str, xml: bytes) -> None:
        """Serve ``xml`` (one ``<PubmedArticle>`` element) for ``pmid``."""
        with self._lock:
            self._state.records[str(pmid)] = xml
            self._state.missing.discard(str(pmid))

    def add_missing(self, *pmids: str) -> None:
        """Make efetch return nothing for these PMIDs (as for deleted records)."""
        with self._lock:
            self._state.missing.update(str(p) for p in pmids)

    def add_doi(self, doi: str, pmid: str) -> None:
        """Map ``doi`` to ``pmid`` for ``[AID]`` searches, esummary and records."""
        with self._lock:
            self._state.doi_to_pmids.setdefault(doi.lower(), []).append(str(pmid))
            self._state.pmid_to_doi[str(pmid)] = doi

    def add_pmcid(self, pmcid: str, pmid: str) -> None:
        """Map ``pmcid`` (``PMC123`` or ``123``) to ``pmid`` for elink pmc_pubmed."""
        with self._lock:
            self._state.pmc_to_pmid[pmcid.upper().removeprefix("PMC")] = str(pmid)

    def set_dates(self, pmid: str, *, added: str | None = None,
                  modified: str | None = None) -> None:
        """Give ``pmid`` an Entrez date (``edat``, when PubMed added it) and a modification
        date (``mdat``), as ``YYYY/MM/DD`` or ``YYYY-MM-DD``, for esearch's date filters
        (``datetype``, ``mindate``, ``maxdate``). A PMID with no such date never passes a
        filter on it."""
        with self._lock:
            dates = self._state.dates.setdefault(str(pmid), {})
            if added is not None:
                dates["edat"] = added.replace("-", "/")
            if modified is not None:
                dates["mdat"] = modified.replace("-", "/")

    def set_search(self, term: str, ids: Sequence[str]) -> None:
        """Make esearch for exactly ``term`` return ``ids``."""
        with self._lock:
            self._state.searches[term] = [str(i) for i in ids]

    def history(self, webenv: str, query_key: str) -> list[str]:
        """The ids stored under ``webenv``/``query_key`` (empty if unknown)."""
        with self._lock:
            return list(self._state.history.get(webenv, {}).get(query_key, []))

    def doi_for(self, pmid: str) -> str:
        """The DOI the server reports for ``pmid`` (table entry or a synthetic one)."""
        with self._lock:
            return self._state.pmid_to_doi.get(str(pmid), f"10.5555/synthetic.{pmid}")

    def synthetic_record(self, pmid: str) -> bytes:
        """The template record rewritten for ``pmid`` (and its DOI); for plainly synthetic
        PMIDs (``SYNTHETIC_PMID_FLOOR`` and up) only: a real PMID never gets invented
        content."""
        if not _is_synthetic(pmid):
            raise ValueError(f"PMID {pmid} may be real: no invented record is made for it")
        new_doi = html.escape(self.doi_for(pmid)).encode()
        record = self._template.replace(self._template_pmid, str(pmid).encode())
        return record.replace(self._template_doi, new_doi)

    # -- faults ------------------------------------------------------------------

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` matching requests."""
        with self._lock:
            self._state.faults.extend([fault] * times)

    def pending_faults(self) -> int:
        """Number of queued faults not yet used."""
        with self._lock:
            return len(self._state.faults)

    def clear_faults(self) -> None:
        """Drop all queued faults."""
        with self._lock:
            self._state.faults.clear()

    # -- request log -------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in arrival order."""
        with self._lock:
            return list(self._state.log)

    def clear_log(self) -> None:
        """Forget logged requests."""
        with self._lock:
            self._state.log.clear()

    def max_rate(self, window: float = 1.0, *, utility: str | None = None) -> int:
        """Most requests that arrived within any sliding ``window`` seconds."""
        return max(self._window_counts(window, utility), default=0)

    def rate_violations(
        self, limit: int, window: float = 1.0, *, utility: str | None = None
    ) -> int:
        """Requests that arrived when more than ``limit`` had arrived in ``window``."""
        return sum(1 for n in self._window_counts(window, utility) if n > limit)

    def _window_counts(self, window: float, utility: str | None) -> list[int]:
        times = sorted(r.time for r in self.requests if utility in (None, r.utility))
        return window_counts(times, window)

    # -- internals ---------------------------------------------------------------

    def _fixture(self, *parts: str) -> bytes:
        path = self.fixtures_dir.joinpath(*parts)
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data

    def _take_fault(self, utility: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._state.faults):
                if fault.utility in (None, utility):
                    return self._state.faults.pop(index)
        return None

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._state.log.append(record)

    def _store(self, ids: list[str], webenv: str | None = None) -> tuple[str, str]:
        with self._lock:
            env = webenv or f"MCID_{uuid.uuid4().hex[:24]}"
            keys = self._state.history.setdefault(env, {})
            query_key = str(len(keys) + 1)
            keys[query_key] = list(ids)
            return env, query_key

    def _register(self, webenv: str, query_key: str, ids: list[str]) -> None:
        with self._lock:
            self._state.history.setdefault(webenv, {})[query_key] = list(ids)

    def respond(self, utility: str, params: dict[str, list[str]]) -> tuple[int, bytes]:
        """Build the normal (fault-free) answer to a request."""
        handler = {
            "esearch": self._esearch,
            "efetch": self._efetch,
            "epost": self._epost,
            "elink": self._elink,
            "esummary": self._esummary,
        }.get(utility)
        if handler is None:
            return 404, b"<html><body>404 Not Found</body></html>"
        return handler(params)

    def _ids_or_history(self, params: dict[str, list[str]], default_retmax: int) -> list[str]:
        ids = [i for group in _id_groups(params) for i in group]
        if ids:
            return ids
        webenv, query_key = _first(params, "WebEnv"), _first(params, "query_key")
        if not webenv or not query_key:
            return []
        stored = self.history(webenv, query_key)
        start = int(_first(params, "retstart") or 0)
        count = int(_first(params, "retmax") or default_retmax)
        return stored[start : start + count]

    def _esearch(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        term = _first(params, "term") or ""
        usehistory = _first(params, "usehistory") == "y"
        if term == "biopython":
            return 200, self._fixture("ncbi", "esearch1.xml")
        if term == "PNAS[ta] AND 97[vi]":
            return 200, self._fixture("ncbi", "esearch3.xml")
        if term == "cancer" and usehistory:
            data = self._fixture("ncbi", "esearch2.xml")
            env_match = re.search(rb"<WebEnv>([^<]+)</WebEnv>", data)
            ids = [i.decode() for i in re.findall(rb"<Id>(\d+)</Id>", data)]
            if env_match:
                self._register(env_match.group(1).decode(), "1", ids)
            return 200, data
        history_refs = (re.findall(r"#(\d+)", term)
                        if re.fullmatch(r"\s*#\d+(?:\s+OR\s+#\d+)*\s*", term) else [])
        webenv_in = _first(params, "WebEnv")
        with self._lock:
            found = self._state.searches.get(term)
            if history_refs and webenv_in:  # stored sets ("#1 OR #2") of one WebEnv
                stored = self._state.history.get(webenv_in, {})
                found = list(dict.fromkeys(i for key in history_refs
                                           for i in stored.get(key, [])))
            aids = _AID_RE.findall(term)
            not_found: list[str] = []
            if found is None and aids:
                found = []
                for doi in aids:
                    pmids = self._state.doi_to_pmids.get(doi.lower(), [])
                    found.extend(p for p in pmids if p not in found)
                    if not pmids:
                        not_found.append(f'"{doi}"[AID]')
            matches = sorted(found or [], key=int, reverse=True) if aids else list(found or [])
            datetype = _first(params, "datetype")
            if datetype:
                low = (_first(params, "mindate") or "0000/00/00").replace("-", "/")
                high = (_first(params, "maxdate") or "9999/99/99").replace("-", "/")
                matches = [m for m in matches
                           if low <= self._state.dates.get(m, {}).get(datetype, "")[:10]
                           <= high and self._state.dates.get(m, {}).get(datetype)]
        retstart = int(_first(params, "retstart") or 0)
        retmax = int(_first(params, "retmax") or 20)
        page = matches[retstart : retstart + retmax]
        parts = [
            b'<?xml version="1.0" encoding="UTF-8" ?>\n'
            b'<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
            b'"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n',
            f"<eSearchResult><Count>{len(matches)}</Count><RetMax>{len(page)}</RetMax>"
            f"<RetStart>{retstart}</RetStart>".encode(),
        ]
        if usehistory:
            webenv, query_key = self._store(matches, _first(params, "WebEnv"))
            parts.append(f"<QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv>".encode())
        parts.append(b"<IdList>\n" + b"".join(f"<Id>{i}</Id>\n".encode() for i in page))
        parts.append(b"</IdList><TranslationSet/>")
        if not_found:
            phrases = "".join(
                f"<PhraseNotFound>{html.escape(p)}</PhraseNotFound>" for p in not_found
            )
            parts.append(f"<ErrorList>{phrases}</ErrorList>".encode())
        parts.append(
            f"<QueryTranslation>{html.escape(term)}</QueryTranslation></eSearchResult>\n".encode()
        )
        return 200, b"".join(parts)

    def _efetch(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        ids = self._ids_or_history(params, default_retmax=20)
        if not ids:
            if _first(params, "WebEnv"):
                message = f"Unable to obtain query #{_first(params, 'query_key')}"
            else:
                message = "Empty id list - nothing todo"
            return 200, _error_doc("eFetchResult", message)
        recorded = self._fixture_sets.get(tuple(sorted(ids)))
        if recorded is not None:
            return 200, recorded
        with self._lock:
            registry = dict(self._state.records)
            missing = set(self._state.missing)
        records = []
        for pmid in ids:
            if pmid in missing:
                continue
            record = registry.get(pmid) or self._fixture_records.get(pmid)
            if record is None and _is_synthetic(pmid):
                record = self.synthetic_record(pmid)
            if record is not None:  # a real PMID with no recorded response: not served,
                records.append(record)  # never given invented content
        return 200, PUBMED_HEADER + b"\n".join(records) + PUBMED_FOOTER

    def _epost(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        db = _first(params, "db") or ""
        if db not in KNOWN_DBS:
            data = self._fixture("ncbi", "epost2.xml")
            return 200, data.replace(b"nothing", html.escape(db).encode())
        ids = [i for group in _id_groups(params) for i in group]
        valid = [i for i in ids if i.isdigit() and int(i) <= MAX_UID]
        if not valid:
            return 200, self._fixture("ncbi", "epost3.xml")
        if valid == ["11237011"] and not _first(params, "WebEnv"):
            data = self._fixture("ncbi", "epost1.xml")
            env_match = re.search(rb"<WebEnv>([^<]+)</WebEnv>", data)
            if env_match:
                self._register(env_match.group(1).decode(), "1", valid)
            return 200, data
        webenv, query_key = self._store(valid, _first(params, "WebEnv"))
        invalid = "".join(f"<Id>{html.escape(i)}</Id>" for i in ids if i not in valid)
        body = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n<ePostResult>\n'
            + (f"\t<InvalidIdList>{invalid}</InvalidIdList>\n" if invalid else "")
            + f"\t<QueryKey>{query_key}</QueryKey>\n\t<WebEnv>{webenv}</WebEnv>\n</ePostResult>\n"
        )
        return 200, body.encode()

    def _elink(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        dbfrom, db = _first(params, "dbfrom") or "", _first(params, "db") or ""
        groups = _id_groups(params)
        if dbfrom == "pubmed" and groups == [["9298984"]] and db in ("", "pubmed"):
            return 200, self._fixture("ncbi", "elink1.xml")
        out = [
            '<?xml version="1.0" encoding="UTF-8" ?>\n'
            '<!DOCTYPE eLinkResult PUBLIC "-//NLM//DTD elink 20101123//EN" '
            '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20101123/elink.dtd">\n<eLinkResult>\n'
        ]
        with self._lock:
            pmc_table = dict(self._state.pmc_to_pmid)
        for group in groups:
            out.append(f"  <LinkSet>\n    <DbFrom>{html.escape(dbfrom)}</DbFrom>\n    <IdList>\n")
            out.extend(f"      <Id>{html.escape(i)}</Id>\n" for i in group)
            out.append("    </IdList>\n")
            targets = [pmc_table[i] for i in group if i in pmc_table] if dbfrom == "pmc" else []
            if targets and db == "pubmed":
                links = "".join(f"<Link><Id>{t}</Id></Link>" for t in targets)
                out.append(
                    "    <LinkSetDb><DbTo>pubmed</DbTo><LinkName>pmc_pubmed</LinkName>"
                    f"{links}</LinkSetDb>\n"
                )
            out.append("  </LinkSet>\n")
        out.append("</eLinkResult>\n")
        return 200, "".join(out).encode()

    def _esummary(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        ids = self._ids_or_history(params, default_retmax=10_000)
        if not ids:
            if not _first(params, "id") and not _first(params, "query_key"):
                return 200, self._fixture("ncbi", "esummary8.xml")
            return 200, _error_doc("eSummaryResult", "Empty result - nothing to do")
        if sorted(ids) == sorted(["11850928", "11482001"]):
            return 200, self._fixture("ncbi", "esummary1.xml")
        out = [
            '<?xml version="1.0" encoding="UTF-8" ?>\n'
            '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary v1 20041029//EN" '
            '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20041029/esummary-v1.dtd">\n'
            "<eSummaryResult>\n"
        ]
        for pmid in ids:
            doi = html.escape(self.doi_for(pmid))
            out.append(
                f"<DocSum>\n\t<Id>{pmid}</Id>\n"
                f'\t<Item Name="Title" Type="String">Synthetic record {pmid}.</Item>\n'
                '\t<Item Name="ArticleIds" Type="List">\n'
                f'\t\t<Item Name="pubmed" Type="String">{pmid}</Item>\n'
                f'\t\t<Item Name="doi" Type="String">{doi}</Item>\n'
                "\t</Item>\n"
                f'\t<Item Name="ELocationID" Type="String">doi: {doi}</Item>\n'
                "</DocSum>\n"
            )
        out.append("</eSummaryResult>\n")
        return 200, "".join(out).encode()


_PUBMED_FIXTURES: tuple[tuple[str, str], ...] = (
    ("ncbi", "pubmed1.xml"),
    ("ncbi", "pubmed2.xml"),
    ("ncbi", "pubmed4.xml"),
    ("ncbi", "pubmed5.xml"),
    ("ncbi", "pubmed6.xml"),
    ("ncbi", "pubmed7.xml"),
    TEMPLATE_FILE,
    ("medline", "test_current_medline.xml.gz"),
)


def window_counts(times: Sequence[float], window: float = 1.0) -> list[int]:
    """For each time (sorted), how many times fall in ``(t - window, t]``."""
    counts: list[int] = []
    first = 0
    for index, moment in enumerate(times):
        while times[first] <= moment - window:
            first += 1
        counts.append(index - first + 1)
    return counts


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _id_groups(params: dict[str, list[str]]) -> list[list[str]]:
    """One group per ``id`` parameter, each split on commas."""
    return [[i.strip() for i in v.split(",") if i.strip()] for v in params.get("id", [])]


def _first_pmid(record: bytes) -> str:
    match = _PMID_RE.search(record)
    if match is None:
        raise RuntimeError("fixture record without PMID")
    return match.group(1).decode()


def _error_doc(root: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<{root}>\n'
        f"\t<ERROR>{html.escape(message)}</ERROR>\n</{root}>\n"
    ).encode()


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: FakeEutils
    ) -> None:
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up on purpose; a traceback per test is noise.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        arrived = time.monotonic()
        app = self.server.app
        parsed = urlsplit(self.path)
        params = parse_qs(parsed.query, keep_blank_values=True)
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("utf-8"), keep_blank_values=True)
            for key, values in form.items():
                params.setdefault(key, []).extend(values)
        utility = parsed.path.rsplit("/", 1)[-1].removesuffix(".fcgi")
        fault = app._take_fault(utility)
        ids = sum(len(g) for g in _id_groups(params))
        app._log(
            RequestRecord(
                arrived, method, parsed.path, utility, params, ids, fault.kind if fault else None
            )
        )
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            app._stopping.wait(fault.delay)
        if fault is not None and fault.kind == "status":
            self._send(fault.status, fault.body or b"", fault.headers)
            return
        try:
            status, body = app.respond(utility, params)
        except Exception as error:  # a bug in the fake: make it visible to the client
            self._send(500, f"fake server error: {error!r}".encode(), ())
            return
        if fault is not None and fault.kind == "truncate":
            body = body[: int(len(body) * fault.keep)]
        if fault is not None and fault.kind == "incomplete":
            self._send(status, body, (), cut=int(len(body) * fault.keep))
            return
        self._send(status, body, ())

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Iterable[tuple[str, str]],
        *,
        cut: int | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body if cut is None else body[:cut])
        except (BrokenPipeError, ConnectionResetError):
            pass


def iter_ids(start: int, count: int) -> Iterator[str]:
    """``count`` consecutive synthetic PMIDs starting at ``start``."""
    return (str(n) for n in range(start, start + count))
