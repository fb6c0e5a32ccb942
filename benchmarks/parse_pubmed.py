"""Benchmark: PubMed XML parsing throughput and peak memory.

Run ``python -m benchmarks.parse_pubmed [--records 30000] [--big 120000]``. It builds
PubmedArticleSet files from the real fixtures in ``../shared/fixtures`` (see
``benchmarks._gen_pubmed``) and times, each in its own subprocess so that each peak RSS
is its own:

- ``ours``: ``ingest.pubmed_xml.iter_pubmed`` on the plain file;
- ``bare_lxml_iterparse``: lxml ``iterparse`` over the same record tags, clearing each
  record and extracting nothing (the ceiling any lxml-based parser can reach);
- ``biopython_entrez_read``: ``Bio.Entrez.read`` (it builds the whole document in
  memory, so it gets a subset, ``--biopython-records``);
- ``pubmed_parser``: ``pubmed_parser.parse_medline_xml``, which only reads gzip files,
  so it gets the gzipped copy and is compared with ``ours_gz`` on the same file;
- ``ours_gz`` / ``ours_gz_big``: ours on the gzipped file at ``--records`` and ``--big``
  records, to show that peak memory does not grow with the file;
- ``ingest_medline``: parse plus load into a temporary SQLite database through the job
  ``substantiate ingest medline`` runs (``substantiate.jobs.ingest_medline``).

It prints one JSON object. Ratios use CPU seconds of the parsing loop (best of
``--repeat`` runs) because the benchmark often shares its machine; wall-clock figures are
reported beside them.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks._gen_pubmed import load_templates, write_pubmed_set

RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
TARGET_OURS_VS_BARE = 0.5
TARGET_OURS_VS_BIOPYTHON = 7.0


# --------------------------------------------------------------------------- workers
# Each worker runs in a fresh interpreter. ``prepare`` does the imports and any setup;
# the callable it returns is the timed part and returns the number of records read.

Timed = Callable[[], int]


def _prepare_ours(path: Path) -> Timed:
    from ingest.pubmed_xml import iter_pubmed

    def timed() -> int:
        count = 0
        for _item in iter_pubmed(path):
            count += 1
        return count

    return timed


def _prepare_bare(path: Path) -> Timed:
    from lxml import etree

    def timed() -> int:
        count = 0
        for _event, elem in etree.iterparse(
            str(path),
            events=("end",),
            tag=RECORD_TAGS,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        ):
            count += 1
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            if parent is not None:
                while elem.getprevious() is not None:
                    del parent[0]
        return count

    return timed


def _prepare_biopython(path: Path) -> Timed:
    import Bio.Entrez.Parser
    from Bio import Entrez

    def refuse(*args: object, **kwargs: object) -> object:
        # Every PubMed DTD is bundled with Biopython; a download attempt would be a
        # setup bug, and must not reach the network.
        raise RuntimeError("Bio.Entrez tried to download a DTD")

    Bio.Entrez.Parser.urlopen = refuse  # type: ignore[attr-defined]

    def timed() -> int:
        with open(path, "rb") as handle:
            document = Entrez.read(handle)  # type: ignore[no-untyped-call]
        return len(document["PubmedArticle"]) + len(document["PubmedBookArticle"])

    return timed


def _prepare_pubmed_parser(path: Path) -> Timed:
    import pubmed_parser

    def timed() -> int:
        count = 0
        for _article in pubmed_parser.parse_medline_xml(str(path)):
            count += 1
        return count

    return timed


def _prepare_load(path: Path) -> Timed:
    # Times parse + load of ``path`` into a fresh SQLite database through the bulk-load job.
    from evidence import db
    from substantiate import jobs

    tmp = tempfile.TemporaryDirectory(prefix="bench-load-")
    engine = db.make_engine(f"sqlite:///{Path(tmp.name) / 'bench.sqlite'}")
    atexit.register(tmp.cleanup)
    atexit.register(engine.dispose)  # runs first: close the database, then delete it
    db.upgrade(engine)

    def timed() -> int:
        summary = jobs.ingest_medline(engine, [path])
        total = summary.total
        return int(total.inserted + total.updated + total.unchanged)

    return timed


WORKERS: dict[str, Callable[[Path], Timed]] = {
    "ours": _prepare_ours,
    "bare": _prepare_bare,
    "biopython": _prepare_biopython,
    "pubmed_parser": _prepare_pubmed_parser,
    "load": _prepare_load,
}


def _rss_kb(field: str) -> int | None:
    """A ``/proc/self/status`` memory field in KiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def worker_main(name: str, path: Path) -> None:
    """Run one contender once and print its figures as JSON (subprocess side)."""
    try:
        timed = WORKERS[name](path)
    except ImportError as e:
        print(json.dumps({"unavailable": f"{type(e).__name__}: {e}"}))
        return
    except LookupError as e:
        print(json.dumps({"skipped": str(e)}))
        return
    gc.collect()
    start_rss = _rss_kb("VmRSS")
    wall = time.perf_counter()
    cpu = time.process_time()
    try:
        count = timed()
    except Exception as e:  # reported in the JSON, so one contender cannot sink the run
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    peak_kb = _rss_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "records": count,
                "cpu_s": round(cpu, 3),
                "wall_s": round(wall, 3),
                "start_rss_mb": None if start_rss is None else round(start_rss / 1024, 1),
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
        )
    )


# --------------------------------------------------------------------------- driver


def _spawn(name: str, path: Path) -> dict[str, Any]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.parse_pubmed", "--worker", name, "--file", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"worker exited {done.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _measure(name: str, path: Path, repeat: int) -> dict[str, Any]:
    """Best CPU time of ``repeat`` runs; peak RSS is the largest seen."""
    runs = [_spawn(name, path) for _ in range(max(1, repeat))]
    good = [run for run in runs if "records" in run]
    if not good:
        return runs[0]
    best = dict(min(good, key=lambda run: run["cpu_s"]))
    best["peak_rss_mb"] = max(run["peak_rss_mb"] for run in good)
    best["runs"] = len(good)
    if best["cpu_s"] > 0:
        best["records_per_cpu_s"] = round(best["records"] / best["cpu_s"])
    best["records_per_s"] = round(best["records"] / min(run["wall_s"] for run in good))
    return best


def _rate(result: dict[str, Any]) -> float | None:
    value = result.get("records_per_cpu_s")
    return float(value) if value else None


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    ra, rb = _rate(a), _rate(b)
    return round(ra / rb, 2) if ra and rb else None


def _versions() -> dict[str, str]:
    from lxml import etree

    versions = {
        "python": platform.python_version(),
        "lxml": etree.__version__,
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
    }
    for module in ("Bio", "pubmed_parser"):
        if importlib.util.find_spec(module) is not None:
            versions[module] = str(getattr(__import__(module), "__version__", "?"))
    return versions


def run(
    records: int, big: int, biopython_records: int, repeat: int, workdir: Path
) -> dict[str, Any]:
    """Generate the inputs, run every contender and assemble the report."""
    templates = load_templates()
    plain = write_pubmed_set(workdir / "pubmed.xml", records, templates=templates)
    gz = write_pubmed_set(workdir / "pubmed.xml.gz", records, gz=True, templates=templates)
    subset = write_pubmed_set(workdir / "subset.xml", biopython_records, templates=templates)
    big_gz = write_pubmed_set(workdir / "big.xml.gz", big, gz=True, templates=templates)

    load_avg = os.getloadavg() if hasattr(os, "getloadavg") else None
    contenders: dict[str, dict[str, Any]] = {
        "ours": _measure("ours", plain, repeat),
        "bare_lxml_iterparse": _measure("bare", plain, repeat),
        "biopython_entrez_read": _measure("biopython", subset, 1),
        "ours_on_biopython_subset": _measure("ours", subset, repeat),
        "ours_gz": _measure("ours", gz, 1),
        "pubmed_parser": _measure("pubmed_parser", gz, 1),
        "ours_gz_big": _measure("ours", big_gz, 1),
    }
    contenders["biopython_entrez_read"]["note"] = (
        f"Entrez.read holds the whole document in memory, so it reads a {biopython_records}"
        "-record subset; compare with ours_on_biopython_subset"
    )
    contenders["pubmed_parser"]["note"] = (
        "parse_medline_xml only opens gzip files: compare with ours_gz (same file)"
    )
    contenders["ingest_medline"] = _measure("load", subset, 1)
    contenders["ingest_medline"]["note"] = (
        "parse + load into a fresh SQLite database (WAL), on the Biopython subset"
    )

    small_rss = contenders["ours_gz"].get("peak_rss_mb")
    big_rss = contenders["ours_gz_big"].get("peak_rss_mb")
    return {
        "benchmark": "parse_pubmed",
        "input": {
            "records": records,
            "plain_mb": round(plain.stat().st_size / 2**20, 1),
            "gz_mb": round(gz.stat().st_size / 2**20, 1),
            "templates": len(templates),
            "big_records": big,
            "big_gz_mb": round(big_gz.stat().st_size / 2**20, 1),
            "biopython_records": biopython_records,
        },
        "ratio_basis": "records per CPU second of the parsing loop, best of runs",
        "ratios": {
            "ours_vs_bare": _ratio(contenders["ours"], contenders["bare_lxml_iterparse"]),
            "target_ours_vs_bare": TARGET_OURS_VS_BARE,
            "ours_vs_biopython": _ratio(
                contenders["ours_on_biopython_subset"], contenders["biopython_entrez_read"]
            ),
            "target_ours_vs_biopython": TARGET_OURS_VS_BIOPYTHON,
            "ours_gz_vs_pubmed_parser": _ratio(contenders["ours_gz"], contenders["pubmed_parser"]),
        },
        "memory": {
            "ours_gz_peak_rss_mb": {str(records): small_rss, str(big): big_rss},
            "big_over_small": round(big_rss / small_rss, 3) if small_rss and big_rss else None,
        },
        "contenders": contenders,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": None if load_avg is None else [round(x, 2) for x in load_avg],
            **_versions(),
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="PubMed XML parsing benchmark")
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--big", type=int, default=120_000)
    parser.add_argument("--biopython-records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours and bare")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker_main(args.worker, args.file)
        return
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run(args.records, args.big, args.biopython_records, args.repeat, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-pubmed-") as tmp:
            report = run(args.records, args.big, args.biopython_records, args.repeat, Path(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
