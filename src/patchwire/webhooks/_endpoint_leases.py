"""The delivery worker's side of the store: which endpoints are due, the lease a worker
holds on an endpoint while it sends (so two processes never send to one endpoint at once,
which is what keeps the order across processes), and the endpoint's pending deliveries."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select, update

from patchwire.auth.vault import Vault
from patchwire.errors import StoreError
from patchwire.http import Redactor
from patchwire.store import Store
from patchwire.webhooks._delivery_tables import DELIVERIES, EVENTS, SUBS
from patchwire.webhooks._subscription_rules import SECRET_PREFIX, subscription_aad

__all__ = ["BATCH", "Endpoint", "EndpointLeases", "PendingDelivery"]

#: deliveries of one endpoint read per query
BATCH = 200


@dataclass(slots=True)
class PendingDelivery:
    """A delivery as the sender reads it (with its event's data)."""

    id: str
    event_id: str
    event_type: str
    event_created_at: float
    tries: int
    attempts: int
    data: Any


@dataclass(slots=True)
class Endpoint:
    """A claimed endpoint: where to send, its secret, and its failure streak."""

    id: str
    url: str
    secret: str = field(repr=False)
    failing_since: float | None
    retry_at: float | None
    redact: Redactor


class EndpointLeases:
    """The leases of one worker (``owner``), each good for ``lease`` seconds."""

    def __init__(self, store: Store, vault: Vault, *, owner: str, lease: float) -> None:
        self.store = store
        self.vault = vault
        self.owner = owner
        self.lease = lease

    async def due(self, now: float, limit: int) -> list[str]:
        """Active endpoints with pending deliveries, not waiting for a retry and not leased
        by another worker: the ids of at most ``limit``, longest waiting first."""
        has_work = exists().where(DELIVERIES.c.subscription_id == SUBS.c.id,
                                  DELIVERIES.c.status == "pending")
        stmt = (select(SUBS.c.id).where(
            SUBS.c.status == "active",
            SUBS.c.retry_at.is_(None) | (SUBS.c.retry_at <= now),
            SUBS.c.owner.is_(None) | (SUBS.c.owner == self.owner)
            | (SUBS.c.lease_until < now),
            has_work).order_by(SUBS.c.retry_at, SUBS.c.id).limit(limit))
        with self.store._errors("find due webhook endpoints"):
            async with self.store.engine.connect() as conn:
                return [r[0] for r in (await conn.execute(stmt)).all()]

    async def claim(self, sub_id: str, now: float) -> Endpoint | None:
        """Lease the endpoint, unless it is disabled or another worker's lease holds."""
        with self.store._errors("claim a webhook endpoint"):
            async with self.store.engine.begin() as conn:
                row = (await conn.execute(update(SUBS).where(
                    SUBS.c.id == sub_id, SUBS.c.status == "active",
                    SUBS.c.owner.is_(None) | (SUBS.c.owner == self.owner)
                    | (SUBS.c.lease_until < now)).values(
                    owner=self.owner, lease_until=now + self.lease).returning(
                    SUBS.c.url, SUBS.c.secret, SUBS.c.failing_since,
                    SUBS.c.retry_at))).first()
        if row is None:
            return None
        secret = str(self.vault.decrypt_json(row.secret, aad=subscription_aad(sub_id))
                     ["secret"])
        redact = Redactor([secret, secret.removeprefix(SECRET_PREFIX)])
        return Endpoint(sub_id, row.url, secret, row.failing_since, row.retry_at, redact)

    async def renew(self, ep: Endpoint, now: float) -> bool:
        """Extend the lease; False when the endpoint was disabled, removed or taken."""
        with self.store._errors("renew a webhook endpoint lease"):
            async with self.store.engine.begin() as conn:
                result = await conn.execute(update(SUBS).where(
                    SUBS.c.id == ep.id, SUBS.c.owner == self.owner,
                    SUBS.c.status == "active").values(lease_until=now + self.lease))
        return bool(result.rowcount)

    async def release(self, sub_id: str) -> None:
        with contextlib.suppress(StoreError), self.store._errors("release a webhook endpoint"):
            async with self.store.engine.begin() as conn:
                await conn.execute(update(SUBS).where(
                    SUBS.c.id == sub_id, SUBS.c.owner == self.owner).values(
                    owner=None, lease_until=None))

    async def release_all(self) -> None:
        """Give up every lease of this worker (it stops); failures are left to expire."""
        with contextlib.suppress(Exception):
            async with self.store.engine.begin() as conn:
                await conn.execute(update(SUBS).where(SUBS.c.owner == self.owner).values(
                    owner=None, lease_until=None))

    async def pending(self, sub_id: str) -> list[PendingDelivery]:
        """The endpoint's next pending deliveries, in the order of their events."""
        stmt = (select(DELIVERIES.c.id, DELIVERIES.c.event_id, DELIVERIES.c.event_type,
                       DELIVERIES.c.event_created_at, DELIVERIES.c.tries,
                       DELIVERIES.c.attempts, EVENTS.c.data)
                .select_from(DELIVERIES.outerjoin(EVENTS,
                                                  EVENTS.c.id == DELIVERIES.c.event_id))
                .where(DELIVERIES.c.subscription_id == sub_id,
                       DELIVERIES.c.status == "pending")
                .order_by(DELIVERIES.c.event_created_at, DELIVERIES.c.event_id)
                .limit(BATCH))
        with self.store._errors("read pending webhook deliveries"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [PendingDelivery(*r) for r in rows]
