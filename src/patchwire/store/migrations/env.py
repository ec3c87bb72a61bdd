"""Alembic environment for the Patchwire store.

Normally run programmatically by ``Store.open``, which passes an open (sync-facing)
connection in ``config.attributes["connection"]`` so migrations run inside the caller's
transaction. For ad-hoc use of the ``alembic`` command (e.g. ``alembic revision``), set
``sqlalchemy.url`` to an async URL and this module opens its own async engine.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from patchwire.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no connection given: open the store with patchwire.store.Store.open(url), "
            "or set sqlalchemy.url for the alembic command"
        )
    asyncio.run(_run_with_own_engine(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
