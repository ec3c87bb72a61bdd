"""Webhooks: inbound verification schemes and inbox; outbound subscriptions and deliveries."""

from ._deliveries import (
    RETRY_SCHEDULE,
    CreatedSubscription,
    Delivery,
    DeliveryWorker,
    InvalidSubscription,
    Subscription,
    UnknownDelivery,
    UnknownSubscription,
    WebhookOutbox,
)
from ._events import publish
from ._inbox import (
    EventHandler,
    Inbox,
    InboxEvent,
    InboxRecord,
    RejectionRecord,
    UnknownInboxEvent,
)
from ._schemes import SchemeName, SchemeSettings, Verified, handshake, sign, verify
from ._sources import (
    UnknownWebhookSource,
    WebhookSource,
    WebhookSourceExists,
    WebhookSources,
)

__all__ = [
    "RETRY_SCHEDULE",
    "CreatedSubscription",
    "Delivery",
    "DeliveryWorker",
    "EventHandler",
    "Inbox",
    "InboxEvent",
    "InboxRecord",
    "InvalidSubscription",
    "RejectionRecord",
    "SchemeName",
    "SchemeSettings",
    "Subscription",
    "UnknownDelivery",
    "UnknownInboxEvent",
    "UnknownSubscription",
    "UnknownWebhookSource",
    "Verified",
    "WebhookOutbox",
    "WebhookSource",
    "WebhookSourceExists",
    "WebhookSources",
    "handshake",
    "publish",
    "sign",
    "verify",
]
