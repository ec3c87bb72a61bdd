"""Migration 0011 on SQLite: a store at 0010 holding calls and steps gains
``calls.rate_limit_wait_ms`` (old calls read back as 0 ms) and ``flow_steps.input``
(NULL for steps recorded before), and the migration steps back down cleanly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from patchwire.store import Store
from patchwire.store.core import sqlite_timestamp
from tests.support.store import migrate


def columns(conn: Connection, table: str) -> dict[str, bool]:
    """Column name -> nullable."""
    return {c["name"]: bool(c["nullable"]) for c in sa.inspect(conn).get_columns(table)}


async def test_migration_0011_adds_the_wait_and_step_input_columns_keeping_existing_rows(
        tmp_path: Path) -> None:
    db = tmp_path / "patchwire.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        migrate(conn, "upgrade", "0010")
        conn.exec_driver_sql(
            "INSERT INTO calls (id, request_id, action, connector, connection, status, "
            "http_status, latency_ms, attempts, error_class, error_message, started_at) "
            "VALUES ('old', 'old', 'shop.get_order', 'shop', 'acme', 'ok', 200, 12.5, 1, "
            "NULL, NULL, ?)", (sqlite_timestamp(datetime(2025, 1, 1, tzinfo=UTC)),))
        conn.exec_driver_sql(
            "INSERT INTO flow_steps (run_id, key, kind, status, output, error, attempts, "
            "started_at, finished_at) VALUES ('run', 'lookup', 'call', 'succeeded', "
            "'{\"id\": 1}', NULL, 1, 1.0, 2.0)")

    async with await Store.open(f"sqlite:///{db}") as store:  # upgrades to head
        (old,) = await store.list_calls()
    assert old.id == "old" and old.latency_ms == 12.5 and old.rate_limit_wait_ms == 0.0

    with engine.begin() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        assert version == "0015"
        assert columns(conn, "calls")["rate_limit_wait_ms"] is False  # NOT NULL DEFAULT 0
        assert columns(conn, "flow_steps")["input"] is True
        step = conn.exec_driver_sql("SELECT input, output FROM flow_steps").one()
        assert step == (None, '{"id": 1}')

        migrate(conn, "downgrade", "0010")
        assert "rate_limit_wait_ms" not in columns(conn, "calls")
        assert "input" not in columns(conn, "flow_steps")
        assert conn.exec_driver_sql("SELECT count(*) FROM calls").scalar() == 1
    engine.dispose()
