"""The active API keys, cached: checking a key costs a dict lookup and a hash, not a query."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from patchwire.errors import PatchwireError
from patchwire.store.keys import ApiKeyRecord, KeyRepository, parse_key, secret_matches
from patchwire.store.records import utcnow

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = ["TOUCH_INTERVAL", "KeyRing"]

log = logging.getLogger("patchwire.auth")

#: last_used_at is written at most this often per key (a write per request would cost more
#: than the request)
TOUCH_INTERVAL: Final = 60.0


class KeyRing:
    """The active keys, re-read from the store at most every ``ttl`` seconds, so checking
    a key costs a dict lookup and a hash rather than a query per request. A key created or
    revoked with the CLI takes effect within ``ttl``."""

    def __init__(self, store: Callable[[], Store], *, ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.ttl = ttl
        self._clock = clock
        self._keys: dict[str, ApiKeyRecord] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def invalidate(self) -> None:
        self._loaded_at = None

    async def _fresh(self) -> dict[str, ApiKeyRecord]:
        now = self._clock()
        if self._loaded_at is not None and now - self._loaded_at < self.ttl:
            return self._keys
        if self._loading is not None:  # one query however many requests wait for it
            await asyncio.shield(self._loading)
            return self._keys
        self._loading = asyncio.get_running_loop().create_future()
        try:
            keys = await KeyRepository(self._store()).list()
            self._keys = {k.id: k for k in keys}
            self._loaded_at = self._clock()
            self._loading.set_result(None)
        except BaseException as exc:
            self._loading.set_exception(exc)
            self._loading.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            self._loading = None
        return self._keys

    async def any_active(self) -> bool:
        return bool(await self._fresh())

    async def verify(self, text: str) -> ApiKeyRecord | None:
        """The active key ``text`` is, or None (malformed, unknown, revoked, wrong secret)."""
        parsed = parse_key(text)
        if parsed is None:
            return None
        key_id, secret = parsed
        record = (await self._fresh()).get(key_id)
        if record is None:
            return None
        if not secret_matches(record, secret):
            return None
        return record

    def touch(self, key_id: str) -> None:
        """Note the key's use (written in the background, at most every TOUCH_INTERVAL)."""
        now = self._clock()
        if now - self._touched.get(key_id, -TOUCH_INTERVAL) < TOUCH_INTERVAL:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._touch(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(self, key_id: str) -> None:
        try:
            await KeyRepository(self._store()).touch(key_id, utcnow())
        except PatchwireError as exc:  # bookkeeping only: never fail a request for it
            log.warning("could not record the use of API key %s: %s", key_id, exc)
