from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from aiohttp import web

from patchwire.errors import CallTimeoutError
from tests.support.upstream import patchwire_for


async def test_a_read_timeout_shorter_than_the_total_one_fires_first(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def stalls_mid_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"partial":')
        await never.wait()  # the rest never comes
        return resp

    app = web.Application()
    app.router.add_get("/thing", stalls_mid_body)
    extra = "timeouts: {connect: 2, read: 0.2, total: 20}\nretry: {attempts: 1}"
    async with patchwire_for(tmp_path, app, extra) as pw:
        started = time.monotonic()
        with pytest.raises(CallTimeoutError) as info:
            await asyncio.wait_for(pw.call("up.get", connection="c1"), 10)
        elapsed = time.monotonic() - started
    assert elapsed < 5  # the 20 s total did not have to run out
    assert "read 0.2s" in str(info.value)
    never.set()


async def test_the_total_timeout_bounds_a_slowly_trickling_body(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def trickles(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        while not stop.is_set():
            await resp.write(b" ")  # each chunk re-arms the read timer
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
        return resp

    app = web.Application()
    app.router.add_get("/thing", trickles)
    extra = "timeouts: {connect: 2, read: 0.5, total: 1}\nretry: {attempts: 1}"
    async with patchwire_for(tmp_path, app, extra) as pw:
        started = time.monotonic()
        with pytest.raises(CallTimeoutError):
            await asyncio.wait_for(pw.call("up.get", connection="c1"), 10)
        assert time.monotonic() - started < 5
        stop.set()
