"""Benchmark: the claim library — grouping time as the library grows, and grouping quality.

Run ``python -m benchmarks.claim_library [--articles 2000]``; prints one JSON object.

Scale
    Generated articles (plainly synthetic claim sentences built from templates over
    therapies, conditions, outcomes and numbers; not real marketing text) are stored in a
    fresh SQLite database and grouped through ``evidence.library.assign_canonical``, the
    path ``ingest article`` uses, one article per transaction. It reports the seconds spent
    on the first and last 100 articles and their ratio: flat grouping keeps it near 1
    however large the library has grown. Grouping is lexical here (``CLAIM_GROUP_SEMANTIC``
    off), so the timing does not depend on whether the ``[semantic]`` extra is installed.

Quality (``--quality``, or :func:`grouping_quality`)
    The gold claims of the five seed articles (``tests/data/annotations``) are grouped in
    article order, as ingesting the seeds groups them, and compared with the reference
    groups of ``tests/data/canonical_groups/seeds.json``: pairwise precision, recall and F1
    over pairs of claims placed in the same group.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from sqlmodel import Session

from evidence import db, library
from evidence.config import Settings
from evidence.models import Article, Claim

ROOT = Path(__file__).resolve().parents[1]
ANNOTATIONS = ROOT / "tests" / "data" / "annotations"
REFERENCE = ROOT / "tests" / "data" / "canonical_groups" / "seeds.json"

Ref = tuple[str, int, int]


# --- quality ---------------------------------------------------------------------------


def _gold_claims() -> list[tuple[Ref, str, str]]:
    claims: list[tuple[Ref, str, str]] = []
    for path in sorted(ANNOTATIONS.glob("*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            claims.append(((path.stem, item["start"], item["end"]), item["text"],
                           item["category"]))
    return claims


def _reference_groups() -> dict[Ref, str]:
    doc = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return {(m["article"], m["start"], m["end"]): g["id"]
            for g in doc["groups"] for m in g["members"]}


def _pairs(labels: Sequence[Any]) -> set[tuple[int, int]]:
    by_label: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    return {pair for members in by_label.values() for pair in combinations(members, 2)}


def pairwise_scores(predicted: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a grouping against a reference grouping.

    Parameters
    ----------
    predicted, reference
        A group label per item, aligned.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (rounded to 4 places) and the pair counts.
    """
    got, want = _pairs(predicted), _pairs(reference)
    hit = len(got & want)
    precision = hit / len(got) if got else 1.0
    recall = hit / len(want) if want else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "pairs_predicted": len(got), "pairs_reference": len(want), "pairs_correct": hit}


def grouping_quality(use_semantic: bool) -> dict[str, Any]:
    """Group the seeds' gold claims and score the groups against the reference annotation.

    Parameters
    ----------
    use_semantic : bool
        Group by meaning with sentence embeddings (needs the ``[semantic]`` extra) or by
        the lexical rules alone.

    Returns
    -------
    dict
        ``semantic`` (whether embeddings were used), ``thresholds``, ``claims``, ``groups``
        and ``reference_groups`` (counts, singletons included), ``multi_member_groups``
        and ``reference_multi_member_groups``, and the pairwise ``precision``, ``recall``,
        ``f1`` with pair counts.

    Raises
    ------
    evidence.semantic.SemanticUnavailable
        ``use_semantic`` without the ``[semantic]`` extra.
    """
    settings = Settings(claim_group_semantic=use_semantic)
    encoder = library.sentence_encoder(settings)
    if use_semantic and encoder is None:
        from evidence.semantic import SemanticUnavailable

        raise SemanticUnavailable("install the semantic extra: pip install "
                                  "'substantiate[semantic]'")
    claims = _gold_claims()
    reference = _reference_groups()
    groups = library.group_claims([t for _, t, _ in claims],
                                  articles=[r[0] for r, _, _ in claims],
                                  categories=[c for _, _, c in claims],
                                  rule=library.grouping_rule(settings), encoder=encoder)
    predicted = [0] * len(claims)
    for g, group in enumerate(groups):
        for m in group.members:
            predicted[m] = g
    labels = [reference[r] for r, _, _ in claims]
    rule = library.grouping_rule(settings)
    return {
        "note": "the thresholds and weights were tuned on this annotation (there is no "
                "held-out set): read the scores as fit, not as a generalisation estimate",
        "semantic": encoder is not None,
        "thresholds": ({"lexical": rule.threshold, "semantic": rule.semantic_threshold,
                        "semantic_weight": library.SEMANTIC_WEIGHT,
                        "frame_weight": library.FRAME_WEIGHT}
                       if encoder is not None else {"lexical": rule.threshold,
                                                    "frame_weight": library.FRAME_WEIGHT}),
        "claims": len(claims),
        "groups": len(groups),
        "reference_groups": len(set(labels)),
        "multi_member_groups": sum(len(g.members) > 1 for g in groups),
        "reference_multi_member_groups": sum(
            1 for label in set(labels) if labels.count(label) > 1
        ),
        **pairwise_scores(predicted, labels),
    }


# --- scale -----------------------------------------------------------------------------

_THERAPIES = ["ketamine", "semaglutide", "tirzepatide", "psilocybin", "esketamine", "MDMA",
              "TMS", "liraglutide"]
_CONDITIONS = ["depression", "anxiety", "PTSD", "OCD", "chronic pain", "migraine", "obesity",
               "diabetes", "bipolar disorder", "addiction"]
_OUTCOMES = ["sleep quality", "appetite control", "focus", "energy levels", "blood sugar",
             "inflammation markers", "mood scores", "craving scores", "pain scores",
             "social functioning", "work attendance", "memory tests", "heart rate variability",
             "cholesterol", "waist size", "quality of life ratings"]
_TEMPLATES = [
    "In our synthetic trial {n} patients with {condition} improved their {outcome} on "
    "{therapy}.",
    "{Therapy} raised {outcome} by {n} percent in people with {condition}.",
    "Synthetic claim: {therapy} lowers {outcome} within {n} days for {condition}.",
    "About {n} percent of {condition} patients report better {outcome} after {therapy}.",
    "{Therapy} does not worsen {outcome} in {condition} according to a {n}-week survey.",
    "A course of {n} {therapy} sessions is said to restore {outcome} in {condition}.",
    "Clinics claim {therapy} protects {outcome} for {n} months in patients with {condition}.",
]


def synthetic_article(rng: random.Random, claims: int = 12) -> str:
    """A generated article of template claim sentences (plainly synthetic text)."""
    lines = []
    for _ in range(claims):
        therapy = rng.choice(_THERAPIES)
        lines.append(rng.choice(_TEMPLATES).format(
            therapy=therapy, Therapy=therapy[0].upper() + therapy[1:],
            condition=rng.choice(_CONDITIONS), outcome=rng.choice(_OUTCOMES),
            n=rng.randint(2, 400)))
    return "\n".join(lines)


def scale(n_articles: int, *, window: int = 100, seed: int = 7) -> dict[str, Any]:
    """Group ``n_articles`` generated articles into a fresh SQLite library; time each."""
    rng = random.Random(seed)
    settings = Settings(claim_group_semantic=False)
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'library.db'}")
        db.create_all(engine)
        n_claims = 0
        for i in range(n_articles):
            text = synthetic_article(rng)
            with Session(engine) as session:
                article = Article(source=f"synthetic-{i}.txt", text=text, sha256=f"{i:064x}")
                session.add(article)
                session.flush()
                assert article.id is not None
                claims, offset = [], 0
                for line in text.split("\n"):
                    claims.append(Claim(article_id=article.id, start=offset,
                                        end=offset + len(line), text=line, category="efficacy"))
                    offset += len(line) + 1
                session.add_all(claims)
                session.flush()
                start = time.perf_counter()
                library.assign_canonical(session=session, claims=claims, actor="benchmark",
                                         settings=settings)
                session.commit()
                times.append(time.perf_counter() - start)
                n_claims += len(claims)
        with Session(engine) as session:
            from sqlmodel import func, select

            from evidence.models import CanonicalClaim

            n_groups = session.exec(select(func.count()).select_from(CanonicalClaim)).one()
        engine.dispose()
    first, last = sum(times[:window]), sum(times[-window:])
    return {
        "articles": n_articles,
        "claims": n_claims,
        "canonical_claims": n_groups,
        "window": window,
        "first_window_s": round(first, 3),
        "last_window_s": round(last, 3),
        "ratio_last_to_first": round(last / first, 3) if first else None,
        "total_s": round(sum(times), 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--quality", action="store_true",
                        help="only score grouping against the seed annotation")
    args = parser.parse_args(argv)
    quality: dict[str, Any] = {"lexical": grouping_quality(False)}
    if library.sentence_encoder(Settings(claim_group_semantic=True)) is not None:
        quality["semantic"] = grouping_quality(True)
    else:
        quality["semantic"] = "the [semantic] extra is not installed"
    result: dict[str, Any] = {"benchmark": "claim_library", "quality": quality}
    if not args.quality:
        result["scale"] = {
            "data": "generated articles of plainly synthetic template claims (not real text)",
            **scale(args.articles),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
