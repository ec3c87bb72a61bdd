"""The Patchwire store: SQLAlchemy 2 (async) over SQLite or PostgreSQL, Alembic migrations.

``await Store.open(url)`` migrates to head and returns a ready store; see ``core.py``.
"""

from __future__ import annotations

from patchwire.store.core import Store, normalize_url
from patchwire.store.records import CallRecord, ConnectionRecord, utcnow

__all__ = ["CallRecord", "ConnectionRecord", "Store", "normalize_url", "utcnow"]
