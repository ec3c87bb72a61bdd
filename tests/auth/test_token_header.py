"""An OAuth2 connection sends its access token in the header and with the prefix its
provider reads (Shopify's X-Shopify-Access-Token with the token alone, Zoho's
``Zoho-oauthtoken``), over loopback HTTP; the default stays ``Authorization: Bearer``."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import SpecError
from tests.support.servers import serve
from tests.support.settings import local_settings

TOKEN = "tok-5f1e"


def provider() -> tuple[web.Application, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": TOKEN, "token_type": "bearer",
                                  "expires_in": 3600})

    async def me(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/me", me)
    return app, seen


def connector(extra: str) -> str:
    return f"""
name: vendor
base_url: "{{url}}"
settings:
  url: {{}}
  client_id: {{}}
  client_secret: {{secret: true}}
auth:
  type: oauth2
  flow: client_credentials
  token_url: "{{url}}/token"
{extra}
actions:
  me: {{request: {{method: GET, path: /me}}}}
"""


@pytest.mark.parametrize(("extra", "header", "value"), [
    ("", "Authorization", f"Bearer {TOKEN}"),
    ("  token_header: X-Shopify-Access-Token\n  token_prefix: ''", "X-Shopify-Access-Token",
     TOKEN),
    ("  token_prefix: Zoho-oauthtoken", "Authorization", f"Zoho-oauthtoken {TOKEN}"),
])
async def test_the_token_goes_in_the_header_and_with_the_prefix_the_provider_reads(
        tmp_path: Path, extra: str, header: str, value: str) -> None:
    app, seen = provider()
    registry = ConnectorRegistry([load_connector_text(connector(extra), "vendor.yaml")])
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry) as pw:
        await pw.add_connection("vendor", "acme", {"url": url, "client_id": "c",
                                                   "client_secret": "s"})
        await pw.call("vendor.me", connection="acme")
    assert seen[0][header] == value
    if header != "Authorization":
        assert "Authorization" not in seen[0]


@pytest.mark.parametrize("extra", [
    "  token_header: 'X-Token\\r\\nX-Injected: 1'",
    "  token_prefix: 'Bearer\\r\\nX-Injected: 1'",
    "  token_header: ''",
])
def test_a_header_name_or_prefix_that_could_split_the_header_is_refused_at_load(
        extra: str) -> None:
    with pytest.raises(SpecError, match=r"token_(header|prefix)"):
        load_connector_text(connector(extra), "vendor.yaml")
