"""Counters a test or benchmark reads to see what the sandbox actually served."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._chaos import ChaosCounters


@dataclass
class SandboxStats:
    requests: Counter[str] = field(default_factory=Counter)
    """Requests received per API (``shop``...), whatever their outcome."""
    statuses: Counter[int] = field(default_factory=Counter)
    """Responses sent, by status, across all APIs (dropped connections excluded)."""
    rate_limited: int = 0
    unauthorized: int = 0
    chaos: ChaosCounters = field(default_factory=ChaosCounters)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def clear(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.rate_limited = 0
        self.unauthorized = 0
        self.chaos = ChaosCounters()

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "requests": dict(self.requests),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rate_limited": self.rate_limited,
            "unauthorized": self.unauthorized,
            "chaos": {
                "errors": self.chaos.errors,
                "dropped": self.chaos.dropped,
                "held": self.chaos.held,
            },
        }
