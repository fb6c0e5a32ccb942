"""The surveillance benchmark at tiny sizes: strict JSON, and requests exactly at the minimum.

Not a timing test: it checks the request counts the benchmark measures (so a regression in
batching fails it) and that the run re-opens what it changed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks import surveillance
from tests._shared import shared_path


def _strict(text: str) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    data: dict[str, Any] = json.loads(text, parse_constant=refuse)
    return data


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    shared_path("fixtures")
    code = surveillance.main(["--quick", *args])
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line
    report = _strict(out)
    assert code == 0, report.get("checks")
    return report


def test_quick_run_sends_the_minimum_requests_and_reopens_the_changed_claims(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = _run(capsys)
    q = surveillance.QUICK
    assert report["database"] == "sqlite" and report["api_key"] is True
    full, repeat, since = report["full_run"], report["repeat_run"], report["since_run"]
    # Re-fetch: ceil(40 / 10) efetch batches, then one efetch of the two changed records
    # together (the response stored as their new version), nothing more.
    assert full["refetch"]["by_utility"] == {"efetch": q["studies"] // q["batch_size"] + 1}
    assert full["refetch"]["requests"] == full["refetch"]["minimum"] == 5
    assert full["refetch"]["strict_minimum"] == 4 and full["counts"]["records_changed"] == 2
    # Discovery: one esearch per canonical claim, one efetch for the two new trials.
    assert full["discovery"]["by_utility"] == {"esearch": q["groups"], "efetch": 1}
    assert full["discovery"]["requests"] == full["discovery"]["minimum"] == 5
    # The same again with nothing new: the two linked trials are re-fetched too (5 batches),
    # nothing is fetched by discovery.
    assert repeat["refetch"]["requests"] == repeat["refetch"]["minimum"] == 5
    assert repeat["discovery"]["by_utility"] == {"esearch": q["groups"]}
    # The since path: one epost, one date-filtered esearch, one efetch of the two modified.
    assert since["refetch"]["by_utility"] == {"epost": 1, "esearch": 1, "efetch": 1}
    assert since["refetch"]["requests"] == since["refetch"]["minimum"] == 3
    assert since["counts"]["records_fetched"] == 2
    for run in (full, repeat, since):
        assert run["requests_total"] == run["requests_counted_by_surveil"]
        assert run["server"]["rate_violations"] == 0
        assert run["fetch"]["rate_limit_floor_s"] == pytest.approx(
            run["requests_total"] * report["min_interval_s"], abs=0.001)
    # Two studies were retracted: two claims re-opened, in both full and since runs.
    for run in (full, since):
        apply = run["apply"]
        assert apply["changed_records"] == 2 and apply["claims_reopened"] == 2
        assert apply["claims_reopened_in_db"] == 2
        assert apply["audit_events"]["study.update"] == 2
        assert apply["audit_events"]["claim.reopen"] == 2
        assert apply["statements_by_step"]["reopen_claims"] > 0
        assert apply["statements_per_changed_record"] > 0
    assert full["counts"]["retracted"] == 2 and full["counts"]["new_evidence_links"] == 10
    assert repeat["apply"]["claims_reopened"] == 0 and repeat["counts"]["studies_changed"] == 0
    assert "store_changed_records" not in repeat["apply"]["statements_by_step"]
    assert report["ok"] is True and all(v is not False for v in report["checks"].values())


def test_no_discover_sends_only_the_refetch(capsys: pytest.CaptureFixture[str]) -> None:
    report = _run(capsys, "--no-discover", "--batch-size", "7")
    full = report["full_run"]
    assert full["discovery"] is None
    assert full["requests"] == {"efetch": 7}  # ceil(40 / 7), then the 2 changed together
    assert full["refetch"]["minimum"] == 7 and full["refetch"]["strict_minimum"] == 6
    assert full["counts"]["discovery_queries"] == 0
    assert report["checks"]["discovery_within_target"] is None


def test_statement_kinds_name_the_verb_and_table() -> None:
    kind = surveillance.statement_kind
    assert kind('UPDATE claim SET status=? WHERE claim.id = ?') == "UPDATE claim"
    assert kind('INSERT INTO "audit_event" (id) VALUES (?)') == "INSERT audit_event"
    assert kind("SELECT study.id FROM study WHERE study.pmid IN (?)") == "SELECT study"
    assert kind("SELECT pg_advisory_xact_lock(%(k)s)") == "SELECT pg_advisory_xact_lock"


def test_bad_options_print_an_error_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert surveillance.main(["--studies", "5", "--claims", "10"]) == 2
    assert "studies >= claims" in _strict(capsys.readouterr().out)["error"]
    assert surveillance.main(["--database-url", "sqlite:///x.db"]) == 2
    assert "PostgreSQL" in _strict(capsys.readouterr().out)["error"]


def test_quick_run_on_postgresql(capsys: pytest.CaptureFixture[str], pg_url: str) -> None:
    report = _run(capsys, "--database-url", pg_url)
    assert report["database"] == "postgresql"
    full = report["full_run"]
    assert full["refetch"]["requests"] == full["refetch"]["minimum"] == 5
    assert full["discovery"]["requests"] == full["discovery"]["minimum"] == 5
    assert report["since_run"]["refetch"]["requests"] == 3
    # Bulk-loaded ids moved the sequences on: surveillance inserted new studies and links.
    assert full["counts"]["studies_added"] == 2 and full["counts"]["new_evidence_links"] == 10
    assert full["apply"]["statements_by_kind"]["SELECT pg_advisory_xact_lock"] > 0
