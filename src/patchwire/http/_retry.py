"""Retry decisions as data: which failures are transient, how long to back off, and what
the server asked for (``Retry-After``, reset headers).

Pure functions over a :class:`~patchwire.connectors.spec.RetryPolicy`, so the rules can be
tested without a network and the HTTP core stays a thin loop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

from patchwire.connectors.spec import RetryPolicy

__all__ = [
    "RetryDecision",
    "backoff_delay",
    "instant_retries",
    "is_transient_status",
    "parse_retry_after",
    "retries_are_instant",
    "server_delay",
]

# A context variable, not a module flag: the setting holds for the code that turned it on
# and the tasks it starts (they copy the context), so a test cannot leak it into the next
# one, and two tests in one process (or a test beside the app it drives) never share it.
_INSTANT: ContextVar[bool] = ContextVar("patchwire_instant_retries", default=False)


@contextmanager
def instant_retries(enabled: bool = True) -> Iterator[None]:
    """Within the block (and in tasks started inside it), backoff waits become zero and a
    429 does not pause the connection: every retry *decision* stays the same, only the
    waiting goes. For tests; ``patchwire.testing`` offers it as a pytest fixture."""
    token = _INSTANT.set(enabled)
    try:
        yield
    finally:
        try:
            _INSTANT.reset(token)
        except ValueError:  # left in another context than entered: restore by value
            old = token.old_value
            _INSTANT.set(False if old is Token.MISSING else old)


def retries_are_instant() -> bool:
    """Whether backoff waits are zero here (see :func:`instant_retries`)."""
    return _INSTANT.get()


@dataclass(slots=True)
class RetryDecision:
    """What happened to one logical call: attempts made, retries taken, time waited."""

    attempts: int = 0
    retries: int = 0
    waited: float = 0.0
    #: why retrying stopped early, when it did ("budget", "not idempotent", ...)
    stopped: str | None = None
    #: seconds the upstream asked to wait when the call gave up (429/503 beyond the cap)
    retry_after: float | None = None
    #: seconds spent waiting for rate-limit slots, the concurrency cap and 429 pauses
    #: (added to only when a wait happens, so the fast path never reads a clock for it)
    rate_limit_wait: float = 0.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date, RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time() if now is None else now))


def server_delay(
    headers: Mapping[str, str], policy: RetryPolicy, *, now: float | None = None
) -> float | None:
    """The wait the server asked for: ``Retry-After`` first, then the policy's reset headers.

    Reset headers come in two conventions, seconds to wait (``RateLimit-Reset``) or an
    epoch timestamp (``X-RateLimit-Reset``); a value above 1e9 can only be the latter.
    """
    delay = parse_retry_after(headers.get("Retry-After"), now=now)
    if delay is not None:
        return delay
    for name in policy.reset_headers:
        raw = headers.get(name)
        if raw and raw.replace(".", "", 1).isdigit():
            value = float(raw)
            if value > 1e9:
                return max(0.0, value - (time() if now is None else now))
            return value
    return None


def is_transient_status(status: int, policy: RetryPolicy, *, idempotent: bool) -> bool:
    """429/502/503/504 (the policy's list) always; 500 only when repeating is harmless."""
    return status in policy.retry_on_status or (status == 500 and idempotent)


def backoff_delay(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (retry_number starts at 1).

    Full jitter (uniform over [0, cap]) spreads retries of many callers hit by the same
    failure, where a fixed exponential schedule would have them return in lockstep.
    """
    cap = min(policy.backoff_max, policy.backoff_initial * (2 ** (retry_number - 1)))
    return rng.uniform(0, cap)
