"""End-user tokens, verified and cached briefly: a token checked on every tool call costs a
dict lookup and a hash, not a query. A revoked token stops working within ``ttl``."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from patchwire.store.end_users import EndUserToken, EndUserTokenRepository, parse_end_user_token
from patchwire.store.records import utcnow

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = ["EndUserTokenRing"]

#: tokens remembered at once (the oldest are forgotten first, and read again when used)
MAX_CACHED: Final = 10_000


class EndUserTokenRing:
    """Verified end-user tokens by id, each re-read from the store after ``ttl`` seconds."""

    def __init__(self, store: Callable[[], Store], *, ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.ttl = ttl
        self._clock = clock
        self._cached: OrderedDict[str, tuple[EndUserToken | None, float]] = OrderedDict()

    def forget(self, token_id: str | None = None) -> None:
        """Drop what is cached of one token (a revocation here), or of every token."""
        if token_id is None:
            self._cached.clear()
        else:
            self._cached.pop(token_id, None)

    async def verify(self, text: str) -> EndUserToken | None:
        """The active token ``text`` is, or None (malformed, unknown, expired, revoked, wrong
        secret)."""
        parsed = parse_end_user_token(text)
        if parsed is None:
            return None
        token_id, secret = parsed
        now = self._clock()
        hit = self._cached.get(token_id)
        if hit is None or now - hit[1] >= self.ttl:
            found = await EndUserTokenRepository(self._store()).find(token_id)
            hit = (found, now)
            self._cached[token_id] = hit
            self._cached.move_to_end(token_id)
            while len(self._cached) > MAX_CACHED:
                self._cached.popitem(last=False)
        token = hit[0]
        if token is None or not token.matches(secret) or not token.active(utcnow()):
            return None
        return token
