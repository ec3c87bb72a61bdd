"""The outbox: subscriptions and deliveries in the store, for the API, the CLI and the
dashboard (the :class:`~patchwire.webhooks._delivery_worker.DeliveryWorker` sends).

Secrets: generated ``whsec_<base64 of 24 random bytes>``, shown once at creation, stored
encrypted by the vault (AAD :func:`subscription_aad`). Records carry no secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from patchwire.auth.vault import Vault
from patchwire.errors import InvalidSubscription, UnknownDelivery, UnknownSubscription
from patchwire.http import DestinationPolicy
from patchwire.ids import new_id
from patchwire.store import Store
from patchwire.webhooks._delivery_records import (
    Attempt,
    CreatedSubscription,
    Delivery,
    Subscription,
    attempt_of,
    delivery_of,
    subscription_of,
)
from patchwire.webhooks._delivery_tables import ATTEMPTS, DELIVERIES, SUBS
from patchwire.webhooks._dispatcher import DISPATCH_BATCH, dispatch_events
from patchwire.webhooks._subscription_rules import (
    SECRET_PREFIX,
    check_types,
    check_url,
    generate_secret,
    secret_key,
    subscription_aad,
)
from patchwire.webhooks._wakeup import kick_workers

__all__ = ["WebhookOutbox"]

#: what a listing shows of a subscription: never its secret or its lease
SUB_PUBLIC = [c for c in SUBS.c if c.name not in ("secret", "owner", "lease_until")]


class WebhookOutbox:
    """Subscriptions and deliveries in the store; the dispatcher. API and CLI use this;
    the :class:`DeliveryWorker` sends.

    ``allow_networks``: what the SSRF guard admits besides public addresses (the
    settings' ``allow_networks``), checked on endpoint URLs at creation.
    """

    def __init__(self, store: Store, vault: Vault, *, allow_networks: Iterable[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock
        self.allow_networks = tuple(allow_networks)
        self.policy = DestinationPolicy.from_allow_list(self.allow_networks)

    @classmethod
    def of(cls, pw: Any) -> WebhookOutbox:
        """The outbox of an opened ``Patchwire`` (its store, vault and allow-list)."""
        return cls(pw.store, pw.vault, allow_networks=pw.settings.allow_networks)

    # -- subscriptions -----------------------------------------------------------------------

    async def create_subscription(self, url: str, event_types: Iterable[str], *,
                                  description: str | None = None,
                                  secret: str | None = None) -> CreatedSubscription:
        """A new active subscription; its secret (generated unless given) is returned once."""
        url = check_url(url, self.policy)
        types = check_types(event_types)
        if description is not None and len(description) > 500:
            raise InvalidSubscription("the description is longer than 500 characters")
        secret = secret.strip() if secret is not None else generate_secret()
        if not secret.startswith(SECRET_PREFIX):
            raise InvalidSubscription("the secret must start with 'whsec_'")
        secret_key(secret)  # validates
        now = self.clock()
        sub_id = new_id()
        token = self.vault.encrypt_json({"secret": secret}, aad=subscription_aad(sub_id))
        values = {"id": sub_id, "url": url, "event_types": list(types),
                  "description": description, "secret": token, "status": "active",
                  "disabled_reason": None, "disabled_at": None, "failing_since": None,
                  "retry_at": None, "owner": None, "lease_until": None, "created_at": now,
                  "updated_at": now}
        with self.store._errors("create a webhook subscription"):
            async with self.store.engine.begin() as conn:
                await conn.execute(insert(SUBS).values(**values))
        return CreatedSubscription(subscription_of(values), secret)

    async def list_subscriptions(self, *, status: str | None = None) -> list[Subscription]:
        stmt = select(*SUB_PUBLIC).order_by(SUBS.c.created_at, SUBS.c.id)
        if status is not None:
            stmt = stmt.where(SUBS.c.status == status)
        with self.store._errors("list webhook subscriptions"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [subscription_of(r._mapping) for r in rows]

    async def get_subscription(self, subscription_id: str) -> Subscription:
        with self.store._errors("read a webhook subscription"):
            async with self.store.engine.connect() as conn:
                row = (await conn.execute(
                    select(*SUB_PUBLIC).where(SUBS.c.id == subscription_id))).first()
        if row is None:
            raise UnknownSubscription(f"no webhook subscription {subscription_id!r}")
        return subscription_of(row._mapping)

    async def remove_subscription(self, subscription_id: str) -> None:
        """Delete a subscription with its deliveries and their attempt log."""
        with self.store._errors("remove a webhook subscription"):
            async with self.store.engine.begin() as conn:
                gone = await conn.execute(delete(SUBS).where(SUBS.c.id == subscription_id))
                await conn.execute(delete(ATTEMPTS).where(
                    ATTEMPTS.c.subscription_id == subscription_id))
                await conn.execute(delete(DELIVERIES).where(
                    DELIVERIES.c.subscription_id == subscription_id))
        if gone.rowcount == 0:
            raise UnknownSubscription(f"no webhook subscription {subscription_id!r}")

    async def enable(self, subscription_id: str) -> Subscription:
        """Re-enable an endpoint: its pending deliveries go again, in order, at once (the
        failure streak starts afresh)."""
        return await self._set_status(subscription_id, status="active", disabled_reason=None,
                                      disabled_at=None, failing_since=None, retry_at=None)

    async def disable(self, subscription_id: str, *,
                      reason: str = "disabled by a person") -> Subscription:
        """Stop sending to an endpoint. Its pending deliveries stay pending (they go when it
        is enabled again); events published meanwhile are not delivered to it."""
        return await self._set_status(subscription_id, status="disabled",
                                      disabled_reason=reason, disabled_at=self.clock())

    async def _set_status(self, subscription_id: str, **values: Any) -> Subscription:
        with self.store._errors("update a webhook subscription"):
            async with self.store.engine.begin() as conn:
                await conn.execute(update(SUBS).where(SUBS.c.id == subscription_id).values(
                    updated_at=self.clock(), **values))
        return await self.get_subscription(subscription_id)

    async def secret_of(self, subscription_id: str) -> str:
        """The subscription's secret (decrypted): for the sender, never for display."""
        with self.store._errors("read a webhook subscription"):
            async with self.store.engine.connect() as conn:
                token = await conn.scalar(
                    select(SUBS.c.secret).where(SUBS.c.id == subscription_id))
        if token is None:
            raise UnknownSubscription(f"no webhook subscription {subscription_id!r}")
        return str(self.vault.decrypt_json(token, aad=subscription_aad(subscription_id))
                   ["secret"])

    async def reencrypt(self) -> int:
        """Re-encrypt every subscription's secret under the vault's active key (after
        ``patchwire vault rotate``); how many were rewritten."""
        count = 0
        with self.store._errors("re-encrypt webhook subscription secrets"):
            async with self.store.engine.begin() as conn:
                rows = (await conn.execute(select(SUBS.c.id, SUBS.c.secret))).all()
                for sub_id, token in rows:
                    if not self.vault.needs_reencrypt(token):
                        continue
                    doc = self.vault.decrypt_json(token, aad=subscription_aad(sub_id))
                    await conn.execute(update(SUBS).where(SUBS.c.id == sub_id).values(
                        secret=self.vault.encrypt_json(doc, aad=subscription_aad(sub_id))))
                    count += 1
        return count

    # -- deliveries --------------------------------------------------------------------------

    async def list_deliveries(self, *, subscription_id: str | None = None,
                              status: str | None = None, limit: int = 100,
                              before: str | None = None) -> list[Delivery]:
        """Deliveries, newest first (by id, which is time-ordered)."""
        stmt = select(DELIVERIES)
        if subscription_id is not None:
            stmt = stmt.where(DELIVERIES.c.subscription_id == subscription_id)
        if status is not None:
            stmt = stmt.where(DELIVERIES.c.status == status)
        if before is not None:
            stmt = stmt.where(DELIVERIES.c.id < before)
        stmt = stmt.order_by(DELIVERIES.c.id.desc()).limit(max(1, limit))
        with self.store._errors("list webhook deliveries"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [delivery_of(r._mapping) for r in rows]

    async def get_delivery(self, delivery_id: str) -> Delivery:
        with self.store._errors("read a webhook delivery"):
            async with self.store.engine.connect() as conn:
                row = (await conn.execute(
                    select(DELIVERIES).where(DELIVERIES.c.id == delivery_id))).first()
        if row is None:
            raise UnknownDelivery(f"no webhook delivery {delivery_id!r}")
        return delivery_of(row._mapping)

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        """The attempt log of one delivery, oldest first."""
        with self.store._errors("read webhook delivery attempts"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(select(ATTEMPTS).where(
                    ATTEMPTS.c.delivery_id == delivery_id).order_by(ATTEMPTS.c.attempt))).all()
        return [attempt_of(r._mapping) for r in rows]

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again with a fresh retry schedule, whatever its status. It takes
        its place in its endpoint's order (the oldest pending goes first), and the endpoint
        is due at once."""
        now = self.clock()
        with self.store._errors("redeliver a webhook delivery"):
            async with self.store.engine.begin() as conn:
                row = (await conn.execute(update(DELIVERIES).where(
                    DELIVERIES.c.id == delivery_id).values(
                    status="pending", tries=0, next_attempt_at=now, updated_at=now).returning(
                    DELIVERIES.c.subscription_id))).first()
                if row is not None:
                    await conn.execute(update(SUBS).where(SUBS.c.id == row[0]).values(
                        retry_at=None, updated_at=now))
        if row is None:
            raise UnknownDelivery(f"no webhook delivery {delivery_id!r}")
        kick_workers(self.store)
        return await self.get_delivery(delivery_id)

    async def redeliver_failed(self, subscription_id: str) -> int:
        """Every failed delivery of an endpoint goes again (fresh schedules, in order)."""
        await self.get_subscription(subscription_id)
        now = self.clock()
        with self.store._errors("redeliver failed webhook deliveries"):
            async with self.store.engine.begin() as conn:
                result = await conn.execute(update(DELIVERIES).where(
                    DELIVERIES.c.subscription_id == subscription_id,
                    DELIVERIES.c.status == "failed").values(
                    status="pending", tries=0, next_attempt_at=now, updated_at=now))
                await conn.execute(update(SUBS).where(SUBS.c.id == subscription_id).values(
                    retry_at=None, updated_at=now))
        kick_workers(self.store)
        return int(result.rowcount or 0)

    async def count_deliveries(self, *, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(DELIVERIES)
        if status is not None:
            stmt = stmt.where(DELIVERIES.c.status == status)
        with self.store._errors("count webhook deliveries"):
            async with self.store.engine.connect() as conn:
                return int(await conn.scalar(stmt) or 0)

    # -- the dispatcher ----------------------------------------------------------------------

    async def dispatch(self, *, limit: int = DISPATCH_BATCH) -> int:
        """Turn up to ``limit`` undispatched events into deliveries (see
        :func:`~patchwire.webhooks._dispatcher.dispatch_events`); how many were taken."""
        return await dispatch_events(self.store, self.clock(), limit=limit)
