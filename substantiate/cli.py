"""``substantiate``: the command line, a thin shell over ``jobs``, ``evidence`` and ``ingest``."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import progress as rich_progress
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from evidence import audit, crud, db, embeddings, export, queries, ranking_index
from evidence.config import get_settings
from evidence.errors import InputError, NotFound, PermissionDenied, SubstantiateError
from evidence.linking import LinkSummary
from evidence.models import ADMIN, AppUser
from substantiate import jobs

# markup=False: article text, titles and identifiers are printed as they are, never read
# as rich markup ("[bold]" in a blog post stays text).
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

app = typer.Typer(
    name="substantiate",
    help="Substantiate: a claim-evidence database for health-marketing content.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
ingest_app = typer.Typer(help="Bring articles and PubMed records into the database.",
                         no_args_is_help=True, rich_markup_mode=None)
claims_app = typer.Typer(help="Inspect extracted claims.", no_args_is_help=True,
                         rich_markup_mode=None)
citations_app = typer.Typer(help="Inspect citations found in articles.", no_args_is_help=True,
                            rich_markup_mode=None)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True,
                        rich_markup_mode=None)
users_app = typer.Typer(help="People who use the reviewer app.", no_args_is_help=True,
                        rich_markup_mode=None)
studies_app = typer.Typer(help="Inspect stored PubMed studies.", no_args_is_help=True,
                          rich_markup_mode=None)
export_app = typer.Typer(
    help="Export the audit tables with a manifest (--out DIR), or check an export (verify).",
    invoke_without_command=True, rich_markup_mode=None)
app.add_typer(ingest_app, name="ingest")
app.add_typer(claims_app, name="claims")
app.add_typer(citations_app, name="citations")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(studies_app, name="studies")
index_app = typer.Typer(help="The persisted ranking index that `link` ranks with.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(export_app, name="export")
app.add_typer(index_app, name="index")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ACTOR = f"cli:{os.environ.get('USER', 'operator')}"
# The user named by the root option --as (None: SUBSTANTIATE_USER, if set).
_AS: dict[str, str | None] = {"user": None}


def _engine() -> Engine:
    """The configured engine with the schema created or upgraded."""
    engine = db.get_engine()
    db.upgrade(engine)
    return engine


@contextmanager
def _progress(*, enabled: bool = True) -> Iterator[jobs.Progress]:
    """A progress bar on stderr (when it is a terminal) fed by a job's progress callback."""
    with rich_progress.Progress(
        rich_progress.TextColumn("{task.description}"), rich_progress.BarColumn(),
        rich_progress.MofNCompleteColumn(), rich_progress.TimeElapsedColumn(),
        console=err, transient=True, disable=not (enabled and err.is_terminal),
    ) as bar:
        tasks: dict[str, rich_progress.TaskID] = {}

        def show(label: str, done: int, total: int | None) -> None:
            if label not in tasks:  # one line per stage
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield show


def _acting(session: Session, *, bootstrap: bool = False) -> int | None:
    """The id of the user the CLI acts as (``--as``, else ``SUBSTANTIATE_USER``).

    Only the name is resolved here; each write reads the user's role and ``active`` flag
    again in its own transaction (``crud.acting_user``). ``bootstrap``: the database has
    no user yet, so nobody acts (``None``) unless ``--as`` names someone.
    """
    name = _AS["user"] or (None if bootstrap else get_settings().cli_user)
    if not name:
        if not bootstrap:
            raise PermissionDenied("this command acts as a user: pass --as USER or set "
                                   "SUBSTANTIATE_USER")
        return None
    user = crud.find_user(session, username=name)
    if user is None or user.id is None:
        raise PermissionDenied(f"no user named {name!r} (--as / SUBSTANTIATE_USER)")
    return user.id


def _who(engine: Engine) -> str:
    """Who a read-only command (export, report) records as its author: the ``--as`` user
    (or ``SUBSTANTIATE_USER``), checked to exist, else the operating-system user."""
    name = _AS["user"] or get_settings().cli_user
    if not name:
        return ACTOR
    with db.read_session(engine) as session:
        user = crud.find_user(session, username=name)
        username = user.username if user is not None else None
    if username is None:
        raise PermissionDenied(f"no user named {name!r} (--as / SUBSTANTIATE_USER)")
    return username


def _emit_json(data: Any) -> None:
    """Strict JSON on stdout: ``null`` for missing values, lists as lists, ISO 8601 times
    (``evidence.export.jsonable``); written as it is, never through rich's markup."""
    sys.stdout.write(export.dumps(data) + "\n")
    sys.stdout.flush()


def _print_frame(rows: list[dict[Any, Any]], columns: list[str], title: str) -> None:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[Text(_cell(r.get(c))) for c in columns])
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# ------------------------------------------------------------------------------ commands


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log progress and retries (E-utilities requests) on stderr.")
    ] = False,
    as_user: Annotated[str | None, typer.Option(
        "--as", metavar="USER",
        help="Act as this app user for writes that need a role (users, claims regroup); "
        "default: SUBSTANTIATE_USER.")] = None,
) -> None:
    """Substantiate: a claim-evidence database for health-marketing content."""
    _AS["user"] = as_user
    # Errors reach the user as one line from main(); logs are for when they ask for them.
    level = logging.INFO if verbose else logging.CRITICAL
    for name in ("substantiate", "ingest", "evidence"):
        logging.getLogger(name).setLevel(level)
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")



@app.command()
def init() -> None:
    """Create the database, or upgrade it to the newest schema; re-install the audit trail's
    append-only triggers if they were dropped; close as interrupted the runs whose process
    died.

    Example: substantiate init
    """
    engine = db.get_engine()
    rev = db.upgrade(engine)
    restored = db.ensure_append_only_guards(engine)
    interrupted = crud.close_interrupted_runs(engine, actor=ACTOR)
    out.print(f"database ready at revision {rev}: "
              f"{engine.url.render_as_string(hide_password=True)}")
    if restored:
        out.print(f"re-installed the audit trail's append-only guard: {', '.join(restored)}")
    if interrupted:
        out.print(f"runs closed as interrupted (their process had died): "
                  f"{', '.join(str(i) for i in interrupted)}")


@ingest_app.command("articles")
def ingest_articles(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or http(s) URLs.")],
    keep_going: Annotated[bool, typer.Option(
        help="Report a bad input (unreadable, refused, or refused by the database) and carry "
        "on with the rest; exit 1 if any was skipped.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest articles (.txt, .md, .html files, directories, URLs): text, claims, citations.

    Only regular files up to MAX_ARTICLE_BYTES are read; binary content (NUL or control
    characters, UTF-16 without a byte-order mark) is refused. Each article is committed on
    its own. With --keep-going the command exits 1 when any input was skipped.

    Example: substantiate ingest articles data/articles https://example.org/post.html
    """
    engine = _engine()
    with _progress(enabled=not as_json) as progress:
        summary = jobs.ingest_articles(engine, inputs, actor=ACTOR, progress=progress,
                                       keep_going=keep_going)
    if as_json:
        _emit_json(summary.as_dict())
    else:
        out.print(f"articles: {summary.new} new, {summary.new_version} new versions, "
                  f"{summary.unchanged} unchanged; {summary.claims} claims, "
                  f"{summary.citations} citations")
        for e in summary.errors:
            err.print(f"skipped: {e}")
    if summary.errors:
        err.print(f"{len(summary.errors)} input(s) skipped")
        raise typer.Exit(1)


@ingest_app.command("pubmed")
def ingest_pubmed(
    pmid: Annotated[list[str] | None, typer.Option(
        "--pmid", help="Fetch these PMIDs (comma-separated; repeat the option for more).")
    ] = None,
    pmids_from: Annotated[str | None, typer.Option(
        "--pmids-from", help="Fetch the PMIDs in this file ('-': stdin): one per line or "
        "separated by commas or spaces; '#' starts a comment.")] = None,
    query: Annotated[str | None, typer.Option(help="Run this PubMed search, fetch the hits.")
                     ] = None,
    max_results: Annotated[int, typer.Option("--max", help="Hits to fetch for --query.")] = 20,
    refresh: Annotated[bool, typer.Option(help="Fetch again even what is stored.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Resolve pending citations to PMIDs and fetch their PubMed records (or --pmid / --query).

    Example: substantiate ingest pubmed --query "ketamine depression" --max 50
    Example: substantiate ingest pubmed --pmid 35326338,35997954 --pmids-from pmids.txt
    """
    from ingest import pubmed

    pmids = [p for value in pmid or [] for p in pubmed.parse_pmids(value, source="--pmid")]
    if pmids_from is not None:
        pmids += pubmed.parse_pmids(_read_input(pmids_from), source=pmids_from, lines=True)
    if (pmid or pmids_from is not None) and not pmids:
        raise InputError("--pmid / --pmids-from gave no PMIDs")
    engine = _engine()
    client = pubmed.make_client()
    with _progress(enabled=not as_json) as progress:
        summary = jobs.ingest_pubmed(engine, client, pmids=list(dict.fromkeys(pmids)),
                                     query=query,
                                     max_results=max_results, refresh=refresh, actor=ACTOR,
                                     progress=progress)
    if as_json:
        _emit_json(summary.as_dict())
    else:
        f = summary.fetched
        out.print(f"studies: {f.inserted} new, {f.updated} updated, {f.unchanged} unchanged, "
                  f"{summary.from_cache} already stored; {len(summary.missing)} not in PubMed")
        if summary.resolved:
            out.print("citations: " + ", ".join(f"{n} {s}" for s, n in
                                                sorted(summary.resolved.items())))
        for p in summary.problems:
            err.print(f"problem: {p}")
    if summary.problems:
        raise typer.Exit(1)


def _read_input(name: str) -> str:
    """The text of file ``name``, or of stdin for ``-``; one-line error when unreadable."""
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {name}: {getattr(e, 'strerror', None) or e}") from None


@ingest_app.command("medline")
def ingest_medline(
    files: Annotated[list[Path], typer.Argument(
        help="PubMed baseline/update XML (.xml, .gz), or folders holding pubmed*.xml.gz.")],
    workers: Annotated[int, typer.Option(
        min=1, help="Processes that parse files (1: parse in this process).")] = 1,
    force: Annotated[bool, typer.Option(
        help="Load files even if the same file (sha256) was loaded before.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load PubMed baseline / update files offline (parallel, bulk, resumable, deletes applied).

    Files apply in NCBI's numbering (baseline, then update files); a file already loaded
    (same sha256) is skipped, so an interrupted run resumes at the first unfinished file.
    A file found malformed or truncated part-way is not rolled back: the records before the
    fault stay loaded, the error says how many, and running the same command again with the
    repaired file finishes it (loaded records are skipped as unchanged).

    Example: substantiate ingest medline --workers 2 baseline/ updatefiles/
    """
    engine = _engine()
    with _progress(enabled=not as_json) as progress:
        summary = jobs.ingest_medline(engine, files, actor=ACTOR, workers=workers,
                                      force=force, progress=progress)
    if as_json:
        _emit_json(summary.as_dict())
        return
    for f in summary.files:
        if f["skipped"]:
            out.print(f"{f['file']}: skipped (already loaded, sha256 {f['sha256'][:12]})")
            continue
        out.print(f"{f['file']}: {f['inserted']} new, {f['updated']} updated, "
                  f"{f['unchanged']} unchanged, {f['deleted']} deleted")


@studies_app.command("list")
def studies_list(as_json: JsonOpt = False) -> None:
    """List stored studies: PMID, title, journal, year, DOI, PMCID, types, MeSH, flags.

    Example: substantiate studies list --json
    """

    with db.read_session(_engine()) as session:
        df = queries.studies(session)
    rows = export.jsonable(df.drop(columns=["study_id"]))
    if as_json:
        _emit_json(rows)
        return
    _print_frame(rows, ["pmid", "year", "design", "evidence_level", "retracted", "journal",
                        "title"], f"{len(rows)} studies")


@app.command("link")
def link_cmd(
    discover: Annotated[bool, typer.Option(
        help="Also search PubMed per canonical claim and fetch the top hits.")] = False,
    per_claim: Annotated[int, typer.Option(help="PubMed hits fetched per canonical claim.")
                         ] = 5,
    use_index: Annotated[bool, typer.Option(
        "--index/--no-index", help="Rank with the persisted index in INDEX_DIR (built or "
        "updated first when missing or stale); --no-index ranks in memory.")] = True,
    semantic: Annotated[bool, typer.Option(
        "--semantic", help="Re-rank each claim's BM25 candidates with sentence embeddings "
        "(the [semantic] extra) before the local ones are kept; study embeddings are kept "
        "in INDEX_DIR/embeddings, so only new and changed studies are embedded.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Link claims to studies (cited, local BM25, PubMed discovery); flag citation fit.

    Example: substantiate link --discover
    """
    from evidence.semantic import SemanticUnavailable
    from ingest import pubmed

    engine = _engine()
    client = pubmed.make_client() if discover else None
    settings = get_settings()
    index_dir = settings.effective_index_dir if use_index else None
    try:
        with _progress(enabled=not as_json) as progress:
            summary = jobs.link(engine, client=client, per_claim=per_claim, actor=ACTOR,
                                progress=progress, index_dir=index_dir, semantic=semantic,
                                embeddings_dir=embeddings.store_path(
                                    settings.effective_index_dir))
    except SemanticUnavailable as e:
        err.print(f"error: {e}")
        raise typer.Exit(2) from None
    if as_json:
        _emit_json(summary.as_dict())
        return
    _print_link_summary(summary)


def _print_link_summary(summary: LinkSummary) -> None:
    if summary.ranking:
        out.print(summary.ranking)
    if summary.semantic:
        out.print(summary.semantic)
    out.print(f"links: {summary.links_created} new, {summary.links_updated} updated, "
              f"{summary.links_removed} removed")
    for a in summary.articles:
        misfit = ""
        if a.cited_not_addressing:
            misfit = "; cited but addressing no claim: PMID " + ", ".join(a.cited_not_addressing)
        regulatory = (f"; {a.needs_regulatory_source} regulatory statement(s) needing a "
                      "regulatory source" if a.needs_regulatory_source else "")
        out.print(f"  {Path(a.source).name}: {a.claims} claims — "
                  f"{a.with_fitting_citation} with fitting cited evidence, "
                  f"{a.only_discovered} with only fitting discovered evidence, "
                  f"{a.no_evidence} with no fitting evidence{regulatory}{misfit}")
    for p in summary.problems:
        err.print(f"problem: {p}")


SemanticOpt = Annotated[bool, typer.Option(
    "--semantic", help="Also embed every live study the embedding store in "
    "INDEX_DIR/embeddings lacks (the [semantic] extra), so `link --semantic` embeds none.")]


def _index_job(job: Callable[..., ranking_index.IndexReport], *, semantic: bool,
               as_json: bool) -> None:
    from evidence.semantic import SemanticUnavailable

    engine = _engine()
    path = get_settings().effective_index_dir
    try:
        with _progress(enabled=not as_json) as progress:
            report = job(engine, path, progress=progress, semantic=semantic)
    except SemanticUnavailable as e:
        err.print(f"error: {e}")
        raise typer.Exit(2) from None
    _print_index_report(report, as_json=as_json)


@index_app.command("build")
def index_build(semantic: SemanticOpt = False, as_json: JsonOpt = False) -> None:
    """Build the ranking index over every live study in INDEX_DIR (replacing any index).

    Example: substantiate index build
    """
    _index_job(ranking_index.build, semantic=semantic, as_json=as_json)


@index_app.command("update")
def index_update(semantic: SemanticOpt = False, as_json: JsonOpt = False) -> None:
    """Bring the ranking index up to date: analyse only new and changed studies, drop
    deleted ones (the result equals a fresh build); build it if there is none.

    Example: substantiate index update --json
    """
    _index_job(ranking_index.update, semantic=semantic, as_json=as_json)


def _print_index_report(report: ranking_index.IndexReport, *, as_json: bool) -> None:
    if as_json:
        _emit_json(report.as_dict())
        return
    if report.action == "unchanged":
        out.print(f"ranking index at {report.path} is current ({report.studies} studies)")
    else:
        out.print(f"ranking index {report.action} at {report.path}: {report.studies} studies "
                  f"({report.new} new, {report.changed} changed, {report.deleted} deleted) "
                  f"in {report.seconds:.1f} s, {report.size_bytes / 1e6:.1f} MB"
                  + (f"; rebuilt because: {report.reason}" if report.reason else ""))
    emb = report.embeddings
    if emb is not None:
        rate = f" in {emb.seconds:.1f} s ({emb.per_second:.1f}/s)" if emb.per_second else ""
        out.print(f"embeddings at {emb.path}: {emb.embedded} studies embedded{rate}, "
                  f"{emb.already_stored} already stored; {emb.vectors} vectors, "
                  f"{emb.size_bytes / 1e6:.1f} MB")


@index_app.command("status")
def index_status(as_json: JsonOpt = False) -> None:
    """Say whether the ranking index matches the database: how many studies are new,
    changed or deleted since it was written. Exit 0 when current, 3 when not.

    Example: substantiate index status --json
    """
    engine = _engine()
    state = ranking_index.status(engine, get_settings().effective_index_dir)
    if as_json:
        _emit_json(state.as_dict())
    elif not state.exists:
        out.print(f"no ranking index at {state.path} ({state.live} live studies); run "
                  "`substantiate index build`")
    else:
        out.print(f"ranking index at {state.path}: {state.indexed} studies indexed, "
                  f"{state.live} live; {state.new} new, {state.changed} changed, "
                  f"{state.deleted} deleted; built {state.built_at}, updated "
                  f"{state.updated_at}; {state.size_bytes / 1e6:.1f} MB; "
                  + ("current" if state.current else f"not current: {state.reason}"))
    if not state.current:
        raise typer.Exit(3)


@app.command("surveil")
def surveil_cmd(
    since: Annotated[str | None, typer.Option(
        help="Re-fetch only records PubMed modified on or after this day (YYYY-MM-DD), "
        "using the E-utilities date filter; new-evidence search also starts there.")] = None,
    discover: Annotated[bool, typer.Option(
        help="Also search PubMed for new systematic reviews, meta-analyses and randomised "
        "trials for each decided canonical claim.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Re-check the PubMed records behind the claims; re-open claims whose evidence changed.

    Retracted studies, expressions of concern, errata, deleted records and changed
    abstracts re-open the decided claims resting on them; verdicts past their review-by
    date (VERDICT_REVIEW_MONTHS) re-open as expired; new fitting evidence is linked and
    flagged. Exit 0 when nothing needs attention, 3 when something does (for a scheduler).

    Example: substantiate surveil --since 2026-11-01 --json
    """
    from datetime import date

    from ingest import pubmed

    day = None
    if since is not None:
        try:
            day = date.fromisoformat(since.strip())
        except ValueError:
            raise InputError(f"--since {since!r}: not a date (YYYY-MM-DD)") from None
    engine = _engine()
    client = pubmed.make_client()
    with _progress(enabled=not as_json) as progress:
        report = jobs.surveil(engine, client, since=day, discover=discover, actor=ACTOR,
                              progress=progress)
    if as_json:
        _emit_json(report.as_dict())
    else:
        _print_surveil_report(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _print_surveil_report(report: Any) -> None:
    c = report.counts()
    since = f" modified since {report.since}" if report.since else ""
    by_utility = ", ".join(f"{n} {u}" for u, n in sorted(report.requests.items()))
    out.print(f"surveillance: {c['studies_checked']} linked studies checked, "
              f"{c['records_fetched']} records fetched{since}; {c['requests']} requests"
              + (f" ({by_utility})" if by_utility else ""))
    out.print(f"  studies changed: {c['studies_changed']} ("
              + ", ".join(f"{c[k]} {k.replace('_', ' ')}" for k in
                          ("retracted", "expression_of_concern", "erratum", "deleted",
                           "changed")) + ")")
    for change in report.changes:
        notices = "; ".join(f"notice PMID {n['pmid']}" if n.get("pmid") else "notice"
                            for n in change.notices)
        out.print(f"    PMID {change.pmid}: {', '.join(change.changes)}"
                  + (f" ({notices})" if notices else ""))
    out.print(f"  claims re-opened: {c['claims_reopened']}")
    for r in report.reopened:
        for reason in r.reasons:
            out.print(f"    claim {r.claim_id}: {reason['text']}")
    out.print(f"  verdicts expired: {c['claims_expired']}")
    for r in report.expired:
        for reason in r.reasons:
            out.print(f"    claim {r.claim_id}: {reason['text']}")
    out.print(f"  new evidence linked: {c['new_evidence_links']} "
              f"({c['discovery_queries']} searches"
              + (f" from {report.discovery_since}" if report.discovery_since else "") + ")")
    for n in report.new_evidence:
        out.print(f"    claim {n.claim_id}: PMID {n.pmid} ({n.design.replace('_', ' ')})")
    out.print("needs attention (exit 3)" if report.needs_attention
              else "nothing needs attention")


# Streamlit options `substantiate app` always passes (as .streamlit/config.toml does, which
# Streamlit reads only from the folder it is started in): no usage statistics, and the
# viewer toolbar (no "Deploy", rerun or clear-cache items).
APP_OPTIONS = ("--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer")


@app.command("app")
def app_cmd(
    port: Annotated[int | None, typer.Option(help="Port (default: SUBSTANTIATE_APP_PORT).")
                    ] = None,
) -> None:
    """Start the reviewer app (Streamlit) on 127.0.0.1.

    Example: substantiate app --port 8501
    """
    import subprocess

    _engine()
    script = Path(__file__).resolve().parent.parent / "app.py"
    if not script.is_file():
        raise SubstantiateError(f"the app script is missing: {script}")
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address",
           "127.0.0.1", "--server.port", str(port or get_settings().app_port), *APP_OPTIONS]
    raise typer.Exit(subprocess.call(cmd))


@claims_app.command("list")
def claims_list(
    article: Annotated[int | None, typer.Option(help="Only this article id.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this review status.")] = None,
    flag: Annotated[str | None, typer.Option(help="Only claims with this flag.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List claims with category, check-worthiness, canonical group and flags.

    Example: substantiate claims list --category safety --json
    """

    with db.read_session(_engine()) as session:
        df = queries.claims(session, article_id=article, category=category, status=status,
                            flag=flag)
    rows = export.jsonable(df)
    if as_json:
        _emit_json(rows)
        return
    _print_frame(rows, ["claim_id", "article_id", "category", "checkworthiness",
                        "canonical_id", "status", "flags", "text"], f"{len(rows)} claims")


@claims_app.command("regroup")
def claims_regroup(
    claim_id: Annotated[int, typer.Argument(help="The claim to move.")],
    to: Annotated[int | None, typer.Option(help="Canonical claim id to join.")] = None,
    new_statement: Annotated[str | None, typer.Option(
        help="Start a new canonical claim with this statement instead.")] = None,
) -> None:
    """Move a claim to another canonical claim, or to a new one (audited).

    Acts as a reviewer, adjudicator or admin (--as USER or SUBSTANTIATE_USER).

    Example: substantiate --as alice claims regroup 42 --to 7
    """
    from evidence.errors import InputError
    from evidence.models import Claim

    if (to is None) == (new_statement is None):
        raise InputError("give exactly one of --to CANONICAL_ID or --new-statement TEXT")
    with db.session_scope(_engine()) as session:
        user = _acting(session)
        claim = session.get(Claim, claim_id)
        if claim is None:
            raise NotFound(f"claim {claim_id} does not exist")
        moved = crud.regroup_claim(session=session, claim_id=claim_id, canonical_id=to,
                                   expected_version=claim.version, user=user,
                                   new_statement=new_statement)
        cid, score = moved.canonical_id, moved.canonical_score
    out.print(f"claim {claim_id} is now in canonical claim {cid} (similarity {score})")


@citations_app.command("list")
def citations_list(
    article: Annotated[int | None, typer.Option(help="Only this article id.")] = None,
    kind: Annotated[str | None, typer.Option(help="pmid, pmcid, doi or web.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List citations: kind, normalised identifier, status and resolved PMID.

    Example: substantiate citations list --kind web
    """

    with db.read_session(_engine()) as session:
        df = queries.citations(session, article_id=article, kind=kind)
    rows = export.jsonable(df)
    if as_json:
        _emit_json(rows)
        return
    _print_frame(rows, ["citation_id", "article_id", "kind", "identifier", "status", "pmid",
                        "status_reason", "flags"], f"{len(rows)} citations")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[str | None, typer.Option(
        help="A head hash recorded earlier (e.g. an export manifest's): must be in the chain."
    )] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the audit hash chain; exit 1 naming the first bad event if it is broken.

    Example: substantiate audit verify --anchor 3f2a...c9
    """

    with db.read_session(_engine()) as session:
        result = audit.verify(session, anchor=anchor)
    if as_json:
        _emit_json(result.__dict__)
    elif result.ok:
        out.print(f"audit trail intact: {result.checked} events verified; head {result.head_hash}")
    elif result.first_bad_id is None:
        err.print(f"audit trail BROKEN: {result.reason}")
    else:
        err.print(f"audit trail BROKEN at event {result.first_bad_id}: {result.reason} "
                  f"({result.checked} events before it verified)")
    if not result.ok:
        raise typer.Exit(1)


@export_app.callback()
def export_cmd(
    ctx: typer.Context,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder to write into.")
                       ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or parquet.")] = "csv",
    article: Annotated[int | None, typer.Option(
        help="Only this article's rows (and the studies and audit events they refer to).")
    ] = None,
    since: Annotated[str | None, typer.Option(
        help="Only rows changed (audit events made) at or after this date or ISO time.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the audit tables and a manifest with each file's sha256 (audited).

    Example: substantiate export --format csv --out exports/ --article 3 --since 2026-01-01
    """
    if ctx.invoked_subcommand is not None:
        return
    if out_dir is None:
        raise InputError("give --out DIR to export, or: substantiate export verify DIR")
    moment = export.parse_since(since) if since is not None else None
    engine = _engine()
    manifest = export.create(engine, out_dir=out_dir, fmt=fmt, article_id=article,
                             since=moment, exported_by=_who(engine))
    if as_json:
        _emit_json(manifest)
        return
    for f in manifest["files"]:
        out.print(f"wrote {out_dir / f['file']}")
    out.print(f"wrote {out_dir / export.MANIFEST}")
    if not manifest["audit"]["verified"]:
        err.print("warning: the audit trail does not verify; see `substantiate audit verify`")


@app.command("report")
def report_cmd(
    article: Annotated[int, typer.Option("--article", help="The article's id.")],
    out_file: Annotated[Path, typer.Option("--out", help="File to write: .html or .pdf.")],
    as_json: JsonOpt = False,
) -> None:
    """Write an article's substantiation report (HTML or PDF, by the file name); audited.

    Example: substantiate report --article 3 --out reports/article-3.pdf
    """
    import hashlib

    from evidence import report

    fmt = report.format_for(out_file)
    if out_file.is_dir():
        raise SubstantiateError(f"{out_file} is a folder; give a file name ending .{fmt}")
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SubstantiateError(f"cannot write {out_file}: {e.strerror}") from e
    engine = _engine()
    data = report.generate(engine, article_id=article, fmt=fmt, actor=_who(engine))
    try:
        out_file.write_bytes(data)
    except OSError as e:
        raise SubstantiateError(f"cannot write {out_file}: {e.strerror}") from e
    if as_json:
        _emit_json({"file": str(out_file), "format": fmt, "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()})
        return
    out.print(f"wrote {out_file} ({fmt}, {len(data)} bytes)")


@export_app.command("verify")
def export_verify(
    directory: Annotated[Path, typer.Argument(help="A folder an export wrote.")],
    as_json: JsonOpt = False,
) -> None:
    """Check an export against its manifest (sha256, rows, columns) and the audit chain.

    Exit 1 naming the first mismatch. Example: substantiate export verify exports/
    """
    with db.read_session(_engine()) as session:
        problems = export.verify(session, directory)
        grown = export.events_since(session, directory) if not problems else None
    if as_json:
        _emit_json({"ok": not problems, "problems": problems, "events_since_export": grown})
    elif problems:
        err.print(f"export does not verify: {problems[0]}"
                  + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
    else:
        plural = "s" if grown != 1 else ""
        note = (f"; the database has {grown} audit event{plural} more than at export time"
                if grown else "; the database has no audit events since")
        out.print(f"export verified: every file matches its manifest; its audit head is "
                  f"in the database's chain{note}")
    if problems:
        raise typer.Exit(1)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Username.")],
    role: Annotated[str, typer.Option(help="viewer, reviewer, adjudicator or admin.")] = "reviewer",
    password_env: Annotated[str | None, typer.Option(
        help="Read the password from this environment variable instead of a prompt.")] = None,
) -> None:
    """Add a user; the password comes from a prompt (or --password-env VAR).

    Acts as an admin (--as USER or SUBSTANTIATE_USER); while there is no user at all, the
    first one may be added without, and must be an admin.

    Example: substantiate --as root users add alice --role reviewer
    """
    engine = _engine()
    with db.read_session(engine) as session:  # refuse before asking for a password
        actor = _acting(session, bootstrap=crud.count_users(session) == 0)
        if actor is not None:
            crud.acting_user(session, actor, ADMIN)
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise SubstantiateError(f"environment variable {password_env} is empty or unset")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with db.session_scope(engine) as session:
        user = crud.add_user(session=session, username=name, role=role, password=password,
                             actor=actor)
        added = f"added {user.username} ({user.role})"
    out.print(added)


def _user_named(session: Session, name: str) -> AppUser:
    user = crud.find_user(session, username=name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


@users_app.command("role")
def users_role(
    name: Annotated[str, typer.Argument(help="Username.")],
    role: Annotated[str, typer.Argument(help="viewer, reviewer, adjudicator or admin.")],
) -> None:
    """Change a user's role (acts as an admin: --as USER or SUBSTANTIATE_USER).

    Example: substantiate --as root users role alice adjudicator
    """
    with db.session_scope(_engine()) as session:
        actor = _acting(session)
        target = _user_named(session, name)
        assert target.id is not None
        crud.set_user_role(session=session, user_id=target.id, role=role,
                           expected_version=target.version, actor=actor)
    out.print(f"{name} is now a {role}")


@users_app.command("deactivate")
def users_deactivate(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Deactivate a user: they can no longer sign in or write (acts as an admin).

    The user's reviews and audit events stay; `users activate` undoes it.

    Example: substantiate --as root users deactivate alice
    """
    _set_active(name, active=False)


@users_app.command("activate")
def users_activate(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Reactivate a deactivated user (acts as an admin).

    Example: substantiate --as root users activate alice
    """
    _set_active(name, active=True)


def _set_active(name: str, *, active: bool) -> None:
    with db.session_scope(_engine()) as session:
        actor = _acting(session)
        target = _user_named(session, name)
        assert target.id is not None
        crud.set_user_active(session=session, user_id=target.id, active=active,
                             expected_version=target.version, actor=actor)
    out.print(f"{name} is now {'active' if active else 'deactivated'}")


@app.command()
def demo(
    articles_dir: Annotated[Path | None, typer.Option(
        help="Folder of articles to ingest (default: <data dir>/articles).")] = None,
    no_app: Annotated[bool, typer.Option("--no-app", help="Do not start the app at the end.")
                      ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set up the database, ingest the articles, fetch their PubMed citations, link claims
    to evidence, print a summary and start the reviewer app.

    Example: substantiate demo --no-app
    """
    engine = _engine()
    if articles_dir is None:
        articles_dir = get_settings().data_dir / "articles"
    with _progress(enabled=not as_json) as progress:
        result = jobs.demo(engine, articles_dir, actor=ACTOR, progress=progress)
    if as_json:
        _emit_json(result.as_dict())
        return
    run, corpus, not_fetched = result.ingest, result.corpus, result.not_fetched
    out.print(f"database: {engine.url.render_as_string(hide_password=True)}")
    out.print(f"articles: {corpus['articles']} ({run.new} new, {run.new_version} new versions, "
              f"{run.unchanged} unchanged)")
    out.print(f"claims: {corpus['claims']}")
    for cat, n in corpus["claims_by_category"].items():
        out.print(f"  {cat}: {n}")
    out.print("citations:")
    for kind, by_status in corpus["citations_by_kind"].items():
        detail = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        out.print(f"  {kind}: {sum(by_status.values())} ({detail})")
    if result.offline:
        out.print(f"PubMed not reachable, {len(not_fetched)} citations not fetched "
                  f"({', '.join(not_fetched)}): {result.offline}")
    elif not_fetched:
        out.print(f"{len(not_fetched)} citations not fetched: {', '.join(not_fetched)}")
    _print_link_summary(result.links)
    for e in run.errors:
        err.print(f"skipped: {e}")
    if result.first_admin:
        name, password = result.first_admin
        out.print(f"first run: created admin user {name!r} with password "
                  f"{password!r} (shown once; sign in to the app with it)")
    if not no_app:
        app_cmd(port=None)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so a running job closes its run as ``interrupted``."""
    del frame
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main() -> None:
    """Console entry point: domain errors become one line on stderr and exit code 1."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SubstantiateError as e:
        err.print(f"error: {e}")
        sys.exit(1)
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        err.print(f"error: database: {first}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
