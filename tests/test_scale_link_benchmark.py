"""``benchmarks.scale_link`` runs end to end on PostgreSQL (at a small size)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests._shared import ROOT, shared_path
from tests.conftest import _PG_REASON


def test_scale_link_prints_one_json_object_with_link_latency() -> None:
    if _PG_REASON:
        pytest.skip(_PG_REASON)
    scifact = shared_path("datasets", "scifact")
    seeds = shared_path("seeds")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale_link", "--studies", "300",
         "--scifact", str(scifact), "--seeds", str(seeds)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["benchmark"] == "scale_link" and result["studies"] == 300
    assert result["load"]["articles"] == 5
    assert result["index"]["size_mb"] > 0
    link = result["link"]
    assert link["claims"] > 50 and link["links_created"] > 0
    assert 0 < link["p50_ms"] <= link["p95_ms"] <= link["max_ms"]
    assert "is current (300 studies)" in link["ranking"]
    assert 0 < link["anon_rss_mb_max_sampled"] <= link["peak_rss_mb"]
    assert link["file_rss_mb_at_end"] > 0
