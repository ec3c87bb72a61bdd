"""The event log: flows' ``flow_events`` become ``events``, for every source (flows, runs,
syncs), with the time outbound webhooks took each event up.

Revision ID: 0006
Revises: 0005
Create Date: 2025-01-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_flow_events_type", table_name="flow_events")
    op.drop_index("ix_flow_events_created_at", table_name="flow_events")
    op.rename_table("flow_events", "events")
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=False,
                                   server_default="flow"))
        batch.add_column(sa.Column("dispatched_at", sa.Float(), nullable=True))
    op.create_index("ix_events_type", "events", ["type"])
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_index("ix_events_dispatched_at", "events", ["dispatched_at"])


def downgrade() -> None:
    op.drop_index("ix_events_dispatched_at", table_name="events")
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_index("ix_events_type", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("dispatched_at")
        batch.drop_column("source")
    op.rename_table("events", "flow_events")
    op.create_index("ix_flow_events_type", "flow_events", ["type"])
    op.create_index("ix_flow_events_created_at", "flow_events", ["created_at"])
