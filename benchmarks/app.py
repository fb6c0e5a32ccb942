"""Reviewer-app benchmark: screen script runs and a verdict save on a large database.

Usage::

    python -m benchmarks.app
    python -m benchmarks.app --claims 10000 --links-per-claim 10 --runs 15

Seeds a temporary SQLite database (created by the migrations, as the app does) with
``--claims`` claims in 100 articles, ``--links-per-claim`` evidence links per claim to a
pool of studies with realistic abstracts, a few thousand review verdicts, and one
reviewer; all by bulk insert. Then it times, as medians over ``--runs``:

- ``queue_screen_ms``: one run of the queue screen's script (``AppTest.run``: the whole
  ``app.py`` with the signed-in reviewer, its queries and its layout);
- ``claim_screen_ms``: one run of the claim screen on a claim with all its links, a
  different claim each run;
- ``save_verdict_ms``: ``review.save_verdict`` on a fresh claim, with its commit.

Prints one JSON object with the medians, the targets (300 ms per screen, 50 ms per save)
and whether they are met.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session

from evidence import vocabulary

ROOT = Path(__file__).resolve().parents[1]
SCREEN_TARGET_MS = 300.0
SAVE_TARGET_MS = 50.0
ARTICLES = 100
FLAGS = list(vocabulary.CLAIM_FLAGS)
WORDS = ("ketamine depression infusion esketamine randomized placebo symptoms relief "
         "treatment resistant adults trial outcome remission response dose week hours "
         "anxiety suicidal ideation safety dissociation blood pressure cohort").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def seed(engine: Engine, *, claims: int, links_per_claim: int, rng: random.Random) -> None:
    """Bulk-insert the benchmark corpus (see the module docstring)."""
    from evidence import crud
    from evidence.models import AppUser, Article, Claim, EvidenceLink, Study, Verdict

    now = datetime.now(UTC)
    stamp = {"created_at": now, "updated_at": now, "version": 1}
    per_article = max(1, claims // ARTICLES)
    n_studies = max(links_per_claim * 2, claims * links_per_claim // 5)
    with engine.begin() as conn:
        conn.execute(insert(AppUser), [
            {**stamp, "username": "rita", "display_name": "rita", "role": "reviewer",
             "password_hash": crud.hash_password("benchmark password"), "active": True},
            {**stamp, "username": "ravi", "display_name": "ravi", "role": "reviewer",
             "password_hash": None, "active": True},
        ])
        article_rows, claim_rows = [], []
        claim_id = 0
        for a in range(1, ARTICLES + 1):
            sentences = [_sentence(rng, 14) for _ in range(per_article)]
            text = "\n".join(sentences)
            article_rows.append({**stamp, "id": a, "source": f"https://clinic.example/{a}",
                                 "title": f"Clinic post {a}", "text": text,
                                 "sha256": f"{a:064x}", "content_type": "text/plain",
                                 "fetched_at": now, "revision": 1, "is_current": True})
            offset = 0
            for s in sentences:
                claim_id += 1
                if claim_id <= claims:
                    flags = rng.sample(FLAGS, rng.choice([0, 0, 1, 1, 2]))
                    claim_rows.append({
                        **stamp, "id": claim_id, "article_id": a, "start": offset,
                        "end": offset + len(s), "text": s, "category": rng.choice(
                            ["efficacy", "safety", "speed", "regulatory", "other"]),
                        "checkworthiness": round(rng.random(), 3), "cues": [],
                        "status": "unreviewed", "flags": flags,
                        "suggested_certainty": rng.choice(["high", "moderate", "low"]),
                        "suggestion_reasons": ["starts high: randomised evidence",
                                               "indirectness: -1"]})
                offset += len(s) + 1
        conn.execute(insert(Article), article_rows)
        for i in range(0, len(claim_rows), 2000):
            conn.execute(insert(Claim), claim_rows[i:i + 2000])
        study_rows = []
        for sid in range(1, n_studies + 1):
            abstract = " ".join(_sentence(rng, 18) for _ in range(8))
            study_rows.append({
                **stamp, "id": sid, "pmid": str(93_000_000 + sid),
                "title": _sentence(rng, 12), "abstract": abstract,
                "journal": "Journal of Affective Disorders", "pub_year": 2000 + sid % 24,
                "design": rng.choice(["rct", "cohort", "case_report", "narrative_review"]),
                "evidence_level": rng.choice(["1b", "2b", "4", "5"]), "design_rank": 50,
                "is_retracted": sid % 97 == 0, "doi": f"10.5555/bench.{sid}",
                "pmid_version": 1, "is_book": False, "abstract_sections": [],
                "authors": [], "languages": ["eng"], "publication_types": [], "mesh": [],
                "keywords": [], "comments_corrections": [], "design_reasons": [],
                "has_expression_of_concern": False, "has_erratum": False, "deleted": False})
        for i in range(0, len(study_rows), 2000):
            conn.execute(insert(Study), study_rows[i:i + 2000])
        link_rows = []
        for cid in range(1, claims + 1):
            for rank, sid in enumerate(rng.sample(range(1, n_studies + 1), links_per_claim), 1):
                link_rows.append({
                    **stamp, "claim_id": cid, "study_id": sid,
                    "origin": "cited" if rank == 1 else "pubmed", "also_found_by": [],
                    "score": 20.0 - rank, "rank": rank, "indirect": rank % 3 == 0,
                    "indirectness": {"indirect": rank % 3 == 0, "mismatches": [],
                                     "reasons": []},
                    "explanation": {"sentences": [[0, 40, "", 1.5]], "terms": ["ketamine"]},
                    "fits": rank % 2 == 0, "created_by": "system"})
                if len(link_rows) >= 10000:
                    conn.execute(insert(EvidenceLink), link_rows)
                    link_rows = []
        if link_rows:
            conn.execute(insert(EvidenceLink), link_rows)
        # Some review history, so the counts and the "not reviewed by me" filter have work.
        reviewed = rng.sample(range(1, claims + 1), claims // 5)
        conn.execute(insert(Verdict), [
            {**stamp, "claim_id": cid, "reviewer_id": 2, "kind": "review",
             "substantiation": "unsubstantiated", "certainty": "low", "domains": {},
             "suggestion_reasons": [], "rationale": "", "action": "add_reference",
             "submitted": True} for cid in reviewed])
        conn.exec_driver_sql(
            "UPDATE claim SET status = 'in_review' WHERE id IN "
            "(SELECT claim_id FROM verdict)")


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--links-per-claim", type=int, default=10)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    import os

    sys.path.insert(0, str(ROOT))
    tmp = tempfile.TemporaryDirectory(prefix="substantiate-bench-")
    url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    os.environ["DATABASE_URL"] = url
    os.environ["INDEPENDENT_REVIEW"] = "true"

    from streamlit.testing.v1 import AppTest

    from evidence import config, db, queries, review

    config.reset_settings()
    engine = db.get_engine()
    db.upgrade(engine)
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    seed(engine, claims=args.claims, links_per_claim=args.links_per_claim, rng=rng)
    seed_s = time.perf_counter() - t0
    with Session(engine) as s:
        user = queries.get_user(s, 1)
        _, total = queries.claim_queue(s)
        n_links = len(queries.links(s)) if args.claims <= 20_000 else None
    assert user is not None

    app = str(ROOT / "app.py")
    queue = AppTest.from_file(app, default_timeout=120)
    queue.session_state["user_id"] = user.id
    queue.run()
    assert not queue.exception, queue.exception
    assert queue.title[0].value == "Review queue"
    queue_ms = _median_ms(queue.run, args.runs)

    claim = AppTest.from_file(app, default_timeout=120)
    claim.session_state["user_id"] = user.id
    claim.run()
    claim.switch_page("app_pages/claim.py")
    targets = iter(rng.sample(range(1, args.claims + 1), args.runs + 1))

    def open_claim() -> None:
        claim.query_params["claim"] = str(next(targets))
        claim.run()

    open_claim()
    assert not claim.exception, claim.exception
    assert claim.title[0].value.startswith("Claim #")
    claim_ms = _median_ms(open_claim, args.runs)
    assert not claim.exception, claim.exception
    studies_shown = sum(1 for m in claim.markdown if re.match(r"\*\*\d+\. ", m.value))
    assert studies_shown == args.links_per_claim, studies_shown
    queue_rows = len(queue.dataframe[0].value)

    fresh = iter(c for c in range(1, args.claims + 1))

    def save() -> None:
        with db.session_scope(engine) as s:
            cid = next(fresh)
            s.get(type(user), user.id)
            review.save_verdict(s, user=user, claim_id=cid, substantiation="unsubstantiated",
                                certainty="low", action="add_reference",
                                rationale="benchmark")

    save_ms = _median_ms(save, max(args.runs, 50))
    result = {
        "benchmark": "app",
        "database": "sqlite",
        "claims": total,
        "links": n_links,
        "seed_seconds": round(seed_s, 1),
        "runs": args.runs,
        "queue_screen_ms": queue_ms,
        "claim_screen_ms": claim_ms,
        "queue_screen_rows": queue_rows,
        "claim_screen_studies": studies_shown,
        "save_verdict_ms": save_ms,
        "targets_ms": {"screen": SCREEN_TARGET_MS, "save": SAVE_TARGET_MS},
        "meets_targets": (queue_ms <= SCREEN_TARGET_MS and claim_ms <= SCREEN_TARGET_MS
                          and save_ms <= SAVE_TARGET_MS),
    }
    print(json.dumps(result))
    engine.dispose()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
