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
from ._schemes import MAX_TOLERANCE_S, SchemeName, SchemeSettings, Verified, handshake, sign, verify
from ._sources import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_BODY_BYTES,
    MAX_GRACE_S,
    LoadedSource,
    SourceCache,
    UnknownWebhookSource,
    WebhookSource,
    WebhookSourceExists,
    WebhookSources,
)

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_GRACE_S",
    "MAX_TOLERANCE_S",
    "RETRY_SCHEDULE",
    "CreatedSubscription",
    "Delivery",
    "DeliveryWorker",
    "EventHandler",
    "Inbox",
    "InboxEvent",
    "InboxRecord",
    "InvalidSubscription",
    "LoadedSource",
    "RejectionRecord",
    "SchemeName",
    "SchemeSettings",
    "SourceCache",
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
