"""The background loop of an engine: a tick now and then, sooner when kicked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError

from patchwire.errors import StoreError

__all__ = ["tick_until_stopped"]

log = logging.getLogger("patchwire.flows")


async def tick_until_stopped(tick: Callable[[], Awaitable[object]], kick: asyncio.Event,
                             poll_interval: Callable[[], float],
                             stopping: Callable[[], bool]) -> None:
    """``tick()`` every ``poll_interval()`` seconds (at once when ``kick`` is set) until
    ``stopping()``; a failed tick is logged and the next one tries again."""
    while not stopping():
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except (StoreError, DBAPIError) as exc:
            # a busy or briefly unreachable database: the next tick tries again
            log.warning("flow engine tick: %s; trying again", str(exc).splitlines()[0])
        except Exception:
            log.exception("flow engine tick failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kick.wait(), poll_interval())
        kick.clear()
