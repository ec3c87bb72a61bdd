"""Shared pieces of the HTTP-core tests: a fake clock, a fake timer wheel, a scripted
upstream and a Patchwire wired to it."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.http import HttpCore
from tests.calls.upstream import serve
from tests.helpers import local_settings


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Timer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeTimers:
    """``call_later`` on a fake clock: ``run_until(t)`` fires due timers in time order."""

    clock: FakeClock
    _heap: list[tuple[float, int, _Timer]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    armed: int = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        t = _Timer(self.clock.now + delay, callback)
        heapq.heappush(self._heap, (t.when, next(self._seq), t))
        self.armed += 1
        return t

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def fire_next(self) -> bool:
        due = self.next_due()
        if due is None:
            return False
        _, _, t = heapq.heappop(self._heap)
        self.clock.now = max(self.clock.now, due)
        t.callback()
        return True


@dataclass
class Upstream:
    """Scripted answers: ``script`` is consumed one status per request, then 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[web.Request] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            self.requests.append(request)
            self.headers_seen.append(dict(request.headers))
            if self.script:
                status, headers = self.script.pop(0)
                return web.json_response({"message": f"scripted {status}"}, status=status,
                                         headers=headers)
            return web.json_response({"ok": True, "n": len(self.requests)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


def connector_yaml(extra: str = "") -> str:
    retry = "" if "retry:" in extra else "retry: {attempts: 3, backoff_initial: 0}"
    timeouts = "" if "timeouts:" in extra else "timeouts: {connect: 2, read: 5, total: 5}"
    return f"""
name: up
base_url: "{{url}}"
settings:
  url: {{}}
{timeouts}
{retry}
{extra}
actions:
  get:
    request: {{path: /thing}}
  create:
    input: {{type: object, properties: {{key: {{type: string}}}}}}
    request:
      method: POST
      path: /things
      headers: {{Idempotency-Key: "{{key}}"}}
      body: {{a: 1}}
"""


@asynccontextmanager
async def patchwire_for(
    tmp_path: Path, app: web.Application, extra: str = "", http: HttpCore | None = None,
    connections: tuple[str, ...] = ("c1",),
) -> AsyncIterator[Patchwire]:
    async with serve(app) as url:
        registry = ConnectorRegistry([load_connector_text(connector_yaml(extra), "up.yaml")])
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=registry, http=http) as pw:
            for name in connections:
                await pw.add_connection("up", name, {"url": url})
            yield pw
