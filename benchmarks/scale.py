"""Benchmark: PubMed at scale (one JSON object; one function per measurement).

Run ``python -m benchmarks.scale [--only ingest] [--only embeddings] [--files 8 --records 4000]``.

``embeddings``: the 5,183 SciFact abstracts embedded with the bundled sentence model into a
fresh embedding store (``evidence.embeddings``): documents per second, the store's size on
disk, and a second pass over the same store (documents embedded: 0; its time as a ratio of
the first's). Needs the ``[semantic]`` extra (else its figures say so); ``--embed-docs N``
embeds only the first N.

``ingest``: ``substantiate ingest medline`` (``substantiate.jobs.ingest_medline``) into a
fresh PostgreSQL schema and a fresh SQLite file with 1 and 2 workers, against a bare lxml
``iterparse`` of the same files in one process (clearing each record, extracting nothing:
the ceiling of any lxml-based loader on one core). The files are gzipped
``PubmedArticleSet`` s made from the real fixture records (``benchmarks._gen_pubmed``), each
copy with a distinct PMID and its title and abstract varied with words drawn at random, so
every record hashes, classifies and indexes differently. Each contender runs in its own
interpreter; figures are wall-clock (workers run in parallel), best of ``--repeat`` runs
for the bare parse. ``ratio_vs_bare`` is a loader's time over the bare parse's time on the
same files; the projection to the 36 M-record baseline divides 36 M by the measured rate.

PostgreSQL is reached at ``SUBSTANTIATE_BENCH_PG`` (default: ``SUBSTANTIATE_TEST_PG``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); a schema is created for the run and
dropped after it. When the server is not reachable its figures say so.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks._gen_pubmed import FOOTER, HEADER, load_templates

BASELINE_RECORDS = 36_000_000
TARGET_PG_2W_RECORDS_PER_S = 5000
TARGET_PG_2W_VS_BARE = 2.5
RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
FIRST_PMID = 92_000_000  # synthetic range (90000000+): never a real PubMed id
_MARK = b"@@PMID@@"
_WORDS = (
    "ketamine esketamine psilocybin semaglutide metformin melatonin magnesium probiotics "
    "depression anxiety insomnia obesity diabetes migraine asthma arthritis hypertension "
    "randomized controlled trial cohort placebo double-blind meta-analysis systematic review "
    "efficacy safety tolerability remission relapse adolescents adults elderly women men "
    "dose response outcome mortality hospitalization quality of life biomarker inflammation "
    "cognitive function sleep latency weight loss glycemic control blood pressure pain"
).split()


def _pg_admin_url() -> str:
    return os.environ.get("SUBSTANTIATE_BENCH_PG") or os.environ.get(
        "SUBSTANTIATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --------------------------------------------------------------------------- inputs


def write_varied_files(out: Path, files: int, records: int, *, seed: int = 7) -> list[Path]:
    """Write ``files`` gzipped sets of ``records`` records with distinct PMIDs and varied text.

    Files are named like NCBI's baseline (``pubmed25n0001.xml.gz`` ...), so they load in
    the same order as a real baseline.
    """
    templates = load_templates()
    rng = random.Random(seed)
    paths: list[Path] = []
    pmid = FIRST_PMID
    for number in range(1, files + 1):
        path = out / f"pubmed25n{number:04d}.xml.gz"
        with gzip.open(path, "wb", compresslevel=6) as gz:
            gz.write(HEADER)
            for _ in range(records):
                template = templates[pmid % len(templates)]
                lead = " ".join(rng.choices(_WORDS, k=rng.randint(3, 8))).encode()
                tail = " ".join(rng.choices(_WORDS, k=rng.randint(12, 40))).encode()
                rec = template.replace(_MARK, str(pmid).encode())
                rec = rec.replace(b"<ArticleTitle>", b"<ArticleTitle>" + lead + b": ", 1)
                rec = rec.replace(b"</AbstractText>", b" " + tail + b".</AbstractText>", 1)
                gz.write(rec)
                pmid += 1
            gz.write(FOOTER)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- contenders
# Each runs in a fresh interpreter (``--worker NAME``) and prints one JSON line.


def _bare(paths: list[Path], _target: str, _workers: int) -> int:
    from lxml import etree

    count = 0
    for path in paths:
        with gzip.open(path, "rb") as source:
            count += _bare_one(etree, source)
    return count


def _bare_one(etree: Any, source: Any) -> int:
    count = 0
    for _event, elem in etree.iterparse(
            source, events=("end",), tag=RECORD_TAGS, resolve_entities=False,
            no_network=True, load_dtd=False, huge_tree=False,
    ):
        count += 1
        elem.clear(keep_tail=False)
        parent = elem.getparent()
        if parent is not None:
            while elem.getprevious() is not None:
                del parent[0]
    return count


def _ingest(paths: list[Path], target: str, workers: int) -> int:
    from sqlalchemy import text

    from evidence import db
    from substantiate import jobs

    engine = db.make_engine(target)
    db.upgrade(engine)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        summary = jobs.ingest_medline(engine, paths, workers=workers)
        _figures["wall_s"] = time.perf_counter() - start
        _figures["main_cpu_s"] = time.process_time() - cpu
        if engine.dialect.name == "postgresql":
            # The server's share: CPU of this run's backends (same machine, found by name).
            with engine.connect() as conn:
                pids = conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": _APP_NAME}).scalars().all()
            _figures["db_server_cpu_s"] = sum(_proc_cpu(pid) for pid in pids)
        total = summary.total
        return int(total.inserted + total.updated + total.unchanged)
    finally:
        engine.dispose()


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process of this machine (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_APP_NAME = "substantiate_bench_scale"
_figures: dict[str, float] = {}
CONTENDERS: dict[str, Callable[[list[Path], str, int], int]] = {"bare": _bare, "ingest": _ingest}


def worker_main(name: str, paths: list[Path], target: str, workers: int) -> None:
    """Run one contender once and print its figures (subprocess side).

    CPU is counted in every process that did the work: this one (``main_cpu_s``, the job
    alone, not the imports or the schema set-up), the
    parsing workers (``workers_cpu_s``, children reaped when the pool closes) and, on
    PostgreSQL, the server backends of this run (``db_server_cpu_s``).
    """
    _figures.clear()
    wall = time.perf_counter()
    cpu = time.process_time()
    count = CONTENDERS[name](paths, target, workers)
    cpu = _figures.get("main_cpu_s") or (time.process_time() - cpu)
    wall = _figures.get("wall_s") or (time.perf_counter() - wall)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {"records": count, "wall_s": round(wall, 3), "main_cpu_s": round(cpu, 3)}
    if name == "ingest":
        result["workers_cpu_s"] = round(children.ru_utime + children.ru_stime, 3)
        if "db_server_cpu_s" in _figures:
            result["db_server_cpu_s"] = round(_figures["db_server_cpu_s"], 3)
    result["total_cpu_s"] = round(sum(v for k, v in result.items() if k.endswith("cpu_s")), 3)
    print(json.dumps(result))


def _spawn(name: str, paths: list[Path], target: str = "", workers: int = 1) -> dict[str, Any]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "benchmarks.scale", "--worker", name, "--target", target,
           "--workers", str(workers), "--", *map(str, paths)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exited {done.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["wall_s"]:
        result["records_per_s"] = round(result["records"] / result["wall_s"])
    return result


def _pg_schema() -> tuple[str | None, Callable[[], None], str | None]:
    """A fresh schema's URL, its cleanup, and why there is none (server unreachable)."""
    from sqlalchemy import create_engine, text

    admin_url = _pg_admin_url()
    schema = f"bench_scale_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as e:  # noqa: BLE001  (any failure means: no server to measure)
        return None, lambda: None, f"PostgreSQL not reachable: {type(e).__name__}"

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in admin_url else "?"
    return (f"{admin_url}{sep}options=-csearch_path%3D{schema}&application_name={_APP_NAME}",
            drop, None)


# --------------------------------------------------------------------------- measurements


def measure_ingest(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Ingest rate into PostgreSQL and SQLite, 1 and 2 workers, against bare iterparse."""
    paths = write_varied_files(workdir, args.files, args.records)
    xml_bytes = 0
    for path in paths:
        with gzip.open(path, "rb") as f:
            while block := f.read(1 << 20):
                xml_bytes += len(block)
    bare_runs = [_spawn("bare", paths) for _ in range(max(1, args.repeat))]
    good = [r for r in bare_runs if "records" in r]
    bare = dict(min(good, key=lambda r: r["total_cpu_s"])) if good else bare_runs[0]
    if good:  # best wall and best CPU of the runs (the machine is shared)
        bare["wall_s"] = min(r["wall_s"] for r in good)
        bare["records_per_s"] = round(bare["records"] / bare["wall_s"])
    loaders: dict[str, dict[str, Any]] = {}
    for workers in (1, 2):
        url, drop, why = _pg_schema()
        if url is None:
            loaders[f"postgresql_{workers}w"] = {"unavailable": why}
        else:
            try:
                loaders[f"postgresql_{workers}w"] = _spawn("ingest", paths, url, workers)
            finally:
                drop()
        sqlite = workdir / f"scale-{workers}.sqlite"
        loaders[f"sqlite_{workers}w"] = _spawn("ingest", paths, f"sqlite:///{sqlite}", workers)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite}{suffix}").unlink(missing_ok=True)
    for name, result in loaders.items():
        if "wall_s" in result and "wall_s" in bare and bare["wall_s"]:
            result["ratio_vs_bare"] = round(result["wall_s"] / bare["wall_s"], 2)
        if result.get("total_cpu_s") and bare.get("total_cpu_s"):
            result["cpu_ratio_vs_bare"] = round(result["total_cpu_s"] / bare["total_cpu_s"], 2)
            # What the same work takes on an idle machine of this size: all of it on one
            # core with one worker (parse, then write), spread over both cores with two.
            cores = 1 if name.endswith("_1w") else min(2, os.cpu_count() or 1)
            result["idle_2core_estimate_s"] = round(result["total_cpu_s"] / cores, 2)
            result["idle_2core_ratio_vs_bare"] = round(
                result["idle_2core_estimate_s"] / bare["total_cpu_s"], 2)
            result["idle_2core_records_per_s"] = round(
                result["records"] / result["idle_2core_estimate_s"])
        if result.get("records_per_s"):
            result["projection_36m_hours"] = round(
                BASELINE_RECORDS / result["records_per_s"] / 3600, 2)
    if bare.get("records_per_s"):
        bare["projection_36m_hours"] = round(BASELINE_RECORDS / bare["records_per_s"] / 3600, 2)
    if bare.get("total_cpu_s"):
        bare["records_per_cpu_s"] = round(bare["records"] / bare["total_cpu_s"])
    pg2 = loaders.get("postgresql_2w", {})
    return {
        "input": {
            "files": args.files,
            "records_per_file": args.records,
            "records": args.files * args.records,
            "gz_mb": round(sum(p.stat().st_size for p in paths) / 2**20, 1),
            "xml_mb": round(xml_bytes / 2**20, 1),
            "xml_kb_per_record": round(xml_bytes / 1024 / (args.files * args.records), 1),
        },
        "basis": ("ratio_vs_bare: wall-clock seconds of the whole load over the bare parse's "
                  "(best of runs), same files, on the machine as it was (shared); "
                  "cpu_ratio_vs_bare: CPU seconds of every process that did the work over "
                  "the bare parse's; idle_2core_*: that CPU spread over the cores the "
                  "loader can use (1 worker: one; 2 workers: two), a lower bound on an "
                  "idle machine"),
        "bare_lxml_iterparse_1_process": bare,
        "loaders": loaders,
        "targets": {
            "postgresql_2w_records_per_s": TARGET_PG_2W_RECORDS_PER_S,
            "postgresql_2w_ratio_vs_bare": TARGET_PG_2W_VS_BARE,
            "met_records_per_s": bool(pg2.get("records_per_s", 0)
                                      >= TARGET_PG_2W_RECORDS_PER_S),
            "met_ratio_vs_bare": bool(pg2.get("ratio_vs_bare")
                                      and pg2["ratio_vs_bare"] <= TARGET_PG_2W_VS_BARE),
            "met_idle_2core_ratio_vs_bare": bool(
                pg2.get("idle_2core_ratio_vs_bare")
                and pg2["idle_2core_ratio_vs_bare"] <= TARGET_PG_2W_VS_BARE),
        },
        "projection_36m": {
            "records": BASELINE_RECORDS,
            "note": "a projection: 36 M records divided by the measured rate",
            **{name: r.get("projection_36m_hours") for name, r in loaders.items()},
            **{f"{name}_idle_2core": round(BASELINE_RECORDS / r["idle_2core_records_per_s"]
                                          / 3600, 2)
               for name, r in loaders.items() if r.get("idle_2core_records_per_s")},
            "bare_lxml_iterparse_1_process": bare.get("projection_36m_hours"),
        },
    }


def measure_embeddings(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Embed the SciFact abstracts into a fresh embedding store, then again from the store.

    The first pass encodes every study (title and abstract) with the bundled sentence
    model and saves the vectors (``evidence.embeddings``); the second opens the store
    afresh, as the next ``link --semantic`` would, and should encode none.
    """
    from benchmarks.retrieval import load_corpus
    from evidence.embeddings import EmbeddingStore
    from evidence.semantic import HybridReranker, SemanticUnavailable, require

    try:
        require()
    except SemanticUnavailable as e:
        return {"unavailable": str(e)}
    docs = load_corpus(args.scifact / "corpus.jsonl")[: args.embed_docs]
    path = workdir / "embeddings"
    passes: list[dict[str, Any]] = []
    for _ in range(2):
        t0 = time.perf_counter()
        store = EmbeddingStore(path)
        reranker = HybridReranker(docs, store=store)
        t1 = time.perf_counter()
        reranker.precompute()
        t2 = time.perf_counter()
        passes.append({"documents_embedded": reranker.encoded,
                       "open_and_load_model_s": round(t1 - t0, 3),
                       "embed_s": round(t2 - t1, 3),
                       "docs_per_s": round(len(docs) / (t2 - t1), 1) if t2 > t1 else None,
                       "vectors_in_store": len(store)})
    first, second = passes
    import torch

    return {
        "documents": len(docs),
        "model": store.model,
        "dtype": str(store.dtype),
        "dimension": store.dim,
        "torch_threads": torch.get_num_threads(),
        "store_bytes": store.size_bytes(),
        "store_bytes_per_document": round(store.size_bytes() / max(1, len(store)), 1),
        "first_pass": first,
        "second_pass": second,
        "second_vs_first_embed_time": round(second["embed_s"] / first["embed_s"], 5)
        if first["embed_s"] else None,
        "basis": ("embed_s: wall-clock seconds to have every document's vector (first pass: "
                  "encode and save; second pass: read from the store), model load excluded; "
                  "on the machine as it was (shared)"),
    }


MEASUREMENTS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "embeddings": measure_embeddings,
    "ingest": measure_ingest,
}


def _machine() -> dict[str, Any]:
    from lxml import etree

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": None if load is None else [round(x, 2) for x in load],
        "python": platform.python_version(),
        "lxml": etree.__version__,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="PubMed-at-scale benchmark")
    parser.add_argument("--only", action="append", choices=sorted(MEASUREMENTS),
                        help="run only this measurement (repeatable); default: all")
    parser.add_argument("--files", type=int, default=8, help="generated files (ingest)")
    parser.add_argument("--records", type=int, default=4000, help="records per file (ingest)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the bare parse")
    parser.add_argument("--scifact", type=Path, default=Path("../shared/datasets/scifact"),
                        help="SciFact directory (embeddings)")
    parser.add_argument("--embed-docs", type=int, default=None,
                        help="embed only the first N SciFact abstracts (embeddings; default all)")
    parser.add_argument("--worker", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.paths, args.target, args.workers)
        return
    report: dict[str, Any] = {"benchmark": "scale", "machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for name in args.only or sorted(MEASUREMENTS):
            sub = Path(tmp) / name
            sub.mkdir()
            report[name] = MEASUREMENTS[name](args, sub)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
