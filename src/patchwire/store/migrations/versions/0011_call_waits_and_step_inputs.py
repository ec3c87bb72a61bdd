"""Rate-limit waits in the call log (``calls.rate_limit_wait_ms``) and what each flow step
was given (``flow_steps.input``).

Both are plain ``ADD COLUMN``s: no table is rebuilt, so the migration is quick however
many calls the log holds (a constant default is metadata-only on PostgreSQL 11+ and SQLite).
Calls recorded before it read as having waited 0 ms.

Revision ID: 0011
Revises: 0010
Create Date: 2025-01-11
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("rate_limit_wait_ms", sa.Float(), nullable=False,
                                     server_default=sa.text("0")))
    op.add_column("flow_steps", sa.Column("input", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_steps") as batch:
        batch.drop_column("input")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("rate_limit_wait_ms")
