"""The Patchwire store: SQLAlchemy 2 (async) over SQLite or PostgreSQL, Alembic migrations.

``await Store.open(url)`` migrates to head and returns a ready store; see ``core.py``.
"""

from __future__ import annotations

from patchwire.store.core import Store, normalize_url
from patchwire.store.records import CallRecord, ConnectionRecord, utcnow

from ._delivery_models import WebhookAttemptRow, WebhookDeliveryRow, WebhookSubscriptionRow
from ._group_commit import (
    FileConnection,
    GroupCommitWriter,
    Statement,
    immediate,
    no_results,
    sqlite_file,
    values_sql,
)
from ._key_models import ApiKeyRow
from ._leases import LeaseRequest, LeaseResult, Settlement, Window
from ._owners import dead_local_owners, new_owner_id
from ._slots import SlotTable
from ._sync_models import SyncRecordRow, SyncStateRow
from ._webhook_models import WebhookInboxRow, WebhookRejectionRow, WebhookSourceRow

__all__ = [
    "ApiKeyRow",
    "CallRecord",
    "ConnectionRecord",
    "FileConnection",
    "GroupCommitWriter",
    "LeaseRequest",
    "LeaseResult",
    "Settlement",
    "SlotTable",
    "Statement",
    "Store",
    "SyncRecordRow",
    "SyncStateRow",
    "WebhookAttemptRow",
    "WebhookDeliveryRow",
    "WebhookInboxRow",
    "WebhookRejectionRow",
    "WebhookSourceRow",
    "WebhookSubscriptionRow",
    "Window",
    "dead_local_owners",
    "immediate",
    "new_owner_id",
    "no_results",
    "normalize_url",
    "sqlite_file",
    "utcnow",
    "values_sql",
]
