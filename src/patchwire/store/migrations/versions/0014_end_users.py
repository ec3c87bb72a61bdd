"""Many end users in one deployment: a connection's ``owner`` becomes its ``end_user``
(with a ``label``, a default among one end user's connections of a connector, and its
``needs_reauth``/``health`` state); tool calls, approvals and runs remember the end user
they act for; new tables for end-user tokens, connect sessions and OAuth apps.

The rename is a plain ``ALTER TABLE ... RENAME COLUMN`` (SQLite 3.25+ and PostgreSQL), so
no table is rebuilt; every added column is nullable or has a server default.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE connections RENAME COLUMN owner TO end_user")
    op.add_column("connections", sa.Column("label", sa.String(100), nullable=True))
    op.add_column("connections", sa.Column("is_default", sa.Boolean(), nullable=False,
                                           server_default=sa.text("false")))
    op.add_column("connections", sa.Column("needs_reauth", sa.Boolean(), nullable=False,
                                           server_default=sa.text("false")))
    op.add_column("connections", sa.Column("health", sa.String(16), nullable=True))
    op.create_index("ix_connections_end_user_connector", "connections",
                    ["end_user", "connector"])
    for table in ("tool_calls", "approvals", "flow_runs"):
        op.add_column(table, sa.Column("end_user", sa.String(200), nullable=True))
        op.create_index(f"ix_{table}_end_user", table, ["end_user"])

    op.create_table(
        "end_user_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("end_user", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_end_user_tokens"),
    )
    op.create_index("ix_end_user_tokens_end_user", "end_user_tokens", ["end_user"])
    op.create_table(
        "connect_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("end_user", sa.String(200), nullable=False),
        sa.Column("connectors", sa.JSON(), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("connection", sa.String(200), nullable=True),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("oauth_connector", sa.String(200), nullable=True),
        sa.Column("oauth_state", sa.String(64), nullable=True),
        sa.Column("code_verifier", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_connect_sessions"),
    )
    op.create_index("ix_connect_sessions_end_user", "connect_sessions", ["end_user"])
    op.create_index("ix_connect_sessions_oauth_state", "connect_sessions", ["oauth_state"])
    op.create_table(
        "oauth_apps",
        sa.Column("connector", sa.String(200), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", name="pk_oauth_apps"),
    )


def downgrade() -> None:
    op.drop_table("oauth_apps")
    op.drop_index("ix_connect_sessions_oauth_state", table_name="connect_sessions")
    op.drop_index("ix_connect_sessions_end_user", table_name="connect_sessions")
    op.drop_table("connect_sessions")
    op.drop_index("ix_end_user_tokens_end_user", table_name="end_user_tokens")
    op.drop_table("end_user_tokens")
    for table in ("flow_runs", "approvals", "tool_calls"):
        op.drop_index(f"ix_{table}_end_user", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("end_user")
    op.drop_index("ix_connections_end_user_connector", table_name="connections")
    with op.batch_alter_table("connections") as batch:
        for column in ("health", "needs_reauth", "is_default", "label"):
            batch.drop_column(column)
    op.execute("ALTER TABLE connections RENAME COLUMN end_user TO owner")
