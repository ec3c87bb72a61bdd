"""Store fixtures: ``store_url`` runs each store test on SQLite and on PostgreSQL.

PostgreSQL comes from ``PATCHWIRE_TEST_POSTGRES_URL`` (``scripts/ci-postgres.sh`` sets one up).
Without it the postgres variant is skipped locally but fails under ``CI`` so the pipeline
cannot silently stop testing PostgreSQL. Each postgres test starts from an empty ``public``
schema (dropping and recreating it is faster than creating a database), so tests sharing
one database must not run in parallel.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from patchwire.store import Store, normalize_url

POSTGRES_ENV = "PATCHWIRE_TEST_POSTGRES_URL"


def postgres_url_or_skip() -> str:
    """The test PostgreSQL URL; skip (or fail under CI) when it is not configured."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set but CI is: run scripts/ci-postgres.sh first")
    pytest.skip(f"{POSTGRES_ENV} not set (run scripts/ci-postgres.sh to get PostgreSQL)")


async def reset_postgres(url: str) -> None:
    """Drop everything in the public schema so the next Store.open starts from scratch."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            await conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        await engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with no Patchwire tables yet: a fresh SQLite file or a clean PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state' / 'patchwire.db'}"
    url = postgres_url_or_skip()
    await reset_postgres(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An opened (migrated) store on ``store_url``, closed after the test."""
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
