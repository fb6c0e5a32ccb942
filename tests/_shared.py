"""Locating ../shared (read in place, never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._gen_pubmed import FIXTURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

#: Every recorded PubMed XML file in ../shared/fixtures (NCBI efetch responses and MEDLINE);
#: the benchmark generator builds its records from the same list.
PUBMED_FIXTURES = FIXTURE_NAMES


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, skipping the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (fixtures, datasets) is not beside the repo")
    return path
