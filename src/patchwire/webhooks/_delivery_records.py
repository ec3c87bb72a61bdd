"""The records of outbound webhooks as the API, the CLI and the dashboard show them:
subscriptions (never their secret, except once at creation), deliveries and attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["DELIVERY_STATUSES", "SUBSCRIPTION_STATUSES", "Attempt",
           "CreatedSubscription", "Delivery", "Subscription", "attempt_of", "delivery_of",
           "iso", "subscription_of"]

DELIVERY_STATUSES = ("pending", "succeeded", "failed")
SUBSCRIPTION_STATUSES = ("active", "disabled")


def iso(epoch: float | None) -> str | None:
    """An epoch time as the records show it (ISO 8601, milliseconds, ``Z``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    status: str
    disabled_reason: str | None
    disabled_at: float | None
    failing_since: float | None
    retry_at: float | None
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "event_types": list(self.event_types),
                "description": self.description, "status": self.status,
                "disabled_reason": self.disabled_reason, "disabled_at": iso(self.disabled_at),
                "failing_since": iso(self.failing_since), "retry_at": iso(self.retry_at),
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at)}


@dataclass(frozen=True, slots=True)
class CreatedSubscription:
    """A new subscription and its secret: the only time the secret is shown."""

    subscription: Subscription
    secret: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.subscription.to_dict(), "secret": self.secret}


@dataclass(frozen=True, slots=True)
class Attempt:
    id: str
    delivery_id: str
    attempt: int
    outcome: str
    status_code: int | None
    latency_ms: float
    error: str | None
    started_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "attempt": self.attempt, "outcome": self.outcome,
                "status_code": self.status_code, "latency_ms": round(self.latency_ms, 3),
                "error": self.error, "started_at": iso(self.started_at)}


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    event_created_at: float
    status: str
    tries: int
    attempts: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    created_at: float
    updated_at: float
    delivered_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "subscription_id": self.subscription_id,
                "event_id": self.event_id, "event_type": self.event_type,
                "event_created_at": iso(self.event_created_at), "status": self.status,
                "tries": self.tries, "attempts": self.attempts,
                "next_attempt_at": iso(self.next_attempt_at),
                "last_status_code": self.last_status_code, "last_error": self.last_error,
                "last_latency_ms": (None if self.last_latency_ms is None
                                    else round(self.last_latency_ms, 3)),
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
                "delivered_at": iso(self.delivered_at)}


def subscription_of(m: Any) -> Subscription:
    return Subscription(
        id=m["id"], url=m["url"], event_types=tuple(m["event_types"] or ()),
        description=m["description"], status=m["status"],
        disabled_reason=m["disabled_reason"], disabled_at=m["disabled_at"],
        failing_since=m["failing_since"], retry_at=m["retry_at"], created_at=m["created_at"],
        updated_at=m["updated_at"])


def delivery_of(m: Any) -> Delivery:
    return Delivery(**{k: m[k] for k in Delivery.__slots__})


def attempt_of(m: Any) -> Attempt:
    return Attempt(**{k: m[k] for k in Attempt.__slots__})

