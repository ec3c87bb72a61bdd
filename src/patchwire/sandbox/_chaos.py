"""Chaos switches: injected errors, latency, held requests, dropped connections.

Every random choice comes from one ``random.Random(seed)`` so a test that sets
``error_rate=0.5`` sees the same sequence of failures on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._responses import error_body, json_response

DEFAULT_RATE_LIMIT_PER_MINUTE = 100_000


@dataclass(slots=True)
class ChaosSettings:
    """How badly one API (or all of them) misbehaves. The defaults are well-behaved."""

    error_rate: float = 0.0
    """Fraction of requests answered with one of ``error_statuses`` instead of running."""
    error_statuses: tuple[int, ...] = (500, 503)
    latency_ms: float = 0.0
    """Added to every request; ``jitter_ms`` adds a uniform 0..jitter on top."""
    jitter_ms: float = 0.0
    timeout_rate: float = 0.0
    """Fraction of requests held for ``timeout_hold_s`` before being answered normally."""
    timeout_hold_s: float = 60.0
    drop_rate: float = 0.0
    """Fraction of requests whose TCP connection is closed without any response."""
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    """Per credential and API, in aligned one-minute windows. The default leaves a
    few-thousand-call test alone; a benchmark raises it for its load (``--rate-limit``)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("error_rate", "timeout_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        for name in ("latency_ms", "jitter_ms", "timeout_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1")
        if not self.error_statuses or any(not 500 <= s <= 599 for s in self.error_statuses):
            raise ValueError("error_statuses must be a non-empty list of 5xx statuses")

    @property
    def disruptive(self) -> bool:
        return bool(
            self.error_rate
            or self.latency_ms
            or self.jitter_ms
            or self.timeout_rate
            or self.drop_rate
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        return data


CHAOS_FIELDS = frozenset(f.name for f in dataclasses.fields(ChaosSettings))


def coerce_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Checks names and types of settings coming from Python keywords or JSON."""
    unknown = set(fields) - CHAOS_FIELDS
    if unknown:
        raise ValueError(f"unknown chaos settings: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "error_statuses":
            if not isinstance(value, list | tuple) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise ValueError("error_statuses must be a list of integers")
            out[name] = tuple(value)
        elif name == "rate_limit_per_minute":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("rate_limit_per_minute must be an integer")
            out[name] = value
        else:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{name} must be a number")
            out[name] = float(value)
    return out


@dataclass
class ChaosControl:
    """Global settings plus per-API overrides, and the seeded dice they are rolled with.

    :meth:`clear` restores the global settings the sandbox started with, so a rate limit
    given at start (``--rate-limit``) outlives ``DELETE /_sandbox/chaos``.
    """

    global_settings: ChaosSettings = field(default_factory=ChaosSettings)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    rng: random.Random = field(init=False)
    release: asyncio.Event | None = field(default=None, init=False)
    """Set on shutdown so held requests end at once instead of blocking the stop."""
    initial: ChaosSettings = field(init=False)
    """A copy of the global settings at start: what :meth:`clear` goes back to."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.initial = dataclasses.replace(self.global_settings)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def effective(self, api: str) -> ChaosSettings:
        override = self.overrides.get(api)
        if not override:
            return self.global_settings
        return dataclasses.replace(self.global_settings, **override)

    def update(self, api: str | None, fields: dict[str, Any]) -> None:
        coerced = coerce_fields(fields)
        if api is None:
            candidate = dataclasses.replace(self.global_settings, **coerced)
            for name in coerced:
                setattr(self.global_settings, name, getattr(candidate, name))
        else:
            merged = {**self.overrides.get(api, {}), **coerced}
            dataclasses.replace(self.global_settings, **merged)  # validates
            self.overrides[api] = merged

    def clear(self, api: str | None = None) -> None:
        if api is None:
            self.overrides.clear()
            for name in CHAOS_FIELDS:
                setattr(self.global_settings, name, getattr(self.initial, name))
        else:
            self.overrides.pop(api, None)

    async def disrupt(
        self, request: web.Request, settings: ChaosSettings, stats: ChaosCounters
    ) -> web.StreamResponse | None:
        """Returns a response to send instead of running the handler, or None to proceed."""
        rng = self.rng
        if settings.drop_rate and rng.random() < settings.drop_rate:
            stats.dropped += 1
            transport = request.transport
            if transport is not None:
                transport.close()
            # aiohttp's attempt to write this fails on the closed transport, which it
            # treats as a client disconnect: nothing reaches the client.
            return web.Response(status=500)
        if settings.timeout_rate and rng.random() < settings.timeout_rate:
            stats.held += 1
            await self._hold(settings.timeout_hold_s)
        delay_ms = settings.latency_ms
        if settings.jitter_ms:
            delay_ms += rng.uniform(0.0, settings.jitter_ms)
        if delay_ms:
            await self._hold(delay_ms / 1000.0)
        if settings.error_rate and rng.random() < settings.error_rate:
            stats.errors += 1
            status = rng.choice(settings.error_statuses)
            headers = {"Retry-After": "1"} if status == 503 else None
            return json_response(
                error_body("sandbox_chaos", f"injected {status} (sandbox chaos)"),
                status,
                headers,
            )
        return None

    async def _hold(self, seconds: float) -> None:
        if self.release is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "global": self.global_settings.to_json(),
            "overrides": {api: dict(v) for api, v in self.overrides.items()},
            "seed": self.seed,
        }


@dataclass(slots=True)
class ChaosCounters:
    errors: int = 0
    dropped: int = 0
    held: int = 0
