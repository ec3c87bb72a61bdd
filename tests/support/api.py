"""The REST API on loopback: the served app with a client for it, and RFC 9457 problem
details as every error answers them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import ClientResponse

from patchwire.config import Settings
from patchwire.sandbox import Sandbox


@dataclass
class Api:
    """The REST API served by uvicorn on loopback, with an aiohttp client for it."""

    url: str
    http: aiohttp.ClientSession
    sandbox: Sandbox
    canary: str
    settings: Settings

    def at(self, path: str) -> str:
        return self.url + path


PROBLEM = "application/problem+json"


PROBLEM_BASE = "https://patchwire.dev/errors/"


async def problem_of(resp: ClientResponse, status: int) -> dict[str, Any]:
    """Check an RFC 9457 problem details response and return its members."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM, text
    body: dict[str, Any] = json.loads(text)
    assert body["type"].startswith(PROBLEM_BASE), body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["status"] == status, "the status member must repeat the HTTP status"
    return body
