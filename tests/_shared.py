"""Locating ../shared (read in place, never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

#: Every recorded PubMed XML file in ../shared/fixtures (NCBI efetch responses and MEDLINE).
PUBMED_FIXTURES = (
    "ncbi/pubmed1.xml",
    "ncbi/pubmed2.xml",
    "ncbi/pubmed4.xml",
    "ncbi/pubmed5.xml",
    "ncbi/pubmed6.xml",
    "ncbi/pubmed7.xml",
    "ncbi/title_with_html_tags.xml",
    "medline/pubmed-29768149.xml",
    "medline/test_current_medline.xml.gz",
)


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, skipping the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (fixtures, datasets) is not beside the repo")
    return path
