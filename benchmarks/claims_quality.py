"""Claim extraction quality against gold annotations; prints one JSON object.

Usage::

    python -m benchmarks.claims_quality [--annotations DIR] [--articles DIR] [--cross-topic DIR]

Each ``<stem>.json`` under the annotations folder (default ``tests/data/annotations``)
lists the gold claims of the article ``<stem>.*`` under the articles folder (default
``data/articles``) as ``{"start", "end", "text", "category"}``. An extracted claim
matches a gold claim when their spans overlap by at least half of the shorter span.
Precision is matched extracted / extracted, recall is matched gold / gold; "overall"
pools the counts of all articles (micro average). Category agreement is the share of
matched gold claims whose best-overlapping extracted claim has the same category.

Beside the seed figures, the cross-topic corpus (default ``tests/data/cross_topic``, with
``articles/``, ``annotations/`` and ``split.json``) is scored in two parts:
"cross_topic_tuning" and "cross_topic_held_out", each shaped like "overall". The held-out
part is reported so that tuning on the other part can be judged; it is never tuned on.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.articles import SUPPORTED_SUFFIXES, read_path
from ingest.claims import extract_claims

ROOT = Path(__file__).resolve().parents[1]

Span = tuple[int, int]


@dataclass(frozen=True)
class GoldClaim:
    """One annotated claim."""

    start: int
    end: int
    text: str
    category: str


def spans_match(a: Span, b: Span) -> bool:
    """Whether two spans overlap by at least half of the shorter one."""
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    shorter = min(a[1] - a[0], b[1] - b[0])
    return shorter > 0 and overlap * 2 >= shorter


def score(extracted: Sequence[Span], gold: Sequence[Span]) -> dict[str, float | int]:
    """Precision, recall and F1 of extracted spans against gold spans."""
    matched_extracted = sum(any(spans_match(e, g) for g in gold) for e in extracted)
    matched_gold = sum(any(spans_match(g, e) for e in extracted) for g in gold)
    return _metrics(len(extracted), matched_extracted, len(gold), matched_gold)


def _metrics(n_ext: int, m_ext: int, n_gold: int, m_gold: int) -> dict[str, float | int]:
    precision = m_ext / n_ext if n_ext else 1.0
    recall = m_gold / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "extracted": n_ext,
        "gold": n_gold,
        "matched_extracted": m_ext,
        "matched_gold": m_gold,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def load_gold(path: Path, article_text: str) -> list[GoldClaim]:
    """Read one annotation file, checking each span against the article text."""
    claims = [GoldClaim(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
    for claim in claims:
        if article_text[claim.start : claim.end] != claim.text:
            raise ValueError(f"{path}: span {claim.start}:{claim.end} does not match its text")
    return claims


def find_article(articles: Path, stem: str) -> Path:
    """The article file with the given stem."""
    for suffix in SUPPORTED_SUFFIXES:
        candidate = articles / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no article named {stem} under {articles}")


def evaluate(
    annotations: Path, articles: Path, stems: Sequence[str] | None = None
) -> dict[str, object]:
    """Score the extractor on every annotated article, or only on those named in ``stems``."""
    per_article: dict[str, dict[str, float | int]] = {}
    totals = [0, 0, 0, 0]
    agree = 0
    paths = sorted(annotations.glob("*.json"))
    if stems is not None:
        wanted = set(stems)
        paths = [path for path in paths if path.stem in wanted]
        missing = wanted - {path.stem for path in paths}
        if missing:
            raise FileNotFoundError(f"no annotations for {sorted(missing)} under {annotations}")
    for path in paths:
        article = read_path(find_article(articles, path.stem))
        gold = load_gold(path, article.text)
        claims = extract_claims(article.text)
        ext_spans = [(c.start, c.end) for c in claims]
        gold_spans = [(g.start, g.end) for g in gold]
        result = score(ext_spans, gold_spans)
        per_article[path.stem] = result
        for i, key in enumerate(("extracted", "matched_extracted", "gold", "matched_gold")):
            totals[i] += int(result[key])
        for g in gold:
            overlapping = [c for c in claims if spans_match((g.start, g.end), (c.start, c.end))]
            if overlapping:
                best = max(overlapping, key=lambda c: min(c.end, g.end) - max(c.start, g.start))
                agree += best.category == g.category
    overall = _metrics(*totals)
    overall["category_agreement"] = round(agree / totals[3], 4) if totals[3] else 0.0
    return {
        "benchmark": "claims_quality",
        "match_rule": "span overlap >= 50% of the shorter span",
        "articles": per_article,
        "overall": overall,
    }


def load_split(corpus: Path) -> dict[str, list[str]]:
    """The tuning and held-out article stems of a corpus, from its ``split.json``."""
    split = json.loads((corpus / "split.json").read_text(encoding="utf-8"))
    return {part: list(split[part]) for part in ("tuning", "held_out")}


def evaluate_cross_topic(corpus: Path) -> dict[str, object]:
    """The pooled figures of the cross-topic corpus's tuning part and held-out part."""
    split = load_split(corpus)
    return {
        f"cross_topic_{part}": evaluate(corpus / "annotations", corpus / "articles", stems)[
            "overall"
        ]
        for part, stems in split.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=Path, default=ROOT / "tests/data/annotations")
    parser.add_argument("--articles", type=Path, default=ROOT / "data/articles")
    parser.add_argument("--cross-topic", type=Path, default=ROOT / "tests/data/cross_topic")
    args = parser.parse_args(argv)
    result = evaluate(args.annotations, args.articles)
    result.update(evaluate_cross_topic(args.cross_topic))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
