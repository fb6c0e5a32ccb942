"""Multi-step jobs: ingest articles, ingest PubMed records, load MEDLINE files, link, the demo.

The shells (the CLI, the demo) run these; the steps themselves live in ``ingest`` and
``evidence``. Every job

* is recorded as ``ingest_run`` rows through one helper, ``evidence.crud.ingest_run``
  (status ``ok``, ``partial`` with the problems met, ``error``, or ``interrupted``: see
  ``evidence.models.RUN_STATUSES``), with its summary as the run's statistics;
* reports progress through one callback shape, :data:`Progress`;
* commits per unit of work (one article, one efetch batch, one batch of a bulk file, one
  article's links), so an error part-way loses nothing already done and leaves no
  half-written unit behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from evidence import crud, db, linking, queries, review
from evidence.config import get_settings
from evidence.errors import (
    InputError,
    NCBIError,
    NCBIUnavailable,
    ParseError,
    SubstantiateError,
)
from evidence.linking import LinkSummary
from evidence.models import Citation, IngestRun
from ingest import articles as article_reader
from ingest import medline, pubmed, store
from ingest import surveil as surveil_mod
from ingest.entrez import EntrezClient
from ingest.load import LoadStats
from ingest.surveil import SurveilReport

Progress = Callable[[str, int, int | None], None]
"""``progress(label, done, total)``: a job's progress, for a bar or a log.

``label`` names the stage ("articles", "PubMed records", "claims", a bulk file's name);
``done`` is how many of the stage's units are finished so far (it only grows within a
stage, and starts again when the label changes); ``total`` is the stage's number of units,
or ``None`` when it is not known in advance. Every stage opens with a call at ``done=0``
and, when it completes, ends with ``done == total``.
"""


def _stage(progress: Progress | None, label: str, total: int | None) -> Callable[[int], None]:
    """Open a stage; return ``advance(n)``, which reports ``n`` more units done."""
    done = 0
    if progress:
        progress(label, done, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(label, done, total)

    return advance


# ------------------------------------------------------------------------------ articles


@dataclass
class ArticleRunSummary:
    """What ``ingest_articles`` did, per status, with the errors it met."""

    new: int = 0
    new_version: int = 0
    unchanged: int = 0
    claims: int = 0
    citations: int = 0
    errors: list[str] = field(default_factory=list)
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"new": self.new, "new_version": self.new_version, "unchanged": self.unchanged,
                "claims": self.claims, "citations": self.citations, "errors": self.errors,
                "run_id": self.run_id}


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Paths (directories expanded to supported files) and URLs, in order.

    Raises
    ------
    InputError
        A path does not exist, or a directory holds no supported file.
    """
    out: list[str] = []
    for item in inputs:
        if item.startswith(("http://", "https://")):
            out.append(item)
            continue
        path = Path(item)
        if not path.exists():
            raise InputError(f"{item}: no such file or directory")
        found = [str(p) for p in article_reader.iter_paths([path])]
        if path.is_dir() and not found:
            raise InputError(f"{item}: no supported article files (.txt, .md, .html) in it")
        out.extend(found)
    return out


def ingest_articles(
    engine: Engine,
    inputs: Sequence[str],
    *,
    actor: str = crud.SYSTEM,
    progress: Progress | None = None,
    keep_going: bool = False,
) -> ArticleRunSummary:
    """Read and store every article in ``inputs`` (files, directories, URLs).

    Parameters
    ----------
    engine
        Database engine.
    inputs
        Paths or http(s) URLs; directories expand to their ``.txt``/``.md``/``.html`` files.
    actor
        Recorded in the audit trail.
    progress
        Stage ``articles``: one unit per input item.
    keep_going
        Record a failing item's error (any error: unreadable or refused input, a download
        that fails, a database that refuses the article, whose transaction is then rolled
        back) as one line in ``errors`` and carry on instead of stopping at it (the run is
        then ``partial``).

    Returns
    -------
    ArticleRunSummary

    Raises
    ------
    InputError, FetchError
        The first bad item, unless ``keep_going`` (so does any other error of an item).
    """
    summary = ArticleRunSummary()
    if keep_going:
        items: list[str] = []
        for item in inputs:
            try:
                items.extend(expand_inputs([item]))
            except InputError as e:
                summary.errors.append(str(e))
    else:
        items = expand_inputs(inputs)
    advance = _stage(progress, "articles", len(items))
    with crud.ingest_run(engine, kind="ingest_articles", actor=actor,
                         params={"inputs": list(inputs)}) as run:
        run.stats, run.problems = summary, summary.errors  # the run reads the summary
        summary.run_id = run.id
        for item in items:
            try:
                if item.startswith(("http://", "https://")):
                    parsed = article_reader.fetch_url(item)
                else:
                    parsed = article_reader.read_path(Path(item))
                # One transaction per article: others get the write lock between articles,
                # and a refused article leaves nothing behind.
                with db.session_scope(engine) as session:
                    res = store.store_article(session=session, parsed=parsed, actor=actor,
                                              run_id=run.id)
            except Exception as e:
                if not keep_going:
                    raise
                summary.errors.append(_item_error(item, e))
            else:
                setattr(summary, res.status, getattr(summary, res.status) + 1)
                summary.claims += res.claims
                summary.citations += res.citations
            advance(1)
    return summary


def _item_error(item: str, error: Exception) -> str:
    """One line naming the input and what went wrong with it."""
    if isinstance(error, SQLAlchemyError):
        reason = str(getattr(error, "orig", None) or error).strip()
        reason = f"database error: {reason.splitlines()[0] if reason else type(error).__name__}"
    elif isinstance(error, SubstantiateError | OSError):
        reason = str(error)
    else:
        reason = f"{type(error).__name__}: {error}"
    line = " ".join(reason.split())
    return line if item in line else f"{item}: {line}"


# ------------------------------------------------------------------------------ PubMed


@dataclass
class PubmedSummary:
    """What an ``ingest_pubmed`` run did."""

    resolved: dict[str, int] = field(default_factory=dict)
    fetched: LoadStats = field(default_factory=LoadStats)
    requested: int = 0
    from_cache: int = 0
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    query_pmids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"resolved": self.resolved, "fetched": self.fetched.as_dict(),
                "requested": self.requested, "from_cache": self.from_cache,
                "missing": self.missing, "problems": self.problems,
                "query_pmids": self.query_pmids}


def ingest_pubmed(
    engine: Engine,
    client: EntrezClient,
    *,
    pmids: Sequence[str] = (),
    query: str | None = None,
    max_results: int = 20,
    refresh: bool = False,
    actor: str = crud.SYSTEM,
    progress: Progress | None = None,
) -> PubmedSummary:
    """Resolve pending citations and fetch their records; or fetch given PMIDs / a query.

    With neither ``pmids`` nor ``query``, every pending citation of every article is
    resolved and fetched. Network faults are reported in ``problems`` (and on the
    citations' status) rather than raised, so the rest of the run carries on; the run is
    then ``partial``.

    Parameters
    ----------
    engine, client
        Database engine and E-utilities client (``ingest.pubmed.make_client``).
    pmids
        Fetch these PMIDs.
    query
        Run this PubMed search and fetch its hits (with ``pmids``: both).
    max_results
        Hits to fetch for ``query``.
    refresh
        Search, resolve and fetch again even what is stored.
    actor
        Recorded in the audit trail.
    progress
        Stage ``PubMed records``: one unit per unique PMID to fetch, those already stored
        included (they are done at once).

    Returns
    -------
    PubmedSummary
    """
    summary = PubmedSummary()
    with crud.ingest_run(engine, kind="ingest_pubmed", actor=actor,
                         params={"pmids": list(pmids), "query": query, "max": max_results,
                                 "refresh": refresh}) as run:
        run.stats, run.problems = summary, summary.problems  # the run reads the summary
        targets: list[str] = list(pmids)
        try:
            if query:
                summary.query_pmids = pubmed.search_pmids(engine, client, query,
                                                          max_results=max_results,
                                                          refresh=refresh, actor=actor)
                targets.extend(summary.query_pmids)
            if not pmids and not query:
                summary.resolved = pubmed.resolve_citations(engine, client, refresh=refresh,
                                                            actor=actor)
                with db.read_session(engine) as session:
                    targets = sorted({c.pmid for c in session.exec(
                        select(Citation).where(Citation.status == "resolved")).all() if c.pmid})
            targets = list(dict.fromkeys(p.strip() for p in targets if p.strip()))
            summary.requested = len(targets)
            advance = _stage(progress, "PubMed records", len(targets))
            stats, missing, cached = pubmed.fetch_studies(
                engine, client, targets, refresh=refresh, actor=actor, on_pmids=advance)
            summary.fetched, summary.missing, summary.from_cache = stats, missing, cached
            pubmed.mark_missing(engine, missing, actor=actor)
        except (NCBIUnavailable, NCBIError, ParseError) as e:
            summary.problems.append(str(e))
            status = "unavailable" if isinstance(e, NCBIUnavailable) else "ncbi_error"
            prefix = "network unavailable" if status == "unavailable" else "NCBI error"
            pubmed.mark_unfetched(engine, status=status, reason=f"{prefix}: {e}", actor=actor)
    return summary


# ------------------------------------------------------------------------------ MEDLINE


@dataclass
class MedlineSummary:
    """What loading bulk files did, per file and in total (skipped files included)."""

    files: list[dict[str, Any]] = field(default_factory=list)
    total: LoadStats = field(default_factory=LoadStats)
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"files": self.files, "total": self.total.as_dict(), "skipped": self.skipped}


def completed_medline_files(engine: Engine) -> set[str]:
    """sha256 of every bulk file whose ``ingest_medline`` run completed (status ``ok``)."""
    with db.read_session(engine) as session:
        params = session.exec(select(IngestRun.params).where(
            IngestRun.kind == "ingest_medline", IngestRun.status == crud.OK)).all()
    return {p["sha256"] for p in params if isinstance(p, dict) and p.get("sha256")}


def ingest_medline(
    engine: Engine,
    paths: Sequence[Path],
    *,
    actor: str = crud.SYSTEM,
    batch_size: int = medline.BATCH,
    workers: int = 1,
    force: bool = False,
    progress: Progress | None = None,
) -> MedlineSummary:
    """Load PubMed baseline / update files (plain or gzip), one ``ingest_run`` per file.

    Parameters
    ----------
    engine
        Database engine.
    paths
        Baseline or update files; a folder stands for the ``pubmed*.xml[.gz]`` files in it.
        They are applied in :func:`ingest.medline.order_files` order: NCBI-named files by
        number (the baseline, then the update files), then any others as given.
    actor
        Recorded on audit events.
    batch_size
        Records per transaction.
    workers
        Processes that parse files (1: parse in this process). The writing is always done
        here, file by file, in order.
    force
        Load files even if a run with the same sha256 completed before (records already
        loaded are still skipped as unchanged).
    progress
        One stage per file, labelled with its name: one unit per record (or deletion);
        the total is not known in advance.

    Returns
    -------
    MedlineSummary
        A file skipped because its sha256 already has a completed run is listed with
        ``skipped: true``.

    Raises
    ------
    InputError
        A file is missing (checked before anything is loaded).
    ParseError
        A file is malformed or truncated: every complete record before the fault stays
        loaded (nothing is rolled back), that file's run is closed as ``error``, and the
        message says how many records were loaded and how to resume (run the same command
        again with the repaired file; completed files are skipped, loaded records are
        skipped as unchanged). Files after it are not loaded.
    """
    paths = medline.expand_paths(paths)
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    ordered = medline.order_files(paths)
    done = set() if force else completed_medline_files(engine)
    summary = MedlineSummary()
    with medline.Pipeline(dialect=engine.dialect.name, workers=workers,
                          batch_size=batch_size) as pipeline:
        for i, job in enumerate(pipeline.files(ordered, skip=lambda d: d in done)):
            path, digest = job.path, job.sha256
            if job.skipped or digest in done:
                summary.files.append({"file": str(path), "sha256": digest, "skipped": True})
                summary.skipped += 1
                continue
            stats = LoadStats()
            advance = _stage(progress, path.name, None)
            with crud.ingest_run(engine, kind="ingest_medline", actor=actor,
                                 params={"file": str(path), "sha256": digest,
                                         "workers": workers}) as run:
                run.stats = stats
                try:
                    for n, batch in medline.load_chunks(engine, path, job.chunks,
                                                        sha256=digest, actor=actor):
                        stats.add(batch)
                        advance(n)
                except ParseError as e:
                    raise ParseError(
                        _medline_stopped(e, stats, later=len(ordered) - i - 1)) from e
            done.add(digest)
            summary.files.append({"file": str(path), "sha256": digest, "skipped": False,
                                  **stats.as_dict()})
            summary.total.add(stats)
    return summary


def _medline_stopped(error: ParseError, stats: LoadStats, *, later: int) -> str:
    """The one-line error of a bulk file that failed part-way: what is kept, how to resume."""
    kept = stats.inserted + stats.updated + stats.unchanged
    rest = f"; the {later} file(s) after it were not loaded" if later else ""
    return (f"{error}; {kept} records before the fault were loaded and kept "
            f"({stats.inserted} new, {stats.updated} updated, {stats.unchanged} unchanged, "
            f"{stats.deleted} deleted){rest}; to finish, run the same command again with the "
            "repaired or re-downloaded file (completed files and records already loaded are "
            "skipped)")


# ------------------------------------------------------------------------------ linking


def link(
    engine: Engine,
    *,
    client: EntrezClient | None = None,
    per_claim: int = linking.DISCOVER_K,
    actor: str = crud.SYSTEM,
    progress: Progress | None = None,
    index_dir: Path | None = None,
    semantic: bool = False,
    embeddings_dir: Path | None = None,
) -> LinkSummary:
    """Link every current claim to evidence (``evidence.linking.link_all``), as one run.

    Parameters
    ----------
    engine
        Database engine.
    client
        With an E-utilities client, also search PubMed per canonical claim and fetch
        the top ``per_claim`` hits (discovery).
    per_claim
        PubMed hits fetched per canonical claim.
    actor
        Recorded on audit events.
    progress
        Stage ``claims``: one unit per claim of every current article.
    index_dir
        The persisted ranking index to rank with (built or updated first when missing or
        stale); None ranks in memory.
    semantic
        Re-rank each claim's BM25 candidates with sentence embeddings before the local
        ones are kept (the ``[semantic]`` extra).
    embeddings_dir
        The embedding store of ``semantic`` (default: under ``index_dir``).

    Returns
    -------
    LinkSummary
        Its ``problems`` (discovery failures) make the run ``partial``.

    Raises
    ------
    evidence.semantic.SemanticUnavailable
        With ``semantic``, if the extra is not installed; nothing is written.
    """
    if semantic:
        from evidence.semantic import require

        require()  # before the run is recorded: nothing is written
    discover = (pubmed.discoverer(engine, client, per_claim=per_claim, actor=actor)
                if client is not None else None)
    with db.read_session(engine) as session:
        n_claims = len(queries.claims(session))
    advance = _stage(progress, "claims", n_claims)
    with crud.ingest_run(engine, kind="link", actor=actor,
                         params={"discover": client is not None,
                                 "per_claim": per_claim, "semantic": semantic}) as run:
        summary = linking.link_all(engine, discover=discover, actor=actor, on_claim=advance,
                                   index_dir=index_dir, semantic=semantic,
                                   embeddings_dir=embeddings_dir)
        run.stats = summary
        run.problems.extend(summary.problems)
    return summary


# ------------------------------------------------------------------------------ surveillance


def surveil(
    engine: Engine,
    client: EntrezClient,
    *,
    since: date | None = None,
    discover: bool = True,
    actor: str = crud.SYSTEM,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> SurveilReport:
    """Surveillance (``ingest.surveil.surveil``) as one ``surveil`` run.

    Stage ``linked studies``: one unit per linked PMID re-fetched (or posted, with
    ``since``). The run's statistics are the report; an E-utilities failure closes it as
    ``error`` with nothing applied, and is raised.
    """
    with db.read_session(engine) as session:
        n = surveil_mod.linked_count(session)
    advance = _stage(progress, "linked studies", n)
    report = SurveilReport()
    with crud.ingest_run(engine, kind=surveil_mod.KIND, actor=actor,
                         params={"since": since.isoformat() if since else None,
                                 "discover": discover}) as run:
        run.stats = report
        surveil_mod.surveil(engine, client, since=since, discover=discover, actor=actor,
                            now=now, on_batch=advance, report=report)
    return report


# ------------------------------------------------------------------------------ demo


def corpus_summary(session: Session) -> dict[str, Any]:
    """Counts for the demo: articles, claims by category, citations by kind and status."""
    arts = queries.articles(session, current_only=True)
    return {
        "articles": len(arts),
        "claims": int(arts["n_claims"].sum()) if len(arts) else 0,
        "claims_by_category": queries.claim_counts(session),
        "citations_by_kind": queries.citation_counts(session),
    }


#: Longest the demo waits for the E-utilities before calling the machine offline (seconds).
DEMO_PROBE_WAIT = 10.0


@dataclass
class DemoSummary:
    """What the demo did, step by step."""

    corpus: dict[str, Any]
    ingest: ArticleRunSummary
    offline: str | None
    fetched: PubmedSummary | None
    not_fetched: list[str]
    links: LinkSummary
    first_admin: tuple[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form: the corpus counts, then each step (and the first admin, once)."""
        out = dict(self.corpus)
        out["ingest"] = self.ingest.as_dict()
        out["pubmed"] = {"offline": self.offline,
                         "fetched": self.fetched.as_dict() if self.fetched else {},
                         "not_fetched": self.not_fetched}
        out["linking"] = self.links.as_dict()
        if self.first_admin:
            out["admin"] = {"username": self.first_admin[0], "password": self.first_admin[1]}
        return out


def demo(
    engine: Engine,
    articles_dir: Path,
    *,
    client: EntrezClient | None = None,
    actor: str = crud.SYSTEM,
    progress: Progress | None = None,
) -> DemoSummary:
    """Ingest a folder of articles, fetch their PubMed citations, link, ensure an admin.

    PubMed is probed first with one cheap request, so an offline machine says so at once:
    the scholarly citations are then marked ``unavailable`` with the reason, and the demo
    carries on with what is local.

    Parameters
    ----------
    engine
        Database engine (schema current).
    articles_dir
        The folder of articles; bad files are reported and skipped.
    client
        E-utilities client; by default one from settings that gives up on a request
        after at most ``DEMO_PROBE_WAIT`` seconds.
    actor
        Recorded in the audit trail.
    progress
        The stages of :func:`ingest_articles`, :func:`ingest_pubmed` and :func:`link`.

    Returns
    -------
    DemoSummary
        ``first_admin`` holds the admin's name and password on the first run only.
    """
    run = ingest_articles(engine, [str(articles_dir)], actor=actor, progress=progress,
                          keep_going=True)
    if client is None:
        client = pubmed.make_client(max_wait=min(get_settings().ncbi_max_wait,
                                                 DEMO_PROBE_WAIT))
    offline = pubmed.probe(client)
    fetched: PubmedSummary | None = None
    if offline:
        not_fetched = [f"{c.kind}:{c.identifier}"
                       for c in pubmed.mark_unavailable(engine, offline, actor=actor)]
    else:
        fetched = ingest_pubmed(engine, client, actor=actor, progress=progress)
        with db.read_session(engine) as session:
            not_fetched = [f"{c.kind}:{c.identifier} ({c.status})"
                           for c in pubmed.unresolved_citations(session)]
    links = link(engine, actor=actor, progress=progress)
    with db.session_scope(engine) as session:
        corpus = corpus_summary(session)
        first_admin = review.ensure_first_admin(session)
    return DemoSummary(corpus=corpus, ingest=run, offline=offline, fetched=fetched,
                       not_fetched=not_fetched, links=links, first_admin=first_admin)
