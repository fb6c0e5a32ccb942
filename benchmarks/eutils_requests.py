"""E-utilities request benchmark: fetch 1,000 PMIDs through EntrezClient.

Usage::

    python -m benchmarks.eutils_requests [--pmids 1000] [--burst 15]

Starts the fake E-utilities server (``tests.fake_eutils``) on 127.0.0.1, which serves
synthetic PubMed records (a real MEDLINE record from ``../shared/fixtures`` with the PMID
rewritten), and fetches ``--pmids`` PMIDs with ``EntrezClient.efetch_pubmed`` twice:
without an API key (NCBI limit 3 requests/s) and with one (10/s). For each run it
reports the requests made, the wall time, the most requests that reached the server in
any sliding one-second window, and the requests that exceeded the limit. The target is
at most 6 requests for 1,000 PMIDs and no rate violations. ``requests_vs_naive``
compares the request count with one request per PMID.

A burst of ``--burst`` back-to-back esearch calls per setting shows the limiter on its
own: the mean gap between request arrivals should sit just above 1/3 s (no key) or
1/10 s (key), not at twice that.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import Any

from ingest.entrez import EntrezClient
from tests._shared import SHARED
from tests.fake_eutils import FakeEutils

EMAIL = "benchmark@substantiate.example"
BENCH_KEY = "benchmark-api-key"
FIRST_PMID = 92_000_000  # synthetic range (90000000+): never a real PubMed id
TARGET_MAX_REQUESTS = 6


def fetch_run(server: FakeEutils, pmids: list[str], api_key: str | None) -> dict[str, Any]:
    """Fetch ``pmids`` once and describe the traffic the server saw."""
    limit = 10 if api_key else 3
    client = EntrezClient(EMAIL, base_url=server.url, api_key=api_key)
    server.clear_log()
    started = time.perf_counter()
    records = sum(raw.body.count(b"<PubmedArticle>") for raw in client.efetch_pubmed(pmids))
    wall = time.perf_counter() - started
    log = server.requests
    return {
        "rate_limit_per_s": limit,
        "requests": len(log),
        "records": records,
        "wall_s": round(wall, 3),
        "max_requests_in_1s": server.max_rate(1.0),
        "rate_violations": server.rate_violations(limit),
        "methods": dict(Counter(r.method for r in log)),
        "max_ids_per_request": max((r.id_count for r in log), default=0),
    }


def burst_run(server: FakeEutils, calls: int, api_key: str | None) -> dict[str, Any]:
    """Make ``calls`` esearch requests back to back and measure their spacing."""
    limit = 10 if api_key else 3
    client = EntrezClient(EMAIL, base_url=server.url, api_key=api_key)
    server.clear_log()
    started = time.perf_counter()
    for _ in range(calls):
        client.esearch("biopython")
    wall = time.perf_counter() - started
    times = [r.time for r in server.requests]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return {
        "calls": calls,
        "wall_s": round(wall, 3),
        "mean_gap_s": round(sum(gaps) / len(gaps), 4) if gaps else None,
        "min_gap_s": round(min(gaps), 4) if gaps else None,
        "max_requests_in_1s": server.max_rate(1.0),
        "rate_violations": server.rate_violations(limit),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--pmids", type=int, default=1000, help="PMIDs to fetch")
    parser.add_argument("--burst", type=int, default=15, help="esearch calls per burst")
    args = parser.parse_args(argv)
    fixtures = SHARED / "fixtures"
    if not fixtures.is_dir():
        print(json.dumps({"benchmark": "eutils_requests", "error": f"{fixtures} is absent"}))
        return 2
    pmids = [str(FIRST_PMID + n) for n in range(args.pmids)]
    with FakeEutils(fixtures) as server:
        no_key = fetch_run(server, pmids, None)
        with_key = fetch_run(server, pmids, BENCH_KEY)
        bursts = {
            "no_key": burst_run(server, args.burst, None),
            "with_key": burst_run(server, args.burst, BENCH_KEY),
        }
    runs = (no_key, with_key, *bursts.values())
    report = {
        "benchmark": "eutils_requests",
        "pmids": args.pmids,
        "target": {"max_requests": TARGET_MAX_REQUESTS, "rate_violations": 0},
        "no_key": no_key,
        "with_key": with_key,
        "naive_requests": args.pmids,
        "requests_vs_naive": round(no_key["requests"] / args.pmids, 4) if args.pmids else None,
        "burst": bursts,
        "ok": (
            max(no_key["requests"], with_key["requests"]) <= TARGET_MAX_REQUESTS
            and no_key["records"] == with_key["records"] == args.pmids
            and all(run["rate_violations"] == 0 for run in runs)
        ),
    }
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
