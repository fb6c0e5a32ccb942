"""Persisted ranking index at scale: build, update, size, memory and query latency.

For each size N (default 10,000 and 100,000) synthetic studies are made from the SciFact
corpus with distinct ids and varied text: study k takes the title and abstract of corpus
document ``k mod 5183`` and appends the first sentence of another document chosen by ``k``,
so no two studies are the same text. Each size runs in two fresh processes:

* ``build``: analyse and index the N studies (``Ranker``), save it (``Ranker.save``), then
  update it with 1% new, 0.5% changed and 0.5% deleted studies (``Ranker.with_changes``);
  peak resident memory of the process (``ru_maxrss``);
* ``query``: load the index memory-mapped (``Ranker.load``) and rank the 809 SciFact train
  claims, one at a time, as ``link`` does (top 50): p50 / p95 latency per claim, and the
  resident memory after loading and after the queries.

``growth`` gives each figure's ratio between consecutive sizes (10 = linear in a tenfold
step). The study text is read from memory, not from a database, so build time here is the
ranker's; ``substantiate index build`` also reads the studies (about 20 s per million rows
on PostgreSQL, measured by ``benchmarks.scale`` when it exists).

    python -m benchmarks.scale_index --scifact ../shared/datasets/scifact [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.retrieval import load_claims, load_corpus
from evidence.match import Document, Ranker

_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)")


def synthetic(corpus: Sequence[Document], n: int, *, offset: int = 0,
              variant: int = 0) -> list[Document]:
    """``n`` distinct studies made from ``corpus`` (ids ``offset`` .. ``offset + n - 1``)."""
    size = len(corpus)
    docs = []
    for k in range(offset, offset + n):
        base = corpus[k % size]
        other = corpus[(k * 7919 + k // size + variant) % size]
        match = _FIRST_SENTENCE.match(other.abstract)
        extra = match.group(1) if match else other.title
        docs.append(Document(str(k), base.title, f"{base.abstract} {extra}"))
    return docs


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _size_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6, 1)


def run_build(scifact: Path, n: int, folder: Path) -> dict[str, Any]:
    corpus = load_corpus(scifact / "corpus.jsonl")
    docs = synthetic(corpus, n)
    t0 = time.perf_counter()
    ranker = Ranker(docs)
    t1 = time.perf_counter()
    ranker.save(folder / "index")
    t2 = time.perf_counter()
    counts = folder / "index"
    size = _size_mb(counts)
    counts_mb = round(sum(f.stat().st_size for f in counts.glob("*.counts.npz")) / 1e6, 1)
    del ranker
    # Update: 1% new, 0.5% changed (new text), 0.5% deleted.
    loaded = Ranker.load(folder / "index")
    n_new, n_changed, n_deleted = n // 100, n // 200, n // 200
    added = synthetic(corpus, n_new, offset=n)
    changed = synthetic(corpus, n_changed, offset=0, variant=1)
    deleted = [str(k) for k in range(n - n_deleted, n)]
    t3 = time.perf_counter()
    updated = loaded.with_changes(added + changed, remove=deleted)
    t4 = time.perf_counter()
    return {"studies": n, "build_s": round(t1 - t0, 2), "save_s": round(t2 - t1, 2),
            "size_mb": size, "counts_mb": counts_mb,
            "update": {"new": n_new, "changed": n_changed, "deleted": n_deleted,
                       "seconds": round(t4 - t3, 2), "studies_after": len(updated)},
            "peak_rss_mb": _rss_mb()}


def run_query(scifact: Path, folder: Path) -> dict[str, Any]:
    claims = load_claims(scifact / "claims_train.jsonl")
    before = _current_rss_mb()
    t0 = time.perf_counter()
    ranker = Ranker.load(folder / "index", mmap=True)
    load_s = time.perf_counter() - t0
    after_load = _current_rss_mb()
    ranker.search(claims[0].text, k=50)  # first query pages in the vocabulary's top levels
    times = []
    for claim in claims:
        t = time.perf_counter()
        ranker.search(claim.text, k=50)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"load_s": round(load_s, 3), "queries": len(claims),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "rss_before_load_mb": before, "rss_after_load_mb": after_load,
            "rss_after_queries_mb": _current_rss_mb(), "peak_rss_mb": _rss_mb()}


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scale_index", *args],
                          check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        factor = b["studies"] / a["studies"]

        def ratio(x: float, y: float) -> float | None:
            return round(y / x, 2) if x else None

        out.append({"from": a["studies"], "to": b["studies"], "size_factor": factor,
                    "build_s": ratio(a["build"]["build_s"], b["build"]["build_s"]),
                    "update_s": ratio(a["build"]["update"]["seconds"],
                                      b["build"]["update"]["seconds"]),
                    "disk": ratio(a["build"]["size_mb"], b["build"]["size_mb"]),
                    "build_peak_rss": ratio(a["build"]["peak_rss_mb"],
                                            b["build"]["peak_rss_mb"]),
                    "query_rss": ratio(a["query"]["rss_after_queries_mb"],
                                       b["query"]["rss_after_queries_mb"]),
                    "p95_ms": ratio(a["query"]["p95_ms"], b["query"]["p95_ms"])})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_index",
                                     description=__doc__)
    parser.add_argument("--scifact", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stage", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage == "build":
        result = run_build(args.scifact, args.sizes[0], args.folder)
    elif args.stage == "query":
        result = run_query(args.scifact, args.folder)
    else:
        rows = []
        for n in args.sizes:
            folder = Path(tempfile.mkdtemp(prefix="scale-index-"))
            try:
                common = ["--scifact", str(args.scifact), "--folder", str(folder)]
                build = _child("--stage", "build", "--sizes", str(n), *common)
                query = _child("--stage", "query", *common)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            rows.append({"studies": n, "build": build, "query": query})
        result = {"benchmark": "scale_index", "sizes": rows, "growth": _growth(rows)}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
