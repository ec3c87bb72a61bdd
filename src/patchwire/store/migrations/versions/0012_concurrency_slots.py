"""Concurrency slots: a connector's ``concurrency: N`` cap held by every process sharing
the store (``store/_slots.py``).

Revision ID: 0012
Revises: 0011
Create Date: 2025-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows 0..N-1 per capped connector, created on first use and then only updated: taking
    # a slot writes its holder, giving it back clears it. ``expires_at`` is wall-clock
    # epoch seconds like the rate-limit leases' times (a dead holder's slot frees then).
    op.create_table(
        "concurrency_slots",
        sa.Column("connector", sa.String(200), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("connector", "slot", name="pk_concurrency_slots"),
    )


def downgrade() -> None:
    op.drop_table("concurrency_slots")
