"""Store fixtures: ``store_url`` runs each store test on SQLite and on PostgreSQL.

PostgreSQL comes from ``PATCHWIRE_TEST_POSTGRES_URL`` (``scripts/ci-postgres.sh`` sets one up).
Without it the postgres variant is skipped locally but fails under ``CI`` so the pipeline
cannot silently stop testing PostgreSQL. Each test process gets a database of its own
(``<db>_p<pid>``, created on first use and dropped at exit), so pytest-xdist workers and
parallel runs do not clobber each other; each postgres test starts from an empty ``public``
schema in it (dropping and recreating it is faster than creating a database).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import alembic.command
import alembic.config
import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from patchwire.store import Store, normalize_url
from patchwire.store.core import MIGRATIONS_DIR

POSTGRES_ENV = "PATCHWIRE_TEST_POSTGRES_URL"


_created: set[str] = set()


def _own_database(url: str) -> str:
    """This process's database on the server of ``url``."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_p{os.getpid()}").render_as_string(
        hide_password=False)


async def _create_own_database(url: str) -> None:
    """Create this process's database once (from the configured one), dropped at exit."""
    own = _own_database(url)
    if own in _created:
        return
    name = make_url(own).database
    engine = create_async_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if not exists:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await engine.dispose()
    _created.add(own)
    atexit.register(_drop_own_database, url, name)


def _drop_own_database(url: str, name: str) -> None:
    async def drop() -> None:
        engine = create_async_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await engine.dispose()

    # best effort at exit: the next run's database has another name anyway
    with contextlib.suppress(Exception):
        asyncio.run(drop())


def postgres_url_or_skip() -> str:
    """This test process's PostgreSQL URL (a database of its own on the configured server);
    skip (or fail under CI) when none is configured. :func:`reset_postgres` creates it."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return _own_database(url)
    if os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set but CI is: run scripts/ci-postgres.sh first")
    pytest.skip(f"{POSTGRES_ENV} not set (run scripts/ci-postgres.sh to get PostgreSQL)")


async def reset_postgres(url: str) -> None:
    """Drop everything in the public schema so the next Store.open starts from scratch
    (creating this process's database first, when ``url`` is it)."""
    configured = os.environ.get(POSTGRES_ENV)
    if configured and url == _own_database(configured):
        await _create_own_database(configured)
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


def migrate(conn: sa.Connection, verb: str, revision: str) -> None:
    """Run Alembic's ``upgrade``/``downgrade`` to ``revision`` on ``conn`` (the migration
    tests step through revisions with rows in between)."""
    cfg = alembic.config.Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    getattr(alembic.command, verb)(cfg, revision)
