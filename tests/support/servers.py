"""Servers on a free loopback port inside the test's event loop: an aiohttp app (an
upstream built inline) and an ASGI app under real uvicorn (Patchwire's own app)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from aiohttp import web

#: bound on starting and on stopping the uvicorn server
SERVER_TIMEOUT_S = 10.0


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run the aiohttp ``app`` on 127.0.0.1 (any free port) and yield its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serving(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Run the ASGI ``app`` on 127.0.0.1:``port`` (0: any free one) and yield its base URL
    (a port chosen beforehand: when the app's settings must name its URL, a public URL).

    The app's lifespan runs (startup before the URL is yielded, shutdown on exit). A server
    that fails to start raises instead of hanging: uvicorn's task ends and is awaited.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(SERVER_TIMEOUT_S):
            while not server.started:  # bounded by the timeout above
                if task.done():
                    task.result()  # re-raise what stopped it
                    raise RuntimeError("uvicorn exited before it started serving")
                await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, SERVER_TIMEOUT_S)
