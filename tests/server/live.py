"""Serving an ASGI app with real uvicorn on a free loopback port, inside the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

#: bound on starting and on stopping the server
SERVER_TIMEOUT_S = 10.0


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (port 0: any free one) and yield its base URL.

    The app's lifespan runs (startup before the URL is yielded, shutdown on exit). A server
    that fails to start raises instead of hanging: uvicorn's task ends and is awaited.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
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
