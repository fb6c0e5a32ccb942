"""PostgreSQL full-text search against the persisted BM25 index, on SciFact.

The SciFact corpus goes into a scratch table with a ``tsvector`` (title weighted A,
abstract B; the ``english`` configuration) under a GIN index; each claim becomes an OR of
its words (``to_tsquery('english', 'w1 | w2 | ...')``, since an AND of every claim word
matches almost nothing) ranked by ``ts_rank_cd``, top 100. The same claims are ranked by
the persisted index (``Ranker.load``, memory-mapped). Prints nDCG@10, recall@100 and the
p50 / p95 latency per claim of both, as one JSON object; the scratch table is dropped.

    python -m benchmarks.pg_fts --scifact ../shared/datasets/scifact --database-url URL
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from benchmarks.retrieval import evaluate, load_claims, load_corpus
from evidence.match import Ranker

_WORD = re.compile(r"[A-Za-z0-9]+")


def _latency(times: list[float]) -> dict[str, float]:
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_fts", description=__doc__)
    parser.add_argument("--scifact", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--database-url", required=True, help="a PostgreSQL SQLAlchemy URL")
    args = parser.parse_args(argv)
    claims = [c for c in load_claims(args.scifact / "claims_train.jsonl") if c.cited]
    docs = load_corpus(args.scifact / "corpus.jsonl")
    qrels = {c.claim_id: c.cited for c in claims}
    result: dict[str, Any] = {"benchmark": "pg_fts", "documents": len(docs),
                              "claims": len(claims)}

    engine = create_engine(args.database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS fts_bench"))
        conn.execute(text("CREATE TABLE fts_bench (doc_id text PRIMARY KEY, title text, "
                          "abstract text, tsv tsvector)"))
        t0 = time.perf_counter()
        conn.execute(text("INSERT INTO fts_bench (doc_id, title, abstract) VALUES "
                          "(:d, :t, :a)"),
                     [{"d": d.doc_id, "t": d.title, "a": d.abstract} for d in docs])
        conn.execute(text("UPDATE fts_bench SET tsv = setweight(to_tsvector('english', "
                          "coalesce(title, '')), 'A') || setweight(to_tsvector('english', "
                          "coalesce(abstract, '')), 'B')"))
        conn.execute(text("CREATE INDEX fts_bench_gin ON fts_bench USING gin (tsv)"))
        result["postgres_index_s"] = round(time.perf_counter() - t0, 2)
    run: dict[str, list[tuple[str, float]]] = {}
    times = []
    try:
        with engine.connect() as conn:
            for claim in claims:
                query = " | ".join(dict.fromkeys(w.lower() for w in _WORD.findall(claim.text)))
                t = time.perf_counter()
                rows = conn.execute(text(
                    "SELECT doc_id, ts_rank_cd(tsv, q) AS r FROM fts_bench, "
                    "to_tsquery('english', :q) q WHERE tsv @@ q ORDER BY r DESC, doc_id "
                    "LIMIT 100"), {"q": query or "''"}).all()
                times.append(time.perf_counter() - t)
                run[claim.claim_id] = [(d, float(r)) for d, r in rows]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS fts_bench"))
    result["postgres_fts"] = {**evaluate(run, qrels), **_latency(times)}

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        Ranker(docs).save(folder)
        result["bm25_index_s"] = round(time.perf_counter() - t0, 2)
        ranker = Ranker.load(folder, mmap=True)
        bm25_run: dict[str, list[tuple[str, float]]] = {}
        times = []
        for claim in claims:
            t = time.perf_counter()
            bm25_run[claim.claim_id] = ranker.search(claim.text, k=100)
            times.append(time.perf_counter() - t)
    result["persisted_bm25"] = {**evaluate(bm25_run, qrels), **_latency(times)}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
