"""The store tables outbound webhooks read and write, as SQLAlchemy Core handles."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from patchwire.store import WebhookAttemptRow, WebhookDeliveryRow, WebhookSubscriptionRow
from patchwire.store.models import EventRow

__all__ = ["ATTEMPTS", "DELIVERIES", "EVENTS", "SUBS"]

SUBS = cast(Table, WebhookSubscriptionRow.__table__)
DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
ATTEMPTS = cast(Table, WebhookAttemptRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
