"""PubMed ingestion steps: resolve article citations to PMIDs, fetch records, store them.

Every E-utilities response is stored exactly in ``raw_record`` (with sha256, the request
minus the API key, and the retrieval time); each study points at the response it was parsed
from. A re-run works from the database: resolved citations are not resolved again and
studies already stored are not fetched again, unless ``refresh`` is set. A response that does
not parse completely (a truncated body) is refused whole: no partial rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import crud
from evidence.config import Settings, get_settings
from evidence.db import read_session, session_scope
from evidence.errors import InputError, NCBIError, NCBIUnavailable, ParseError
from evidence.models import Citation, RawRecord, Study
from ingest.entrez import EntrezClient, RawResponse
from ingest.load import LoadStats, raw_body, store_raw, upsert_studies
from ingest.pubmed_xml import PubmedRecord, parse_pubmed_bytes

RETRYABLE = ("pending", "unavailable", "ncbi_error")
_PMID = re.compile(r"[1-9][0-9]{0,9}")
_PMID_SEPARATORS = re.compile(r"[,\s]+")


def parse_pmids(text: str, *, source: str, lines: bool = False) -> list[str]:
    """The PMIDs in ``text``, in order, without repeats.

    PMIDs are separated by commas, spaces or newlines; with ``lines`` (a file's text) ``#``
    starts a comment that runs to the end of its line.

    Parameters
    ----------
    text
        One ``--pmid`` value (``"1,2"``) or a file's text.
    source
        Named in the error (``--pmid`` or the file name).
    lines
        Read ``text`` as a file: comments allowed, errors name the line.

    Raises
    ------
    InputError
        An entry that is not a PMID (a positive whole number), naming it (and its line).
    """
    found: list[str] = []
    for number, line in enumerate(text.splitlines() or [text], start=1):
        if lines:
            line = line.split("#", 1)[0]
        for token in _PMID_SEPARATORS.split(line.strip()):
            if not token:
                continue
            if not _PMID.fullmatch(token):
                where = f"{source} line {number}" if lines else f"{source} {text!r}"
                raise InputError(f"{where}: {token!r} is not a PMID")
            found.append(token)
    return list(dict.fromkeys(found))


def make_client(settings: Settings | None = None, **overrides: Any) -> EntrezClient:
    """An E-utilities client configured from settings (email, tool, key, base URL)."""
    s = settings or get_settings()
    kwargs: dict[str, Any] = {
        "tool": s.ncbi_tool,
        "api_key": s.api_key,
        "base_url": s.eutils_base_url,
        "max_wait": s.ncbi_max_wait,
    }
    kwargs.update(overrides)
    return EntrezClient(s.ncbi_email, **kwargs)


def request_key(utility: str, params: dict[str, Any]) -> str:
    """A stable key for a request (utility + parameters, never the API key)."""
    clean = {k: str(v) for k, v in params.items() if k not in ("api_key", "tool", "email")}
    return hashlib.sha256(
        json.dumps([utility, clean], sort_keys=True).encode()
    ).hexdigest()


def save_response(session: Session, raw: RawResponse, *, actor: str = "system") -> RawRecord:
    """Store one E-utilities response with its provenance (``actor`` on its audit event)."""
    params = dict(raw.params)
    params.pop("api_key", None)
    params["_request_key"] = request_key(raw.utility, raw.params)
    return store_raw(session, body=raw.body, source="eutils", utility=raw.utility,
                     url=raw.url, method=raw.method, params=params, http_status=raw.status,
                     retrieved_at=raw.retrieved_at, sha256=raw.sha256, actor=actor)


def _set_status(session: Session, cit: Citation, *, status: str, reason: str | None,
                pmid: str | None, actor: str) -> None:
    if cit.status == status and cit.status_reason == reason and cit.pmid == pmid:
        return
    assert cit.id is not None
    crud.update_versioned(session, Citation, cit.id, expected_version=cit.version,
                          changes={"status": status, "status_reason": reason, "pmid": pmid},
                          actor=actor, action="citation.resolve")


def resolve_citations(
    engine: Engine, client: EntrezClient, *, refresh: bool = False, actor: str = "system",
) -> dict[str, int]:
    """Resolve pending scholarly citations to PMIDs (PMCID → PMID, DOI → PMID).

    PMIDs resolve as themselves; whether PubMed has them is settled when they are fetched.
    Failures leave a status with the reason: ``not_in_pubmed``, ``ncbi_error`` (NCBI's
    message) or ``unavailable`` (network); they are retried on the next run.

    Returns
    -------
    dict[str, int]
        Citations per resulting status.
    """
    with read_session(engine) as session:
        stmt = select(Citation).where(col(Citation.kind).in_(("pmid", "pmcid", "doi")))
        if not refresh:
            stmt = stmt.where(col(Citation.status).in_(RETRYABLE))
        todo = list(session.exec(stmt).all())
    by_kind: dict[str, list[Citation]] = {}
    for c in todo:
        by_kind.setdefault(c.kind, []).append(c)
    outcome: dict[str, tuple[str, str | None, str | None]] = {}
    for c in by_kind.get("pmid", []):
        outcome[f"pmid:{c.identifier}"] = ("resolved", None, c.identifier)
    lookups: list[tuple[str, Callable[[list[str]], dict[str, str | None]], str]] = [
        ("pmcid", client.pmcids_to_pmids, "PMCID has no PubMed record"),
        ("doi", client.dois_to_pmids, "DOI not found in PubMed"),
    ]
    for kind, fn, missing_reason in lookups:
        idents = sorted({c.identifier for c in by_kind.get(kind, [])})
        if not idents:
            continue
        try:
            mapping = fn(idents)
        except NCBIUnavailable as e:
            for i in idents:
                outcome[f"{kind}:{i}"] = ("unavailable", f"network unavailable: {e}", None)
            continue
        except (NCBIError, ParseError) as e:
            for i in idents:
                outcome[f"{kind}:{i}"] = ("ncbi_error", f"NCBI error: {e}", None)
            continue
        for i in idents:
            pmid = mapping.get(i)
            outcome[f"{kind}:{i}"] = (("resolved", None, pmid) if pmid
                                      else ("not_in_pubmed", missing_reason, None))
    _store_client_responses(engine, client, actor=actor)
    counts: dict[str, int] = {}
    with session_scope(engine) as session:
        for c in todo:
            status, reason, pmid = outcome[f"{c.kind}:{c.identifier}"]
            fresh = session.get(Citation, c.id)
            assert fresh is not None
            _set_status(session, fresh, status=status, reason=reason, pmid=pmid, actor=actor)
            counts[status] = counts.get(status, 0) + 1
    return counts


def _store_client_responses(engine: Engine, client: EntrezClient, *, actor: str) -> None:
    """Store the responses a client received outside of efetch (searches, links)."""
    pending = client.drain_responses()
    if not pending:
        return
    with session_scope(engine) as session:
        for raw in pending:
            save_response(session, raw, actor=actor)


def fetch_studies(
    engine: Engine,
    client: EntrezClient,
    pmids: Sequence[str],
    *,
    refresh: bool = False,
    actor: str = "system",
    on_pmids: Callable[[int], None] | None = None,
) -> tuple[LoadStats, list[str], int]:
    """Fetch and store PubMed records for ``pmids``.

    Each efetch response is parsed completely before anything is written; the response
    and the studies parsed from it are stored in one transaction.

    Parameters
    ----------
    engine, client
        Database engine and E-utilities client.
    pmids
        PMIDs to fetch; duplicates and blanks are dropped.
    refresh
        Fetch again even the PMIDs already stored.
    actor
        Recorded on audit events.
    on_pmids
        Progress: called with how many of the (unique) PMIDs were just settled: the ones
        already stored at once, then each batch's as it is stored. The calls add up to
        the number of unique PMIDs asked for.

    Returns
    -------
    (LoadStats, missing, from_cache)
        What was stored, the PMIDs PubMed returned no record for, and how many PMIDs were
        already stored (not fetched).

    Raises
    ------
    NCBIUnavailable, NCBIError, ParseError
        A batch could not be fetched or parsed; earlier batches stay stored.
    """
    wanted = list(dict.fromkeys(p.strip() for p in pmids if p.strip()))
    cached: set[str] = set()
    if not refresh and wanted:
        with read_session(engine) as session:
            for chunk in crud.chunked(wanted, 500):
                cached.update(session.exec(
                    select(Study.pmid).where(col(Study.pmid).in_(chunk),
                                             col(Study.raw_record_id).is_not(None))
                ).all())
    todo = [p for p in wanted if p not in cached]
    if on_pmids and cached:
        on_pmids(len(cached))
    stats = LoadStats()
    seen: set[str] = set()
    if todo:
        for raw in client.efetch_pubmed(todo):
            items = parse_pubmed_bytes(raw.body)  # whole body or ParseError: no partial rows
            with session_scope(engine) as session:
                rec = save_response(session, raw, actor=actor)
                batch_stats = upsert_studies(session, items, raw_record_id=rec.id, actor=actor)
            stats.add(batch_stats)
            client.drain_responses()  # this efetch body is stored above, with its studies
            seen.update(i.pmid for i in items if isinstance(i, PubmedRecord))
            if on_pmids:
                on_pmids(raw.id_count)  # PMIDs asked for, found or not
    missing = [p for p in todo if p not in seen]
    return stats, missing, len(cached)


def search_pmids(engine: Engine, client: EntrezClient, query: str, *, max_results: int,
                 refresh: bool = False, actor: str = "system") -> list[str]:
    """Run an esearch (or reuse its stored response) and return the PMIDs, best first.

    ``actor`` is recorded on the audit event of the stored response.
    """
    params = {"db": "pubmed", "term": query, "retmax": str(max_results), "retstart": "0"}
    key = request_key("esearch", params)
    if not refresh:
        with read_session(engine) as session:
            for raw in session.exec(
                select(RawRecord).where(RawRecord.utility == "esearch")
                .order_by(col(RawRecord.id).desc())
            ).all():
                if raw.params.get("_request_key") == key:
                    from lxml import etree

                    root = etree.fromstring(raw_body(raw), etree.XMLParser(
                        resolve_entities=False, no_network=True))
                    return [e.text or "" for e in root.iterfind("IdList/Id")]
    result = client.esearch(query, retmax=max_results)
    _store_client_responses(engine, client, actor=actor)
    return list(result.ids)


def mark_missing(engine: Engine, missing: Sequence[str], *, actor: str) -> None:
    """Citations whose PMID PubMed has no record for become ``not_in_pubmed``."""
    if not missing:
        return
    with session_scope(engine) as session:
        for chunk in crud.chunked(list(missing), 500):
            for cit in session.exec(select(Citation).where(col(Citation.pmid).in_(chunk))).all():
                _set_status(session, cit, status="not_in_pubmed",
                            reason="PubMed returned no record for this PMID", pmid=cit.pmid,
                            actor=actor)


def mark_unfetched(engine: Engine, *, status: str, reason: str, actor: str) -> None:
    """Resolved citations whose record could not be fetched get ``status`` and ``reason``.

    They are retried on the next run.
    """
    with session_scope(engine) as session:
        stored = set(session.exec(select(Study.pmid).where(
            col(Study.raw_record_id).is_not(None))).all())
        for cit in session.exec(select(Citation).where(Citation.status == "resolved")).all():
            if cit.pmid and cit.pmid not in stored:
                _set_status(session, cit, status=status, reason=reason, pmid=cit.pmid,
                            actor=actor)


def unresolved_citations(session: Session) -> list[Citation]:
    """Scholarly citations that could not be resolved or fetched, with their reasons."""
    return list(session.exec(
        select(Citation).where(col(Citation.status).in_(
            ("unavailable", "ncbi_error", "not_in_pubmed", "pending")))
        .order_by(col(Citation.article_id), col(Citation.id))
    ).all())


__all__ = ["fetch_studies", "make_client", "resolve_citations", "save_response",
           "search_pmids"]


def discoverer(
    engine: Engine, client: EntrezClient, *, per_claim: int = 5, actor: str = "system",
) -> Callable[[str, str], list[str]]:
    """A discovery function for ``evidence.linking.link_all``: search, fetch, store.

    Returns a callable taking (PubMed query, canonical statement) and returning the PMIDs
    of the top ``per_claim`` hits, fetched and stored (or already stored).
    """

    def discover(query: str, statement: str) -> list[str]:
        del statement  # the query already carries the claim's terms
        pmids = search_pmids(engine, client, query, max_results=per_claim, actor=actor)
        if pmids:
            fetch_studies(engine, client, pmids, actor=actor)
        return pmids

    return discover


def probe(client: EntrezClient) -> str | None:
    """One cheap request to see whether the E-utilities answer; the reason if they do not."""
    try:
        client.esearch("ketamine", retmax=0)
    except (NCBIUnavailable, NCBIError, ParseError) as e:
        client.drain_responses()
        return str(e)
    client.drain_responses()
    return None


def mark_unavailable(engine: Engine, reason: str, *, actor: str = "system") -> list[Citation]:
    """Give every unresolved scholarly citation the status ``unavailable`` with ``reason``."""
    with session_scope(engine) as session:
        cits = list(session.exec(
            select(Citation).where(col(Citation.kind).in_(("pmid", "pmcid", "doi")),
                                   col(Citation.status).in_(RETRYABLE))
            .order_by(col(Citation.id))).all())
        for cit in cits:
            _set_status(session, cit, status="unavailable",
                        reason=f"network unavailable: {reason}", pmid=cit.pmid, actor=actor)
    return cits
