"""Binary answers kept as blobs: a ``blobs`` table (the bytes of a PDF or an image an
upstream answered, the connection and end user it was fetched for, until it expires).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("end_user", sa.String(200), nullable=True),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(200), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
    )
    op.create_index("ix_blobs_expires_at", "blobs", ["expires_at"])
    op.create_index("ix_blobs_end_user", "blobs", ["end_user"])


def downgrade() -> None:
    op.drop_index("ix_blobs_end_user", table_name="blobs")
    op.drop_index("ix_blobs_expires_at", table_name="blobs")
    op.drop_table("blobs")
