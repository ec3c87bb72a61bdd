"""Serves each API's OpenAPI 3.1 document, pointing ``servers`` at the live sandbox."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import yaml
from aiohttp import web

from ._base import Handler

DEFAULT_ORIGIN = "http://127.0.0.1:8765"
"""The origin written in the shipped files; replaced by the origin the request used."""
_MAX_CACHED_HOSTS = 16
"""The Host header is client-chosen; a few variants (localhost, 127.0.0.1) are enough."""


@cache
def document_text(api: str) -> str:
    return (resources.files("patchwire.sandbox") / "openapi" / f"{api}.yaml").read_text("utf-8")


def document(api: str) -> dict[str, object]:
    loaded = yaml.safe_load(document_text(api))
    assert isinstance(loaded, dict)
    return loaded


def openapi_handlers(api: str) -> tuple[Handler, Handler]:
    cache_yaml: dict[str, bytes] = {}
    cache_json: dict[str, bytes] = {}

    def rewrite(request: web.Request) -> str:
        return document_text(api).replace(DEFAULT_ORIGIN, f"{request.scheme}://{request.host}")

    async def as_yaml(request: web.Request) -> web.StreamResponse:
        body = cache_yaml.get(request.host)
        if body is None:
            body = rewrite(request).encode()
            if len(cache_yaml) < _MAX_CACHED_HOSTS:
                cache_yaml[request.host] = body
        return web.Response(body=body, content_type="application/yaml", charset="utf-8")

    async def as_json(request: web.Request) -> web.StreamResponse:
        body = cache_json.get(request.host)
        if body is None:
            body = json.dumps(yaml.safe_load(rewrite(request)), indent=2).encode()
            if len(cache_json) < _MAX_CACHED_HOSTS:
                cache_json[request.host] = body
        return web.Response(body=body, content_type="application/json")

    return as_yaml, as_json
