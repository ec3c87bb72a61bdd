"""The crash scenarios run on SQLite and on PostgreSQL: the store under test is the one the
killed processes share."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(store_url: str) -> str:
    """``store_url`` (tests.support.store): a fresh SQLite file or a clean PostgreSQL."""
    return store_url
