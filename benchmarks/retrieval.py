"""Retrieval benchmark: rank SciFact claims against the SciFact corpus with evidence.match.

Usage::

    python -m benchmarks.retrieval --scifact ../shared/datasets/scifact --split train
    python -m benchmarks.retrieval --scifact DIR --split train --run-out run.trec --semantic
    python -m benchmarks.retrieval --scifact DIR --split train --semantic --store DIR

Prints one JSON object. Which claims and which documents count:

- ``cited``: every claim with at least one ``cited_doc_ids`` entry (as BEIR's SciFact
  qrels), every cited document relevant. This is the headline figure, comparable with
  published BM25 baselines (which are on BEIR's test claims, so not the same claims).
- ``evidence``: the stricter view, only claims with at least one document under
  ``evidence`` (a rationale sentence was annotated), only those documents relevant.

Metrics use binary relevance: nDCG@10 (log2 discount, ideal DCG from the number of
relevant documents), recall@10 and recall@100, and MAP@100 (average precision over the top
100, divided by the number of relevant documents, as trec_eval's ``map_cut_100``). A
fixed random split of the claims into two halves is also scored, to show that a setting
is not tuned to one set of claims.

``index_seconds`` is the time to build the ranker (with ``--semantic``, also to have every
document's embedding); ``queries_per_second`` covers ranking (and re-ranking) all claims.
``--semantic`` needs the ``[semantic]`` extra. Its document embeddings are kept in an
embedding store (``evidence.embeddings``): a temporary folder, or ``--store DIR`` to keep
them, so a second run on the same folder embeds no document (``documents_embedded``: 0).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from evidence.match import Document, Ranker

RUN_DEPTH = 100


@dataclass(frozen=True)
class Claim:
    """A benchmark claim with its relevant documents."""

    claim_id: str
    text: str
    cited: frozenset[str]
    evidence: frozenset[str]


Run = Mapping[str, Sequence[tuple[str, float]]]
Qrels = Mapping[str, frozenset[str]]


def load_claims(path: Path) -> list[Claim]:
    """Read SciFact claims (``claims_<split>.jsonl``)."""
    claims = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            claims.append(
                Claim(
                    claim_id=str(row["id"]),
                    text=row["claim"],
                    cited=frozenset(str(d) for d in row.get("cited_doc_ids", [])),
                    evidence=frozenset(str(d) for d in row.get("evidence", {})),
                )
            )
    return claims


def load_corpus(path: Path) -> list[Document]:
    """Read a corpus in SciFact (``doc_id``, ``abstract`` list) or BEIR (``_id``, ``text``) form."""
    docs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if "doc_id" in row:
                abstract = row["abstract"]
                text = " ".join(abstract) if isinstance(abstract, list) else str(abstract)
                docs.append(Document(str(row["doc_id"]), row.get("title", ""), text))
            else:
                docs.append(Document(str(row["_id"]), row.get("title", ""), row.get("text", "")))
    return docs


# ---------------------------------------------------------------------------------------
# Metrics (binary relevance)
# ---------------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """nDCG@k with gain 1 for a relevant document and a log2(rank + 1) discount."""
    rel = set(relevant)
    if not rel:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in rel)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    rel = set(relevant)
    if not rel:
        return 0.0
    return len(rel.intersection(ranked[:k])) / len(rel)


def average_precision(
    ranked: Sequence[str], relevant: Iterable[str], k: int | None = None
) -> float:
    """Average precision over the top k (all of ``ranked`` when k is None), over all relevant."""
    rel = set(relevant)
    if not rel:
        return 0.0
    hits = 0
    total = 0.0
    for i, d in enumerate(ranked if k is None else ranked[:k]):
        if d in rel:
            hits += 1
            total += hits / (i + 1)
    return total / len(rel)


def evaluate(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, recall@10, recall@100 and MAP@100 over the queries in ``qrels``.

    A query missing from ``run`` scores 0 on every metric.
    """
    if not qrels:
        return {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "map@100": 0.0}
    sums = {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "map@100": 0.0}
    for qid, rel in qrels.items():
        ranked = [d for d, _ in run.get(qid, ())]
        sums["ndcg@10"] += ndcg_at_k(ranked, rel, 10)
        sums["recall@10"] += recall_at_k(ranked, rel, 10)
        sums["recall@100"] += recall_at_k(ranked, rel, 100)
        sums["map@100"] += average_precision(ranked, rel, 100)
    return {name: round(total / len(qrels), 4) for name, total in sums.items()}


def write_trec_run(run: Run, out: TextIO, tag: str, depth: int = RUN_DEPTH) -> None:
    """Write ``qid Q0 docid rank score tag`` lines, ``depth`` per query at most."""
    for qid, results in run.items():
        for rank, (doc_id, score) in enumerate(results[:depth], start=1):
            out.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def split_halves(claim_ids: Sequence[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """A reproducible random split of claim ids into two halves."""
    ids = sorted(claim_ids)
    random.Random(seed).shuffle(ids)
    middle = len(ids) // 2
    return sorted(ids[:middle]), sorted(ids[middle:])


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------


def rank_claims(
    claims: Sequence[Claim], docs: Sequence[Document], *, semantic: bool = False,
    index_dir: Path | None = None, store_dir: Path | None = None,
) -> tuple[dict[str, list[tuple[str, float]]], dict[str, float]]:
    """Rank every claim against ``docs``; return the run, timings in seconds, and
    ``documents_embedded`` (documents the semantic re-ranker encoded).

    With ``index_dir``, the ranker is saved there and the claims are ranked by the index
    loaded back, memory-mapped (as ``link`` ranks with the persisted index). With
    ``semantic``, document embeddings are read from and added to the embedding store in
    ``store_dir`` (a temporary folder when None).
    """
    if semantic and store_dir is None:
        with tempfile.TemporaryDirectory(prefix="retrieval-embeddings-") as tmp:
            return rank_claims(claims, docs, semantic=True, index_dir=index_dir,
                               store_dir=Path(tmp))
    t0 = time.perf_counter()
    reranker: Any = None
    if semantic:
        from evidence.embeddings import EmbeddingStore
        from evidence.semantic import HYBRID_BM25, HybridReranker

        assert store_dir is not None
        ranker = Ranker(docs, HYBRID_BM25)
        reranker = HybridReranker(docs, store=EmbeddingStore(store_dir))
        reranker.precompute()  # document embeddings count as indexing time
    else:
        ranker = Ranker(docs)
    if index_dir is not None:
        ranker.save(index_dir)
        ranker = Ranker.load(index_dir, mmap=True)
    t1 = time.perf_counter()
    texts = [c.text for c in claims]
    results = ranker.search_many(texts, k=RUN_DEPTH)
    if reranker is not None:
        results = reranker.rerank_many(texts, results)
    t2 = time.perf_counter()
    run = {c.claim_id: r[:RUN_DEPTH] for c, r in zip(claims, results, strict=True)}
    return run, {"index_s": t1 - t0, "search_s": t2 - t1,
                 "documents_embedded": reranker.encoded if reranker is not None else 0}


def benchmark(
    scifact: Path,
    split: str,
    *,
    semantic: bool = False,
    run_out: Path | None = None,
    limit: int | None = None,
    index_dir: Path | None = None,
    store_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-ready result (``limit``: first N claims only;
    ``index_dir``: rank from the index saved there and loaded memory-mapped; ``store_dir``:
    the embedding store of ``semantic``, a temporary folder when None)."""
    # Every claim is ranked (the run file covers unjudged claims too, e.g. a test split
    # scored elsewhere); the metrics use the claims that have judgements.
    claims = load_claims(scifact / f"claims_{split}.jsonl")[:limit]
    docs = load_corpus(scifact / "corpus.jsonl")
    run, timing = rank_claims(claims, docs, semantic=semantic, index_dir=index_dir,
                              store_dir=store_dir)
    cited: dict[str, frozenset[str]] = {c.claim_id: c.cited for c in claims if c.cited}
    evidence: dict[str, frozenset[str]] = {c.claim_id: c.evidence for c in claims if c.evidence}
    half_a, half_b = split_halves(list(cited))
    tag = "substantiate-hybrid" if semantic else "substantiate-bm25"
    if run_out is not None:
        with run_out.open("w", encoding="utf-8") as fh:
            write_trec_run(run, fh, tag)
    return {
        "benchmark": "retrieval",
        "dataset": "scifact",
        "split": split,
        "ranker": tag,
        "index": "persisted (memory-mapped)" if index_dir is not None else "in memory",
        "claims_included": "claims with >=1 cited_doc_ids (BEIR qrels)"
        + (f", first {limit}" if limit is not None else ""),
        "map_depth": RUN_DEPTH,
        "counts": {
            "documents": len(docs),
            "ranked_claims": len(claims),
            "claims": len(cited),
            "qrels": sum(len(r) for r in cited.values()),
            "evidence_claims": len(evidence),
            "evidence_qrels": sum(len(r) for r in evidence.values()),
        },
        # No judged claims (an unlabelled split): no figures rather than misleading zeros.
        "cited": evaluate(run, cited) if cited else None,
        "evidence": evaluate(run, evidence) if evidence else None,
        "halves": {
            "seed": 0,
            "a": evaluate(run, {q: cited[q] for q in half_a}) if half_a else None,
            "b": evaluate(run, {q: cited[q] for q in half_b}) if half_b else None,
        },
        "index_seconds": round(timing["index_s"], 3),
        "documents_embedded": int(timing["documents_embedded"]),
        "queries_per_second": round(len(claims) / timing["search_s"], 1)
        if timing["search_s"] > 0
        else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retrieval", description=__doc__)
    parser.add_argument("--scifact", type=Path, required=True, help="SciFact directory")
    parser.add_argument("--split", default="train", help="claims split (claims_<split>.jsonl)")
    parser.add_argument("--run-out", type=Path, default=None, help="write a TREC run file")
    parser.add_argument("--semantic", action="store_true", help="re-rank with the [semantic] extra")
    parser.add_argument("--limit", type=int, default=None, help="rank only the first N claims")
    parser.add_argument("--index", type=Path, default=None, metavar="DIR",
                        help="save the index to DIR and rank from it loaded memory-mapped")
    parser.add_argument("--store", type=Path, default=None, metavar="DIR",
                        help="with --semantic: keep document embeddings in DIR (an embedding "
                        "store; a second run embeds none); default: a temporary folder")
    args = parser.parse_args(argv)
    if args.store is not None and not args.semantic:
        parser.error("--store needs --semantic")
    result = benchmark(
        args.scifact, args.split, semantic=args.semantic, run_out=args.run_out, limit=args.limit,
        index_dir=args.index, store_dir=args.store,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
