"""Running the sandbox on a real loopback socket: ``Sandbox`` and ``serve_forever``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import date
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from patchwire.signals import stop_on_signals
from patchwire.webhooks import SchemeSettings

from ._app import API_NAMES, SandboxState, build_app
from ._chaos import DEFAULT_RATE_LIMIT_PER_MINUTE, ChaosSettings
from ._stats import SandboxStats
from ._webhooks import SANDBOX_WEBHOOK_SCHEMES, WebhookCounters

SHUTDOWN_TIMEOUT_S = 2.0


class Sandbox:
    """The four sandbox APIs on one loopback port.

    ``port=0`` picks a free port; read it back from :attr:`url` after :meth:`start`.

    With ``webhook_url`` (or :meth:`set_webhook_url` later) the APIs post signed webhooks
    for their own events there, signed with ``webhook_secrets`` (defaults:
    ``SANDBOX_WEBHOOK_SECRETS``) under each API's scheme (:meth:`webhook_scheme`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        chaos: ChaosSettings | None = None,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        calendar_anchor: date | None = None,
        webhook_url: str | None = None,
        webhook_secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._state = SandboxState(
            seed=seed,
            chaos=chaos,
            credentials=credentials,
            calendar_anchor=calendar_anchor,
            webhook_url=webhook_url,
            webhook_secrets=webhook_secrets,
        )
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox is not running; await start() first")
        return self._url

    def api_url(self, api: str) -> str:
        if api not in API_NAMES:
            raise ValueError(f"unknown sandbox API {api!r}; expected one of {list(API_NAMES)}")
        return f"{self.url}/{api}"

    @property
    def credentials(self) -> dict[str, dict[str, str]]:
        """The credentials this instance accepts (the defaults plus any overrides)."""
        return {api: dict(fields) for api, fields in self._state.credentials.items()}

    @property
    def chaos(self) -> ChaosSettings:
        """The global chaos settings; mutate fields directly or use :meth:`set_chaos`."""
        return self._state.chaos.global_settings

    def set_chaos(self, api: str | None = None, *, seed: int | None = None, **fields: Any) -> None:
        """Changes chaos for every API (``api=None``) or overrides it for one.

        ``seed`` re-seeds the dice so a sequence of chaotic outcomes can be replayed.
        """
        self._state.set_chaos(api, seed=seed, **fields)

    def clear_chaos(self, api: str | None = None) -> None:
        """Drops one API's overrides, or (``api=None``) restores well-behaved defaults."""
        self._state.chaos.clear(api)

    def chaos_for(self, api: str) -> ChaosSettings:
        """The settings in effect for ``api`` (global merged with its overrides)."""
        return self._state.chaos.effective(api)

    def reset(self, seed: int | None = None) -> None:
        self._state.reset(seed)

    @property
    def stats(self) -> SandboxStats:
        return self._state.stats

    @property
    def webhook_url(self) -> str | None:
        return self._state.webhooks.url

    def set_webhook_url(self, url: str | None) -> None:
        """Sends the APIs' events to ``url`` from now on; ``None`` stops sending."""
        self._state.webhooks.set_url(url)

    @property
    def webhook_secrets(self) -> dict[str, str]:
        """The secret each API signs its webhooks with (the defaults plus overrides)."""
        return dict(self._state.webhooks.secrets)

    @staticmethod
    def webhook_scheme(api: str) -> SchemeSettings:
        """How ``api`` signs its webhooks: the settings a receiver verifies them with."""
        if api not in SANDBOX_WEBHOOK_SCHEMES:
            raise ValueError(f"unknown sandbox API {api!r}; expected one of {list(API_NAMES)}")
        return SANDBOX_WEBHOOK_SCHEMES[api]

    @property
    def webhook_stats(self) -> WebhookCounters:
        """Events emitted, sent, failed, dropped and retried (also in ``/_sandbox/stats``)."""
        return self._state.webhooks.counters

    async def flush_webhooks(self, within_s: float = 5.0) -> None:
        """Waits until every queued webhook was delivered or given up on (TimeoutError)."""
        await self._state.webhooks.flush(within_s)

    @property
    def state(self) -> SandboxState:
        return self._state

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        runner = web.AppRunner(
            build_app(self._state), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._url = f"http://{host}:{self.port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        release = self._state.chaos.release
        if release is not None:
            release.set()
        await runner.cleanup()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_forever(
    host: str,
    port: int,
    *,
    seed: int = 0,
    ready: Callable[[str], None] | None = None,
    webhook_url: str | None = None,
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
) -> None:
    """Runs a sandbox until cancelled, SIGINT or SIGTERM; ``ready(url)`` once it listens.

    ``webhook_url``: where the APIs send their signed events (none when unset).
    ``rate_limit_per_minute``: requests per credential and API before a 429 (ValueError
    below 1).
    """
    chaos = ChaosSettings(rate_limit_per_minute=rate_limit_per_minute)
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with Sandbox(host, port, seed=seed, chaos=chaos,
                           webhook_url=webhook_url) as sandbox:
            if ready is not None:
                ready(sandbox.url)
            await stop.wait()
