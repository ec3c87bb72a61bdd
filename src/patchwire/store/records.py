"""Plain, immutable records the store hands out and accepts.

Why dataclasses instead of ORM objects: callers (call pipeline, CLI, server) must not hold
live database state or trigger lazy loads; a frozen record is safe to pass between tasks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = ["CallRecord", "ConnectionRecord", "utcnow"]


def utcnow() -> datetime:
    """Timezone-aware now in UTC: every timestamp in the store is aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ConnectionRecord:
    """One set of credentials for a connector.

    ``settings`` holds non-secret values in plain JSON; ``secrets`` is a vault token
    (encrypted with AAD ``connection_aad(id)``) or ``""`` when there are none.
    """

    id: str
    name: str
    connector: str
    end_user: str | None
    settings: dict[str, Any]
    secrets: str
    created_at: datetime
    updated_at: datetime
    #: "work", "personal": tells apart one end user's connections of one connector
    label: str | None = None
    #: the one an end user's calls use when they name none (of several of a connector)
    is_default: bool = False
    #: the provider refused to renew its OAuth2 tokens: the end user must connect again
    needs_reauth: bool = False
    #: "unhealthy" while its calls fail, else None
    health: str | None = None

    @classmethod
    def new(
        cls,
        name: str,
        connector: str,
        *,
        end_user: str | None = None,
        label: str | None = None,
        settings: dict[str, Any] | None = None,
        secrets: str = "",
        id: str | None = None,
    ) -> ConnectionRecord:
        """A fresh record with a new uuid and both timestamps set to now.

        Create the record first, then encrypt the secrets with its ``id`` as AAD and
        ``dataclasses.replace`` them in.
        """
        now = utcnow()
        return cls(
            id=id or str(uuid.uuid4()),
            name=name,
            connector=connector,
            end_user=end_user,
            label=label,
            settings=dict(settings or {}),
            secrets=secrets,
            created_at=now,
            updated_at=now,
        )


class CallRecord(NamedTuple):
    """One execution of an action through a connection (the call log).

    A named tuple, not a frozen dataclass: one is built for every call made, and a tuple
    is immutable at a fraction of the construction cost.
    """

    id: str
    request_id: str
    action: str
    connector: str
    connection: str | None
    status: str  # "ok" | "error"
    http_status: int | None
    latency_ms: float
    attempts: int
    error_class: str | None
    error_message: str | None
    started_at: datetime
    #: milliseconds the call waited for its rate limits, its connector's concurrency cap
    #: and the upstream's 429 pauses (0 when it went straight through)
    rate_limit_wait_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = self._asdict()
        d["started_at"] = self.started_at.isoformat()
        return d
