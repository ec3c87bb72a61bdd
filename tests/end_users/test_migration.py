"""Migration 0014: a connection's owner becomes its end user, nothing stored is lost, and
the step back restores the old shape."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.support.store import migrate


def test_migration_0014_keeps_each_connections_owner_as_its_end_user_and_steps_back(
        tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'patchwire.db'}")
    with engine.begin() as conn:
        migrate(conn, "upgrade", "0013")
        conn.exec_driver_sql(
            "INSERT INTO connections (id, name, connector, owner, settings, secrets, "
            "created_at, updated_at) VALUES ('c1', 'acme-shop', 'shop', 'user:1', '{}', '', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')")
        migrate(conn, "upgrade", "0014")
        assert conn.exec_driver_sql(
            "SELECT name, end_user, label, is_default, needs_reauth, health "
            "FROM connections").all() == [("acme-shop", "user:1", None, 0, 0, None)]
        tables = set(sa.inspect(conn).get_table_names())
        assert {"end_user_tokens", "connect_sessions", "oauth_apps"} <= tables
        for table in ("tool_calls", "approvals", "flow_runs"):
            assert "end_user" in {c["name"] for c in sa.inspect(conn).get_columns(table)}
        migrate(conn, "downgrade", "0013")
        assert conn.exec_driver_sql(
            "SELECT name, owner FROM connections").all() == [("acme-shop", "user:1")]
        assert "end_user_tokens" not in set(sa.inspect(conn).get_table_names())
    engine.dispose()
