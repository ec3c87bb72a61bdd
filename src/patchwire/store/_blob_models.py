"""The table of binary answers kept for callers (migration 0015): a PDF invoice or an image
an upstream answered, stored so a model sees its metadata and a reference, never its
bytes. See ``store/blobs.py``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import Base, UTCDateTime

__all__ = ["BlobRow"]


class BlobRow(Base):
    """One binary answer: which connection (and so which end user) it was fetched
    through, what it is, and its bytes, until ``expires_at``."""

    __tablename__ = "blobs"
    __table_args__ = (
        Index("ix_blobs_expires_at", "expires_at"),
        Index("ix_blobs_end_user", "end_user"),
    )

    #: 32 random hex characters: a reference nobody can guess
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    connection: Mapped[str] = mapped_column(String(200), nullable=False)
    #: the connection's end user (None: an operator's connection)
    end_user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: the action whose answer it was (``shop.get_invoice``)
    action: Mapped[str] = mapped_column(String(200), nullable=False)
    content_type: Mapped[str] = mapped_column(String(200), nullable=False)
    filename: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
