"""Failed authentications, counted per client address."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["FailedAuthLimiter"]


class FailedAuthLimiter:
    """At most ``max_failures`` failed authentications per client address in any
    ``window`` seconds; past that the address's wrong or missing keys get 429 until the
    oldest failure ages out.

    A valid key is still served from a limited address: the people and backends sharing it
    (a NAT, a host, a chatbot backend with one bad key in its configuration) must not be
    locked out by whoever fails there. That gives a guesser nothing: a key's 256-bit secret
    cannot be guessed at any rate, so the limit exists to bound the noise and cost of
    failures, not to be the secret's protection. A success does not clear the count, or a
    guesser could ride on the others' successes."""

    def __init__(self, max_failures: int = 10, window: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        times = self._failures.get(client)
        if times is None:
            return None
        now = self._clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        if len(times) < self.max_failures:
            return None
        return max(0.0, times[0] + self.window - now)

    def fail(self, client: str) -> None:
        times = self._failures.get(client)
        if times is None:
            if len(self._failures) >= self._max_clients:
                self._prune()
            times = self._failures[client] = deque(maxlen=self.max_failures)
        times.append(self._clock())

    def _prune(self) -> None:
        # memory stays bounded under a spray from many addresses: drop stale entries, then
        # the oldest-inserted ones
        cutoff = self._clock() - self.window
        for client in [c for c, t in self._failures.items() if not t or t[-1] <= cutoff]:
            del self._failures[client]
        while len(self._failures) >= self._max_clients:
            del self._failures[next(iter(self._failures))]
