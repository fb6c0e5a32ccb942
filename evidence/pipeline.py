"""Multi-step jobs the CLI and the demo run: ingest articles, summarise.

Each step commits per unit of work (one article, one batch), so an error part-way loses
nothing that was already done and leaves no half-written unit behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from evidence import crud, queries
from evidence.db import session_scope
from evidence.errors import InputError
from ingest import articles as article_reader
from ingest import store

Progress = Callable[[str], None]


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
    on_item: Progress | None = None,
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
    on_item
        Called with each item's name after it is processed (progress bars).
    keep_going
        Record a failing item's error and carry on instead of stopping at it.

    Returns
    -------
    ArticleRunSummary

    Raises
    ------
    InputError, FetchError
        The first bad item, unless ``keep_going``.
    """
    items = expand_inputs(inputs)
    summary = ArticleRunSummary()
    with session_scope(engine) as session:
        run = crud.start_run(session, kind="ingest_articles", actor=actor,
                             params={"inputs": list(inputs)})
        summary.run_id = run.id
    for item in items:
        try:
            if item.startswith(("http://", "https://")):
                parsed = article_reader.fetch_url(item)
            else:
                parsed = article_reader.read_path(Path(item))
            with session_scope(engine) as session:
                res = store.store_article(session=session, parsed=parsed, actor=actor,
                                           run_id=summary.run_id)
            setattr(summary, res.status, getattr(summary, res.status) + 1)
            summary.claims += res.claims
            summary.citations += res.citations
        except InputError as e:
            if not keep_going:
                _close_run(engine, summary, status="error", error=str(e))
                raise
            summary.errors.append(str(e))
        except OSError as e:  # FetchError and its kin
            if not keep_going:
                _close_run(engine, summary, status="error", error=str(e))
                raise
            summary.errors.append(str(e))
        if on_item:
            on_item(item)
    _close_run(engine, summary, status="ok" if not summary.errors else "partial")
    return summary


def _close_run(engine: Engine, summary: ArticleRunSummary, *, status: str,
               error: str | None = None) -> None:
    from evidence.models import IngestRun

    with session_scope(engine) as session:
        run = session.get(IngestRun, summary.run_id)
        if run is not None:
            crud.finish_run(session, run=run, stats=summary.as_dict(), status=status, error=error)


def corpus_summary(session: Session) -> dict[str, Any]:
    """Counts for the demo: articles, claims by category, citations by kind and status."""
    arts = queries.articles(session, current_only=True)
    return {
        "articles": len(arts),
        "claims": int(arts["n_claims"].sum()) if len(arts) else 0,
        "claims_by_category": queries.claim_counts(session),
        "citations_by_kind": queries.citation_counts(session),
    }
