"""A connection's lifecycle as events for the outbound webhooks: ``connection.created``,
``connection.updated``, ``connection.deleted``, ``connection.needs_reauth``,
``connection.unhealthy`` and ``connection.recovered``.

Health is judged in process, from the call path's records as they are made (a ring of the
last outcomes per connection, updated in O(1)), never by reading the call log. When this
process's view crosses a threshold it writes the connection's state in the store
(:meth:`Store.set_connection_state`), which says whether the row changed: only the process
whose write changed it publishes the event, so an event is sent once per change however
many processes see it.

Hysteresis, so a connection does not flap (:class:`HealthPolicy`, from the settings):

* **unhealthy** when a call failed fast on the connector's open circuit breaker, or when at
  least ``min_calls`` of the last ``window`` outcomes are known and fewer than
  ``unhealthy_below`` of them succeeded;
* **recovered** (from unhealthy) only after ``recover_streak`` successes in a row, with at
  least ``recovered_at`` of the window's outcomes successes (or fewer than ``min_calls``
  known since the breaker opened: its open spell is not counted, the breaker already
  judged it).

Alternating outcomes (50%) neither make a healthy connection unhealthy nor recover an
unhealthy one (no streak). A call the upstream answered with a client error (404, 409,
400/422) counts as a success — the connection works, the request was wrong — and a 429
counts neither way, as for the breaker; every other failure counts (refused credentials,
the upstream's 5xx, timeouts, transport errors, answers that cannot be read, settings the
request cannot be built from, an open breaker).

Payloads name the connection, its connector and its end user; never a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from patchwire.errors import LookupFailed, PatchwireError
from patchwire.store import Store
from patchwire.store.records import CallRecord, ConnectionRecord

__all__ = ["CONNECTION_EVENTS", "ConnectionEvents", "HealthChange", "HealthPolicy",
           "HealthTracker", "event_data"]

log = logging.getLogger("patchwire.connections")

#: the event types a connection's lifecycle publishes
CONNECTION_EVENTS = ("connection.created", "connection.updated", "connection.deleted",
                     "connection.needs_reauth", "connection.unhealthy",
                     "connection.recovered")

#: error classes of the call log that say the upstream answered, refusing the request (the
#: caller's to fix): the connection works. Every other error class counts as a failure
ANSWERED = frozenset({"not_found", "conflict", "upstream_validation_error",
                      "invalid_input", "pagination_error"})
#: a 429 says "slow down", not "broken": it counts neither way
NEUTRAL = frozenset({"rate_limited"})

Health = Literal["healthy", "unhealthy"]


@dataclass(frozen=True)
class HealthPolicy:
    """When a connection turns unhealthy and when it has recovered (see the module)."""

    window: int = 20
    min_calls: int = 10
    unhealthy_below: float = 0.5
    recovered_at: float = 0.8
    recover_streak: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.min_calls <= self.window:
            raise ValueError("health: min_calls must be between 1 and the window")
        if not 1 <= self.recover_streak <= self.window:
            raise ValueError("health: recover_streak must be between 1 and the window")
        if not 0 <= self.unhealthy_below <= self.recovered_at <= 1:
            raise ValueError("health: 0 <= unhealthy_below <= recovered_at <= 1")


@dataclass(frozen=True)
class HealthChange:
    """A connection crossed a threshold in this process's view."""

    state: Health
    reason: Literal["breaker_open", "success_rate", "streak"]
    success_rate: float | None
    calls: int


class _Ring:
    __slots__ = ("ok", "outcomes", "state", "streak")

    def __init__(self, size: int) -> None:
        self.outcomes: deque[bool] = deque(maxlen=size)
        self.ok = 0
        self.streak = 0
        #: what this process last wrote to the store (None: nothing yet)
        self.state: Health | None = None


class HealthTracker:
    """The last outcomes of each connection's calls, and when they cross a threshold."""

    def __init__(self, policy: HealthPolicy | None = None) -> None:
        self.policy = policy or HealthPolicy()
        self._rings: dict[str, _Ring] = {}

    def forget(self, connection: str) -> None:
        self._rings.pop(connection, None)

    def observe(self, connection: str, error_class: str | None) -> HealthChange | None:
        """One call's outcome (``error_class`` None: it succeeded); the change it makes,
        if any."""
        if error_class in NEUTRAL:
            return None
        ring = self._rings.get(connection)
        if ring is None:
            ring = self._rings[connection] = _Ring(self.policy.window)
        outcomes = ring.outcomes
        if error_class == "circuit_open":
            # the breaker judged the upstream; its open spell says nothing more per call
            outcomes.clear()
            ring.ok = ring.streak = 0
            return self._become(ring, "unhealthy", "breaker_open")
        ok = error_class is None or error_class in ANSWERED
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            ring.ok -= 1
        outcomes.append(ok)
        if ok:
            ring.ok += 1
            ring.streak += 1
        else:
            ring.streak = 0
        n = len(outcomes)
        policy = self.policy
        if ring.state != "unhealthy":
            if n >= policy.min_calls and ring.ok < policy.unhealthy_below * n:
                return self._become(ring, "unhealthy", "success_rate")
            if ring.state is None and ring.streak >= policy.recover_streak:
                # first sight of this connection working: an unhealthy mark another
                # process (or an earlier run) left must not stay forever
                return self._become(ring, "healthy", "streak")
            return None
        if ring.streak >= policy.recover_streak and (
                n < policy.min_calls or ring.ok >= policy.recovered_at * n):
            return self._become(ring, "healthy", "streak" if n < policy.min_calls
                                else "success_rate")
        return None

    @staticmethod
    def _become(ring: _Ring, state: Health, reason: Literal[
            "breaker_open", "success_rate", "streak"]) -> HealthChange | None:
        if ring.state == state:
            return None
        ring.state = state
        n = len(ring.outcomes)
        return HealthChange(state, reason, round(ring.ok / n, 3) if n else None, n)


def event_data(rec: ConnectionRecord, **extra: Any) -> dict[str, Any]:
    """What an event says of a connection: who and what, never a setting or secret."""
    return {"connection": rec.name, "connector": rec.connector, "end_user": rec.end_user,
            "label": rec.label, **extra}


class ConnectionEvents:
    """Publishes connections' lifecycle events; judges their health from the calls.

    What the call path tells it (a call's record, a token refused after a refresh) is
    handled in a task of its own, off the call's way; :meth:`drain` awaits them (the
    runtime's flush and close)."""

    def __init__(self, store: Store, policy: HealthPolicy | None = None) -> None:
        self._store = store
        self.health = HealthTracker(policy)
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, type: str, rec: ConnectionRecord, **extra: Any) -> None:
        """Record event ``type`` of connection ``rec`` for delivery to the subscriptions
        that take it."""
        from patchwire.webhooks import publish  # the webhooks package loads on first use

        await publish(self._store, type, event_data(rec, **extra), source="connection")

    # -- told by the call path (synchronously, on the call's way) ---------------------------

    def observe(self, record: CallRecord) -> None:
        """A call was made: note its outcome; a crossed threshold is written and
        published in the background."""
        if record.connection is None:
            return
        change = self.health.observe(
            record.connection, record.error_class or "error" if record.status != "ok"
            else None)
        if change is not None:
            self._spawn(self._health_changed(record.connection, change))

    def reauth_needed(self, name: str) -> None:
        """The provider refused to renew the connection's tokens, or the upstream refused
        a token just renewed: a person must connect it again."""
        self._spawn(self._mark_reauth(name))

    def forget(self, name: str) -> None:
        self.health.forget(name)

    async def drain(self) -> None:
        """Wait for the state writes and events in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- the background part ----------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mark_reauth(self, name: str) -> None:
        try:
            if await self._store.set_connection_state(name, needs_reauth=True):
                rec = await self._store.get_connection(name)
                await self.publish("connection.needs_reauth", rec)
        except LookupFailed:
            pass  # removed meanwhile: nobody to tell
        except PatchwireError as exc:
            log.warning("cannot note that connection %s needs to be authorised again: %s",
                        name, exc)

    async def _health_changed(self, name: str, change: HealthChange) -> None:
        try:
            if change.state == "unhealthy":
                changed = await self._store.set_connection_state(name, health="unhealthy")
            else:
                changed = await self._store.set_connection_state(name, healthy=True)
            if changed:
                rec = await self._store.get_connection(name)
                await self.publish(
                    "connection.unhealthy" if change.state == "unhealthy"
                    else "connection.recovered", rec, reason=change.reason,
                    success_rate=change.success_rate, calls=change.calls)
        except LookupFailed:
            pass
        except PatchwireError as exc:
            log.warning("cannot note the health of connection %s: %s", name, exc)
