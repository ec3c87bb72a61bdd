"""Webhooks: inbound verification schemes and inbox; outbound subscriptions and deliveries."""

from patchwire.errors import InvalidSubscription, UnknownDelivery, UnknownSubscription

from ._delivery_records import Attempt, CreatedSubscription, Delivery, Subscription
from ._delivery_worker import DeliveryWorker
from ._events import publish
from ._inbox import (
    EventHandler,
    Inbox,
    InboxEvent,
    InboxHost,
    InboxRecord,
    RejectionRecord,
    UnknownInboxEvent,
)
from ._outbox import WebhookOutbox
from ._retry_schedule import (
    DISABLE_AFTER_FAILING_S,
    RETRY_AFTER_CAP_S,
    RETRY_JITTER,
    RETRY_SCHEDULE,
    retry_delay,
)
from ._schemes import MAX_TOLERANCE_S, SchemeName, SchemeSettings, Verified, handshake, sign, verify
from ._sources import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_BODY_BYTES,
    MAX_GRACE_S,
    LoadedSource,
    SourceCache,
    SourcesHost,
    UnknownWebhookSource,
    WebhookSource,
    WebhookSourceExists,
    WebhookSources,
)
from ._subscription_rules import generate_secret, subscription_aad, type_matches

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_MAX_BODY_BYTES",
    "DISABLE_AFTER_FAILING_S",
    "MAX_GRACE_S",
    "MAX_TOLERANCE_S",
    "RETRY_AFTER_CAP_S",
    "RETRY_JITTER",
    "RETRY_SCHEDULE",
    "Attempt",
    "CreatedSubscription",
    "Delivery",
    "DeliveryWorker",
    "EventHandler",
    "Inbox",
    "InboxEvent",
    "InboxHost",
    "InboxRecord",
    "InvalidSubscription",
    "LoadedSource",
    "RejectionRecord",
    "SchemeName",
    "SchemeSettings",
    "SourceCache",
    "SourcesHost",
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
    "generate_secret",
    "handshake",
    "publish",
    "retry_delay",
    "sign",
    "subscription_aad",
    "type_matches",
    "verify",
]
