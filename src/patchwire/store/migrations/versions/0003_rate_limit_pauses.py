"""Rate-limit pauses: an upstream's 429 or ``X-RateLimit-Remaining: 0`` seen by one
process holds back every process sharing the store until the reset.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per paused bucket (a connector, or a connector's connection); the time is
    # wall-clock epoch seconds like the leases' times.
    op.create_table(
        "rate_limit_pauses",
        sa.Column("bucket", sa.String(500), nullable=False),
        sa.Column("paused_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name="pk_rate_limit_pauses"),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_pauses")
