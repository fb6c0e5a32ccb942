"""Ingest scaling: time to ingest ONE big article, per megabyte, as the article grows.

Usage::

    python -m benchmarks.ingest_scaling
    python -m benchmarks.ingest_scaling --sizes 0.25 0.5 1 2   # minutes, not seconds

Generates plain-text articles of the given sizes (MB = 1,000,000 bytes) from varied
health-claim sentences (many claim-like: efficacy, safety, speed, numbers, approvals,
mixed with connective prose), and ingests each one as a single article into a fresh SQLite
database through the real job (``substantiate.jobs.ingest_articles``: read, extract claims
and citations, store, join the claim library, audit).

A small article is ingested first, untimed, so one-off loading (the embedding model of the
``[semantic]`` extra) is not counted against the smallest size.

Prints one JSON object: for each size the seconds, seconds per MB and the claims stored;
``ratio`` is the per-MB cost of the largest article over that of the smallest (the
``baseline``): about 1 when ingest is linear in the article's size, growing with the size
when it is not. :func:`measure` returns the same object for other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

# The default keeps a run near two minutes on a 2-core machine; pass --sizes 0.25 0.5 1 2
# for the sizes of the original report.
DEFAULT_SIZES = (0.025, 0.05, 0.1, 0.2)
MB = 1_000_000

_DRUGS = ("ketamine", "esketamine", "psilocybin", "semaglutide", "metformin", "melatonin",
          "omega-3 supplements", "vitamin D", "magnesium", "turmeric extract", "CBD oil",
          "intravenous NAD+", "acupuncture", "cryotherapy", "red light therapy", "probiotics",
          "collagen peptides", "ashwagandha", "tirzepatide", "lithium")
_CONDITIONS = ("depression", "anxiety", "PTSD", "chronic pain", "migraine", "insomnia",
               "obesity", "type 2 diabetes", "fibromyalgia", "OCD", "alcohol use disorder",
               "arthritis", "hypertension", "long COVID", "eczema", "ADHD", "bipolar depression",
               "suicidal ideation", "postpartum depression", "tinnitus")
_OUTCOMES = ("symptoms", "relapse", "pain scores", "sleep quality", "inflammation",
             "blood sugar", "body weight", "cravings", "mood", "energy levels")
_TEMPLATES = (
    "{drug} relieves {cond} within {n} hours for most patients.",
    "Studies show {drug} reduces {out} by {p}% in adults with {cond}.",
    "{drug} is FDA approved for {cond}.",
    "Up to {p}% of our patients with {cond} respond to {drug}.",
    "{drug} has minimal side effects and is safe for long-term use.",
    "Clinical trials found {drug} more effective than placebo for {cond}.",
    "{drug} works faster than antidepressants, often within {n} days.",
    "Our {drug} protocol cures {cond} in {n} sessions.",
    "Research suggests {drug} lowers {out} in people with {cond}.",
    "A {n}-week course of {drug} improves {out} in {p}% of cases.",
    "{drug} is non-addictive and has no withdrawal effects.",
    "Patients with {cond} report lasting relief after {drug}.",
)
_PROSE = (
    "Many people visit our clinic after trying other options.",
    "Every treatment plan starts with a conversation about your goals.",
    "Our team includes nurses, counsellors and physicians.",
    "Call us today to book a consultation.",
    "We believe everyone deserves to feel well again.",
    "The waiting room is quiet and the staff are friendly.",
)


def make_article(size_mb: float, *, seed: int = 0) -> str:
    """Varied health-marketing prose of about ``size_mb`` MB (UTF-8), in paragraphs."""
    rng = random.Random(seed)
    target = int(size_mb * MB)
    parts: list[str] = ["Health claims we hear every day\n\n"]
    size = len(parts[0])
    while size < target:
        sentences = []
        for _ in range(rng.randint(3, 6)):
            if rng.random() < 0.7:
                sentences.append(rng.choice(_TEMPLATES).format(
                    drug=rng.choice(_DRUGS), cond=rng.choice(_CONDITIONS),
                    out=rng.choice(_OUTCOMES), n=rng.randint(1, 48), p=rng.randint(10, 99)))
            else:
                sentences.append(rng.choice(_PROSE))
        para = " ".join(s[0].upper() + s[1:] for s in sentences) + "\n\n"
        parts.append(para)
        size += len(para)
    return "".join(parts)


def _ingest_once(text: str, workdir: Path, name: str) -> tuple[float, int]:
    from evidence import db
    from substantiate import jobs

    path = workdir / f"{name}.txt"
    path.write_text(text, encoding="utf-8")
    engine = db.make_engine(f"sqlite:///{workdir / name}.db")
    try:
        db.upgrade(engine)
        start = time.perf_counter()
        summary = jobs.ingest_articles(engine, [str(path)])
        seconds = time.perf_counter() - start
    finally:
        engine.dispose()
    return seconds, summary.claims


def measure(sizes_mb: Any = DEFAULT_SIZES) -> dict[str, Any]:
    """Ingest one generated article per size; return the scaling figures.

    Parameters
    ----------
    sizes_mb
        Article sizes in MB (1,000,000 bytes), smallest first; the smallest is the
        baseline of ``ratio``.

    Returns
    -------
    dict
        ``sizes_mb``, ``seconds``, ``seconds_per_mb``, ``claims``, ``baseline_mb`` and
        ``ratio`` (per-MB cost of the largest size over the baseline's).
    """
    sizes = sorted(float(s) for s in sizes_mb)
    seconds: list[float] = []
    claims: list[int] = []
    with tempfile.TemporaryDirectory(prefix="ingest-scaling-") as tmp:
        # Warm-up, not timed: loads what is loaded once per process (the embedding model
        # when the [semantic] extra is installed, the vocabulary, the SQL compiler caches).
        _ingest_once(make_article(0.002, seed=99), Path(tmp), "warmup")
        for i, size in enumerate(sizes):
            s, n = _ingest_once(make_article(size, seed=i), Path(tmp), f"a{i}")
            seconds.append(round(s, 3))
            claims.append(n)
    per_mb = [round(s / size, 3) for s, size in zip(seconds, sizes, strict=True)]
    return {
        "benchmark": "ingest_scaling",
        "sizes_mb": sizes,
        "seconds": seconds,
        "seconds_per_mb": per_mb,
        "claims": claims,
        "baseline_mb": sizes[0],
        "ratio": round(per_mb[-1] / per_mb[0], 3) if per_mb[0] else None,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print :func:`measure`'s JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=list(DEFAULT_SIZES),
                        help="article sizes in MB (default: 0.025 0.05 0.1 0.2)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.sizes)))


if __name__ == "__main__":
    main()
