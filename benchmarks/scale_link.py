"""``link`` against a large study table in PostgreSQL: latency per claim and memory.

N synthetic studies (made from the SciFact corpus as in ``benchmarks.scale_index``: distinct
ids, varied text; PMIDs from 93,000,000 up, a synthetic range) are inserted into a fresh
PostgreSQL schema, the five seed articles are ingested (their claims extracted), the
persisted ranking index is built from the database (``substantiate index build``), and
``link`` runs with that index. Each study carries a ``record_sha256``, as every study loaded
from PubMed (``ingest medline``, E-utilities) does; ``link``'s currency check compares those
(a study entered by hand, without one, is fingerprinted by reading its text instead).
Each stage runs in its own interpreter, so each peak resident memory is that stage's own.

Reported: the index build's time (reading the studies included), size and peak memory;
link's time per claim (p50 / p95 / max, from one claim finished to the next: ranking, fit
judgement and the database writes; the first claim apart, as ``first_claim_ms``, since it
also checks that the index is current and opens it), its total time and its peak resident
memory (which includes the memory-mapped index pages it touched and the live studies' ids).

    python -m benchmarks.scale_link --scifact ../shared/datasets/scifact --studies 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, insert, text

from benchmarks.retrieval import load_corpus
from benchmarks.scale_index import synthetic
from evidence import db, linking, ranking_index
from evidence.match import Document
from evidence.models import Study
from substantiate import jobs

FIRST_PMID = 93_000_000  # synthetic range (90000000+): never a real PubMed id
SEEDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "seeds"


def _admin_url() -> str:
    return os.environ.get("SUBSTANTIATE_BENCH_PG") or os.environ.get(
        "SUBSTANTIATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _schema_url(schema: str) -> str:
    admin = _admin_url()
    sep = "&" if "?" in admin else "?"
    return f"{admin}{sep}options=-csearch_path%3D{schema}"


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _record_hash(doc: Document) -> str:
    """A stand-in for the content hash every study loaded from PubMed carries."""
    return hashlib.sha256(f"{doc.doc_id}\x1f{doc.title}\x1f{doc.abstract}".encode()).hexdigest()


def stage_load(url: str, scifact: Path, n: int, seeds: Path) -> dict[str, Any]:
    engine = db.make_engine(url)
    db.upgrade(engine)
    corpus = load_corpus(scifact / "corpus.jsonl")
    t0 = time.perf_counter()
    batch = 10_000
    defaults = Study(pmid="0").model_dump(exclude={"id", "pmid", "title", "abstract"})
    with engine.begin() as conn:
        for start in range(0, n, batch):
            docs = synthetic(corpus, min(batch, n - start), offset=start)
            conn.execute(insert(Study), [
                {**defaults, "pmid": str(FIRST_PMID + int(d.doc_id)), "title": d.title,
                 "abstract": d.abstract, "record_sha256": _record_hash(d)} for d in docs])
    t1 = time.perf_counter()
    articles = sorted(str(p) for p in seeds.glob("*.txt"))
    jobs.ingest_articles(engine, articles)
    engine.dispose()
    return {"studies": n, "insert_s": round(t1 - t0, 1), "articles": len(articles),
            "peak_rss_mb": _peak_mb()}


def stage_index(url: str, folder: Path) -> dict[str, Any]:
    engine = db.make_engine(url)
    report = ranking_index.build(engine, folder)
    engine.dispose()
    return {"seconds": report.seconds, "size_mb": round(report.size_bytes / 1e6, 1),
            "peak_rss_mb": _peak_mb()}


def _rss_parts_mb() -> tuple[float, float]:
    """This process's resident memory now: (anonymous, file-backed) in MB (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) / 1024
    return (round(fields.get("RssAnon", 0.0), 1),
            round(fields.get("RssFile", 0.0) + fields.get("RssShmem", 0.0), 1))


def stage_link(url: str, folder: Path) -> dict[str, Any]:
    engine = db.make_engine(url)
    stamps: list[float] = []
    anon: list[float] = []

    def claimed(_n: int) -> None:
        stamps.append(time.perf_counter())
        anon.append(_rss_parts_mb()[0])

    t0 = time.perf_counter()
    summary = linking.link_all(engine, index_dir=folder, on_claim=claimed)
    total = time.perf_counter() - t0
    anon_end, file_end = _rss_parts_mb()
    engine.dispose()
    # The first claim's time includes checking the index is current and opening it.
    first = (stamps[0] - t0) * 1000 if stamps else None
    ms = np.diff(np.array(stamps)) * 1000

    def pct(q: float) -> float | None:
        return round(float(np.percentile(ms, q)), 1) if len(ms) else None

    return {"claims": len(stamps), "ranking": summary.ranking,
            "links_created": summary.links_created, "total_s": round(total, 1),
            "first_claim_ms": round(first, 1) if first is not None else None,
            "p50_ms": pct(50), "p95_ms": pct(95), "max_ms": pct(100),
            "peak_rss_mb": _peak_mb(),
            # Of the resident memory, the private part (sampled after every claim) and, at
            # the end, the file-backed part: memory-mapped index pages, which the kernel
            # can drop and re-read under pressure.
            "anon_rss_mb_max_sampled": max([*anon, anon_end]),
            "file_rss_mb_at_end": file_end}


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scale_link", *args],
                          check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_link",
                                     description=__doc__)
    parser.add_argument("--scifact", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--seeds", type=Path, default=SEEDS)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--stage", choices=["load", "index", "link"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage == "load":
        result = stage_load(args.url, args.scifact, args.studies, args.seeds)
    elif args.stage == "index":
        result = stage_index(args.url, args.folder)
    elif args.stage == "link":
        result = stage_link(args.url, args.folder)
    else:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(_admin_url())
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        folder = Path(tempfile.mkdtemp(prefix="scale-link-"))
        url = _schema_url(schema)
        try:
            load = _child("--stage", "load", "--url", url, "--scifact", str(args.scifact),
                          "--studies", str(args.studies), "--seeds", str(args.seeds))
            index = _child("--stage", "index", "--url", url, "--folder", str(folder / "i"))
            link = _child("--stage", "link", "--url", url, "--folder", str(folder / "i"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        result = {"benchmark": "scale_link", "database": "postgresql",
                  "studies": args.studies, "load": load, "index": index, "link": link,
                  "note": "studies are synthetic (SciFact text recombined, PMIDs 93,000,000+)"}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
