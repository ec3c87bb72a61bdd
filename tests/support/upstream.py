"""A scripted upstream (aiohttp on loopback), its connector and a Patchwire wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.http import HttpCore
from tests.support.servers import serve
from tests.support.settings import local_settings


@dataclass
class RecordingUpstream:
    """Answers ``201 {"id": "n1"}`` to each POST of ``path`` and records every JSON body."""

    path: str
    bodies: list[Any] = field(default_factory=list)

    def app(self) -> web.Application:
        async def create(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            return web.json_response({"id": "n1"}, status=201)

        app = web.Application()
        app.router.add_post(self.path, create)
        return app


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
    async with patchwire_serving(tmp_path, app, connector_yaml(extra), http=http,
                                 connections=connections) as pw:
        yield pw


@asynccontextmanager
async def patchwire_serving(
    tmp_path: Path, app: web.Application, connector: str, *, http: HttpCore | None = None,
    connections: tuple[str, ...] = ("main",),
) -> AsyncIterator[Patchwire]:
    """A Patchwire (home in ``tmp_path / "home"``) knowing the connector ``connector`` (its
    YAML text), with ``connections`` of it to ``app`` served on loopback."""
    async with serve(app) as url:
        spec = load_connector_text(connector, "connector.yaml")
        registry = ConnectorRegistry([spec])
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=registry, http=http) as pw:
            for name in connections:
                await pw.add_connection(spec.name, name, {"url": url})
            yield pw
