"""API keys of the server (migration 0010): who may call ``/api``, ``/mcp`` and the
dashboard, with which scopes. Managed with ``patchwire keys`` and ``/api/v1/keys``
(``server/_keys_api.py``); see ``store/keys.py`` and ``access/``.

Only a SHA-256 digest of each key's secret is stored, never the key itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import Base, UTCDateTime

__all__ = ["ApiKeyRow"]


class ApiKeyRow(Base):
    """One API key. ``id`` is the public part of the key (``pwk_<id>_<secret>``), so a
    presented key is found by primary key and then its secret's digest compared."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    #: hex SHA-256 of the secret part
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: a list of "read", "run", "approve", "admin"
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True,
                                                        index=True)
