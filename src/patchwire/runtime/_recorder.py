"""Batched writers: the call log (and the tool audit) are appended in memory and written to
the store in batches.

One INSERT per call would make the database the bottleneck of the call path (and, on
SQLite, serialise every call behind a file lock); batching keeps the per-call cost to an
append while records still reach the store within ``interval`` seconds and on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from patchwire.errors import StoreError

__all__ = ["BatchWriter"]

T = TypeVar("T")

log = logging.getLogger("patchwire.calls")


class BatchWriter(Generic[T]):
    """Appends records in memory; ``write`` stores a batch of them."""

    def __init__(
        self, write: Callable[[Sequence[T]], Awaitable[None]], *, what: str = "records",
        interval: float = 0.25, batch: int = 1000, max_pending: int = 100_000,
    ) -> None:
        self._write = write
        self._what = what
        self._interval = interval
        self._batch = batch
        self._max_pending = max_pending
        self._pending: list[T] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0

    def record(self, rec: T) -> None:
        if len(self._pending) >= self._max_pending:
            # The store is down or far behind; keep memory bounded and say so.
            self.dropped += 1
            return
        self._pending.append(rec)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def _run(self) -> None:
        while self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
                try:
                    await self._write(batch)
                except StoreError as exc:
                    log.warning("%s write failed, will retry: %s", self._what, exc)
                    self._pending[:0] = batch
                    return

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            log.error("%d %s could not be written", len(self._pending), self._what)

