"""Vendors that take an API key as Basic auth's user name with an empty password (Dropbox
Sign, EasyPost, Close, Recurly, Greenhouse) get exactly ``base64("key:")``, over loopback
HTTP; a password template naming an unset setting is still a missing credential."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import CallError
from tests.support.servers import serve
from tests.support.settings import local_settings

KEY = "key-5f1e"


def connector(password: str) -> str:
    return f"""
name: vendor
base_url: "{{url}}"
settings:
  url: {{}}
  api_key: {{secret: true}}
  password: {{secret: true, required: false}}
auth: {{type: basic, username: "{{api_key}}", password: "{password}"}}
actions:
  me: {{request: {{method: GET, path: /me}}}}
"""


async def test_an_empty_basic_password_sends_the_key_and_a_colon(tmp_path: Path) -> None:
    seen: list[str] = []

    async def me(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/me", me)
    registry = ConnectorRegistry([load_connector_text(connector(""), "vendor.yaml")])
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry) as pw:
        await pw.add_connection("vendor", "acme", {"url": url, "api_key": KEY})
        await pw.call("vendor.me", connection="acme")
    assert seen == ["Basic " + base64.b64encode(f"{KEY}:".encode()).decode()]


async def test_a_password_setting_left_unset_is_still_a_missing_credential(
        tmp_path: Path) -> None:
    registry = ConnectorRegistry([load_connector_text(connector("{password}"), "vendor.yaml")])
    async with Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw:
        await pw.add_connection("vendor", "acme", {"url": "http://127.0.0.1:9", "api_key": KEY})
        with pytest.raises(CallError, match="password"):
            await pw.call("vendor.me", connection="acme")
