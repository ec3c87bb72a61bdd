"""Background workers as the runtime runs them: anything that starts and stops (a flow
engine, the webhook inbox, the delivery worker, the sync engine), plus the two that are
loops of their own: the OAuth2 token refresh and a remote engine's executor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from patchwire.auth import DEFAULT_MAX_TOKEN_AGE
from patchwire.errors import PatchwireError
from patchwire.flows import Executor

__all__ = ["BACKGROUND_REFRESH_INTERVAL", "ExecutorWorker", "TokenRefresh", "Watched", "Worker"]

#: how often the background refresh looks for OAuth2 tokens due for renewal
BACKGROUND_REFRESH_INTERVAL = 3600.0

log = logging.getLogger("patchwire.oauth")


class Worker(Protocol):
    """Background work the runtime starts and stops: ``start()`` returns once it runs,
    ``stop()`` once it stopped (work in flight released, to resume elsewhere)."""

    async def start(self) -> object: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Watched(Protocol):
    """A worker that can end on its own (a failure): the runtime stops everything then."""

    def ended(self) -> asyncio.Future[None] | None: ...


class TokenRefresh:
    """Renews OAuth2 tokens due for renewal now and then every ``interval`` seconds, so
    refresh tokens of idle connections stay alive. ``refresh(max_age)`` renews and returns
    the names renewed; ``sleep`` is replaceable for tests."""

    def __init__(self, refresh: Callable[[float], Awaitable[list[str]]], *,
                 interval: float = BACKGROUND_REFRESH_INTERVAL,
                 max_age: float = DEFAULT_MAX_TOKEN_AGE,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self._refresh = refresh
        self.interval = interval
        self.max_age = max_age
        self._sleep = sleep
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> TokenRefresh:
        self.launch()
        return self

    def launch(self) -> asyncio.Task[None]:
        """Start the loop now (from synchronous code); its task. Idempotent."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                self._loop(), name="patchwire-oauth2-refresh")
        return self.task

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                renewed = await self._refresh(self.max_age)
                if renewed:
                    log.info("background refresh renewed %d connection(s)", len(renewed))
            except PatchwireError as exc:  # store down, key problem: try again next round
                log.warning("background refresh failed: %s", exc.code)
            await self._sleep(self.interval)


class ExecutorWorker:
    """Runs a remote engine's executor (a Temporal worker) in this process. ``make``
    builds it when started: after the engine, which it needs connected."""

    def __init__(self, make: Callable[[], Executor]) -> None:
        self._make = make
        self.executor: Executor | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> ExecutorWorker:
        if self._task is None:
            self.executor = self._make()
            self._task = asyncio.get_running_loop().create_task(self.executor.run())
        return self

    def ended(self) -> asyncio.Future[None] | None:
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done() and self.executor is not None:
            await self.executor.shutdown()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
