"""How far a reviewer can rely on the suggestions: design levels, claim fit, claim grouping.

Prints one JSON object:

* ``design_levels``: agreement of ``grading.classify_design`` with the annotation in
  ``tests/data/judgements/design_levels.json`` on every real record of the shared NCBI and
  MEDLINE fixtures (``basis`` says whether a PublicationType states the design or only the
  title/abstract show it), and separately on the synthetic hard-case records;
* ``claim_fit``: precision and recall of ``linking.addresses`` (does the study fit the
  claim?) on the (claim, study) pairs of ``tests/data/judgements/fit_pairs.json``: gold
  seed claims against plainly synthetic records (PMIDs 90000000 and up; none of them is a
  real PubMed record), plus agreement on the indirectness dimensions of the pairs both
  call fitting;
* ``grouping``: pairwise precision, recall and F1 of the claim library against
  ``tests/data/canonical_groups/seeds.json``, lexical and (with the ``[semantic]`` extra)
  with embeddings.

The annotations were written before the rules were tuned, but the rules were then tuned
on them: there is no held-out set, so read the figures as an upper bound.

Usage: ``python -m benchmarks.judgements [--shared ../shared] [--no-semantic]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from evidence.grading import article_context, classify_design
from evidence.linking import addresses
from evidence.models import Study
from ingest.pubmed_xml import parse_pubmed

ROOT = Path(__file__).resolve().parents[1]
JUDGEMENTS = ROOT / "tests" / "data" / "judgements"
ANNOTATIONS = ROOT / "tests" / "data" / "annotations"
ARTICLES = ROOT / "data" / "articles"


def _records_by_pmid(shared: Path) -> dict[str, Any]:
    """Every parsed record of the shared fixture files, by PMID."""
    found: dict[str, Any] = {}
    for path in sorted((shared / "fixtures").glob("*/*")):
        # PubMed article files only (the others are esearch, elink, ... responses).
        if not path.name.startswith(("pubmed", "title_with", "test_current")):
            continue
        try:
            items = parse_pubmed(path)
        except Exception:  # noqa: BLE001  (a non-PubmedArticle fixture: not a record)
            continue
        for item in items:
            pmid = getattr(item, "pmid", None)
            if pmid and getattr(item, "title", None) is not None:
                found.setdefault(f"{path.parent.name}/{path.name}:{pmid}", item)
    return found


def _synthetic_records() -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from tests.seed_records import SEED_RECORDS

    records = {str(r["pmid"]): dict(r) for r in SEED_RECORDS}
    data = json.loads((JUDGEMENTS / "records.json").read_text(encoding="utf-8"))
    for r in data["records"]:
        records[str(r["pmid"])] = r
    return records


def _classify(record: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    got = classify_design(list(record.get("publication_types", ())),
                          list(record.get("mesh", ())), title=record.get("title", ""),
                          abstract=record.get("abstract", ""))
    return got.design, got.level, got.reasons


def design_levels(shared: Path) -> dict[str, Any]:
    """Design and level agreement with the annotation, fixture records and synthetic ones."""
    annotation = json.loads((JUDGEMENTS / "design_levels.json").read_text(encoding="utf-8"))
    parsed = _records_by_pmid(shared)
    rows: list[dict[str, Any]] = []
    for entry in annotation["fixture_records"]:
        key = f"{entry['file']}:{entry['pmid']}"
        item = parsed.get(key)
        if item is None:
            continue
        record = {"publication_types": item.publication_types,
                  "mesh": [m.descriptor for m in item.mesh], "title": item.title or "",
                  "abstract": item.abstract or ""}
        design, level, reasons = _classify(record)
        rows.append({"record": key, "basis": entry["basis"], "gold": [entry["design"],
                     entry["level"]], "got": [design, level], "reason": reasons[-2]
                     if len(reasons) > 1 else reasons[-1]})
    synthetic = _synthetic_records()
    synth_rows: list[dict[str, Any]] = []
    for entry in annotation["synthetic_records"]:
        record = synthetic.get(str(entry["pmid"]))
        if record is None:
            continue
        design, level, reasons = _classify(record)
        synth_rows.append({"record": entry["pmid"], "gold": [entry["design"], entry["level"]],
                           "got": [design, level]})

    def score(items: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(items)
        design_ok = sum(r["gold"][0] == r["got"][0] for r in items)
        level_ok = sum(r["gold"][1] == r["got"][1] for r in items)
        return {"records": n, "design_agreement": round(design_ok / n, 4) if n else None,
                "level_agreement": round(level_ok / n, 4) if n else None,
                "disagreements": [r for r in items if r["gold"] != r["got"]]}

    by_basis = {basis: score([r for r in rows if r["basis"] == basis])
                for basis in sorted({r["basis"] for r in rows})}
    return {"fixture_records": score(rows), "fixture_records_by_basis": by_basis,
            "synthetic_records": score(synth_rows),
            "note": "fixture records are real NCBI/MEDLINE records from ../shared/fixtures; "
                    "synthetic records are plainly synthetic (PMIDs >= 90000000)"}


def _article_texts() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in ARTICLES.glob("*.txt")}


def _gold_categories() -> dict[tuple[str, int, int], str]:
    found: dict[tuple[str, int, int], str] = {}
    for path in ANNOTATIONS.glob("*.json"):
        for claim in json.loads(path.read_text(encoding="utf-8")):
            found[(path.stem, int(claim["start"]), int(claim["end"]))] = claim["category"]
    return found


def _study(record: dict[str, Any]) -> Study:
    return Study(pmid=str(record["pmid"]), title=record.get("title", ""),
                 abstract=record.get("abstract", ""),
                 mesh=[{"descriptor": m} for m in record.get("mesh", ())])


def claim_fit() -> dict[str, Any]:
    """Precision and recall of the fit rule on the annotated (claim, study) pairs."""
    data = json.loads((JUDGEMENTS / "fit_pairs.json").read_text(encoding="utf-8"))
    records = _synthetic_records()
    texts = _article_texts()
    contexts = {stem: article_context(text) for stem, text in texts.items()}
    categories = _gold_categories()
    counts: Counter[str] = Counter()
    dims_agree = dims_total = 0
    errors: list[dict[str, Any]] = []
    dim_errors: list[dict[str, Any]] = []
    for pair in data["pairs"]:
        claim = pair["claim"]
        key = (claim["article"], int(claim["start"]), int(claim["end"]))
        fits, _, indirectness = addresses(
            claim["text"], _study(records[str(pair["pmid"])]),
            context=contexts[claim["article"]], category=categories.get(key))
        gold = bool(pair["fits"])
        counts["tp" if fits and gold else "fp" if fits else "fn" if gold else "tn"] += 1
        if fits and gold:
            got_dims = sorted({m["dimension"] for m in indirectness["mismatches"]
                               if not m.get("blocking")})
            dims_total += 1
            same = got_dims == sorted(pair["indirect_dimensions"])
            dims_agree += same
            if not same:
                dim_errors.append({"article": claim["article"][:3],
                                   "claim": claim["text"][:90], "pmid": pair["pmid"],
                                   "gold": sorted(pair["indirect_dimensions"]),
                                   "got": got_dims})
        if fits != gold:
            errors.append({"article": claim["article"][:3], "claim": claim["text"][:90],
                           "pmid": pair["pmid"], "gold": gold, "got": fits,
                           "why_gold": pair.get("why", "")})
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision and recall else None)
    return {
        "pairs": sum(counts.values()), "gold_fitting": tp + fn,
        "true_positive": tp, "false_positive": fp, "false_negative": fn,
        "true_negative": counts["tn"],
        "precision": round(precision, 4) if precision is not None else None,
        "recall": round(recall, 4) if recall is not None else None,
        "f1": round(f1, 4) if f1 is not None else None,
        "indirect_dimensions_agreement": round(dims_agree / dims_total, 4)
        if dims_total else None,
        "errors": errors,
        "indirect_dimension_errors": dim_errors,
        "note": "gold seed claims against plainly synthetic records (PMIDs >= 90000000); "
                "no real PubMed record is used",
    }


def grouping(*, semantic: bool) -> dict[str, Any]:
    """Pairwise grouping figures, lexical and (when the extra is installed) semantic."""
    from benchmarks.claim_library import grouping_quality

    out: dict[str, Any] = {"lexical": grouping_quality(False)}
    if semantic:
        try:
            out["semantic"] = grouping_quality(True)
        except Exception as e:  # noqa: BLE001  (the optional extra is absent)
            out["semantic"] = {"skipped": str(e)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                        help="the shared folder holding fixtures/ (default ../shared)")
    parser.add_argument("--no-semantic", action="store_true",
                        help="skip the grouping figures with embeddings")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"benchmark": "judgements"}
    if (args.shared / "fixtures").is_dir():
        result["design_levels"] = design_levels(args.shared)
    else:
        result["design_levels"] = {"skipped": f"{args.shared}/fixtures not found"}
    result["claim_fit"] = claim_fit()
    result["grouping"] = grouping(semantic=not args.no_semantic)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
