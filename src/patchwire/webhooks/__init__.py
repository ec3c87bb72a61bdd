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
from ._schemes import SchemeName, SchemeSettings, Verified, handshake, sign, verify

__all__ = [
    "RETRY_SCHEDULE",
    "CreatedSubscription",
    "Delivery",
    "DeliveryWorker",
    "InvalidSubscription",
    "SchemeName",
    "SchemeSettings",
    "Subscription",
    "UnknownDelivery",
    "UnknownSubscription",
    "Verified",
    "WebhookOutbox",
    "handshake",
    "publish",
    "sign",
    "verify",
]
