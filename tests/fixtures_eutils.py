"""Pytest fixture for the fake E-utilities server.

Use it from a test module with ``from tests.fixtures_eutils import fake_eutils``, or
register it for the whole suite in ``tests/conftest.py`` with
``pytest_plugins = ["tests.fixtures_eutils"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._shared import shared_path
from tests.fake_eutils import FakeEutils


@pytest.fixture
def fake_eutils() -> Iterator[FakeEutils]:
    """A started :class:`FakeEutils` serving ``../shared/fixtures``; skips without it."""
    server = FakeEutils(shared_path("fixtures")).start()
    try:
        yield server
    finally:
        server.stop()
