"""Rate-limit leases: batches of tokens processes sharing the store take from one limit.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per (limit window, lease). Times are wall-clock epoch seconds as floats:
    # every process compares them with its own time.time(), and a float keeps the
    # sub-millisecond precision a per-second window needs on both backends.
    op.create_table(
        "rate_limit_leases",
        sa.Column("bucket", sa.String(500), nullable=False),
        sa.Column("lease_id", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "lease_id", name="pk_rate_limit_leases"),
    )
    op.create_index("ix_rate_limit_leases_lease_id", "rate_limit_leases", ["lease_id"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_leases_lease_id", table_name="rate_limit_leases")
    op.drop_table("rate_limit_leases")
