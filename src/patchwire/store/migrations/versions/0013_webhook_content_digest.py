"""Replay detection for webhooks whose scheme signs no event id (GitHub, Shopify...):
``webhook_inbox.content_digest``, the SHA-256 of the signed content, unique per source.

A plain ``ADD COLUMN`` (nullable: no table rebuild, quick however many events the inbox
holds) and a partial unique index over the rows that have a digest, so events of schemes
that sign their id cost no index entry. Events received before read as having none.

Revision ID: 0013
Revises: 0012
Create Date: 2025-01-13
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_DIGEST = sa.text("content_digest IS NOT NULL")


def upgrade() -> None:
    op.add_column("webhook_inbox", sa.Column("content_digest", sa.String(64), nullable=True))
    op.create_index("uq_webhook_inbox_content_digest_source", "webhook_inbox",
                    ["content_digest", "source"], unique=True,
                    sqlite_where=_HAS_DIGEST, postgresql_where=_HAS_DIGEST)


def downgrade() -> None:
    op.drop_index("uq_webhook_inbox_content_digest_source", table_name="webhook_inbox")
    with op.batch_alter_table("webhook_inbox") as batch:
        batch.drop_column("content_digest")
