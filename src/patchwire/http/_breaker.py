"""Circuit breaker per connector: stop calling an upstream that is failing.

Closed: calls flow; the outcomes of the last ``window_calls`` calls made within the last
``window`` seconds are kept. When at least ``min_calls`` of them are kept and the failure
rate among them reaches ``failure_rate``, the breaker opens. Counting the most recent
calls rather than every call of a time window matters: after a long healthy spell at
high traffic, a window of 30 s would hold thousands of successes and the breaker would
open only once as many failures had hit the upstream. Open: calls fail at once with
:class:`~patchwire.errors.CircuitOpenError` naming the time of the next probe. After
``open_for`` seconds the breaker is half-open: exactly one call (the probe) goes through
and every other call still fails fast; success closes the breaker, failure re-opens it.

Only transient failures count (connect errors, timeouts, 5xx and the other statuses the
retry policy treats as transient): a 404 says nothing about the upstream's health.

A 429 counts neither way (:meth:`CircuitBreaker.record_status`). A rate-limited upstream
is answering, deliberately: it asks the caller to slow down, and the rate limiter already
does (the connection's bucket pauses for ``Retry-After``). Counting 429s as failures would
turn "slow down" into an outage of ``open_for`` seconds for every caller of the connector
(a busy loop over the upstream's quota opened the breaker). Counting them as successes
would let an overloaded upstream that alternates 503 and 429 dilute its failure rate and
keep the breaker closed. So a 429 leaves the window as it was, and a probe answered by a
429 proves nothing: the breaker stays half-open and the next call probes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["BreakerPolicy", "BreakerState", "CircuitBreaker"]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_rate: float = 0.5
    min_calls: int = 20
    window_calls: int = 100
    window: float = 60.0
    open_for: float = 5.0


_DEFAULT_POLICY = BreakerPolicy()


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the dashboard and ``pw.breaker_state(connector)`` show."""

    connector: str
    state: State
    failures: int
    calls: int
    opened_at: float | None  # wall-clock epoch seconds
    probe_at: float | None  # wall-clock epoch seconds of the next probe when open
    #: when it opens (its policy's): at least ``min_calls`` of its window's requests, at
    #: least ``failure_rate`` of them failed, within the last ``window`` seconds — shown
    #: next to the counts so that "closed, 9/9 failed" explains itself
    min_calls: int = _DEFAULT_POLICY.min_calls
    failure_rate: float = _DEFAULT_POLICY.failure_rate
    window: float = _DEFAULT_POLICY.window

    def to_dict(self) -> dict[str, object]:
        return {"connector": self.connector, "state": self.state, "failures": self.failures,
                "calls": self.calls, "opened_at": self.opened_at, "probe_at": self.probe_at}


class CircuitBreaker:
    __slots__ = ("_clock", "_fails", "_opened_at", "_outcomes", "_probe_at", "_probing",
                 "connector", "policy", "state")

    def __init__(self, connector: str, policy: BreakerPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connector = connector
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        # (time, failed) of recent calls, newest last; _fails counts the failed ones
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._fails = 0
        self.state: State = "closed"
        self._opened_at = 0.0
        self._probe_at = 0.0
        self._probing = False

    def allow(self) -> float | None:
        """None when the call may go; else the monotonic time of the next probe.

        A call that is let through must be followed by :meth:`record`.
        """
        if self.state == "closed":
            return None
        now = self._clock()
        if self.state == "open":
            if now < self._probe_at:
                return self._probe_at
            self.state = "half_open"
            self._probing = False
        if self._probing:  # half-open: one probe at a time
            return now + self.policy.open_for
        self._probing = True
        return None

    def record(self, ok: bool) -> None:
        if self.state == "half_open":
            self._probing = False
            if ok:
                self._close()
            else:
                self._open()
            return
        if self.state == "open":
            return  # a call that started before the breaker opened
        now = self._clock()
        outcomes = self._outcomes
        outcomes.append((now, not ok))
        if not ok:
            self._fails += 1
        self._expire(now)
        if ok:
            return
        calls = len(outcomes)
        if calls >= self.policy.min_calls and self._fails >= self.policy.failure_rate * calls:
            self._open()

    def record_status(self, status: int, *, transient: bool) -> None:
        """Counts one HTTP answer: ``transient`` (as the retry policy judges the status) or
        5xx is a failure, 429 counts neither way (see the module docstring), any other
        status is a success."""
        if status == 429:
            self.release_probe()
            return
        self.record(not (transient or status >= 500))

    def release_probe(self) -> None:
        """The probe ended without an answer about the upstream (e.g. it was cancelled)."""
        if self.state == "half_open":
            self._probing = False

    def _expire(self, now: float) -> None:
        outcomes = self._outcomes
        oldest = now - self.policy.window
        while outcomes and (len(outcomes) > self.policy.window_calls
                            or outcomes[0][0] < oldest):
            if outcomes.popleft()[1]:
                self._fails -= 1

    def _open(self) -> None:
        self.state = "open"
        self._opened_at = self._clock()
        self._probe_at = self._opened_at + self.policy.open_for

    def _close(self) -> None:
        self.state = "closed"
        self._outcomes.clear()
        self._fails = 0

    def snapshot(self) -> BreakerState:
        # monotonic times shown as wall-clock times for people and APIs
        offset = time.time() - self._clock()
        self._expire(self._clock())
        calls, fails = len(self._outcomes), self._fails
        opened = self.state != "closed"
        return BreakerState(
            self.connector, self.state, fails, calls,
            self._opened_at + offset if opened else None,
            self._probe_at + offset if self.state == "open" else None,
            self.policy.min_calls, self.policy.failure_rate, self.policy.window,
        )
