"""Connection settings that fill a URL's host cannot send the credentials elsewhere.

A placeholder in the scheme, host or port of ``base_url`` (and of OAuth2 token and
authorize URLs) takes only a DNS label, or one of the setting's declared ``enum`` values.
A real upstream on 127.0.0.1 counts what reaches it: a hostile value sends nothing.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from patchwire import Patchwire
from patchwire.auth import OAuth2Client
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.openapi import import_openapi
from patchwire.errors import ConfigError, OAuthError, RequestRenderError, SpecError
from patchwire.http import HttpCore
from patchwire.store import ConnectionRecord
from tests.support.servers import serve
from tests.support.settings import LOOPBACK, local_settings

KEY = "host-placeholder-key-5b1e"

CONNECTOR = """
name: vendor
base_url: "http://{subdomain}.vendor.test:{port}/api"
settings:
  subdomain: {}
  port: {}
  region: {default: eu, enum: [eu, us]}
  api_key: {secret: true}
auth: {type: api_key, in: header, name: X-Key, value: "{api_key}"}
actions:
  ping:
    request: {path: /ping}
"""

#: subdomain values that would move the request off ``<label>.vendor.test``
HOSTILE = ["127.0.0.1:{port}/steal?", "a.b", "evil.com#", "x@evil.com", "", "-a", "a-",
           "a" * 64, "127.0.0.1:{port}#", "b\\@127.0.0.1:{port}"]


class VendorDns(AbstractResolver):
    """``*.vendor.test`` is this machine; nothing else resolves."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if not host.endswith(".vendor.test"):
            raise OSError(f"{host} does not resolve here")
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port,
                              family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["wire", "aiohttp"])
async def vendor(request: pytest.FixtureRequest,
                 tmp_path: Path) -> AsyncIterator[tuple[Patchwire, list[str], str]]:
    """Patchwire, the hosts that reached the upstream, and the upstream's port."""
    received: list[str] = []

    async def record(req: web.Request) -> web.Response:
        received.append(req.host)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "vendor.yaml")])
    http = HttpCore(allow_networks=LOOPBACK, resolver=VendorDns(), wire=request.param)
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry, http=http) as pw:
        yield pw, received, url.rsplit(":", 1)[1]
    await http.close()


async def stored_before_the_check(pw: Patchwire, name: str, settings: dict[str, Any]) -> None:
    """A connection written straight to the store, as one added by an older version."""
    await pw.store.add_connection(ConnectionRecord.new(name, "vendor", settings=settings))


async def test_a_dns_label_subdomain_reaches_its_own_host(
        vendor: tuple[Patchwire, list[str], str]) -> None:
    pw, received, port = vendor
    await pw.add_connection("vendor", "acme",
                            {"subdomain": "acme-1", "port": port, "api_key": KEY})
    assert await pw.call("vendor.ping") == {"ok": True}
    assert received == [f"acme-1.vendor.test:{port}"]


@pytest.mark.parametrize("subdomain", HOSTILE)
async def test_a_hostile_subdomain_fails_the_call_naming_the_setting_and_sends_nothing(
        vendor: tuple[Patchwire, list[str], str], subdomain: str) -> None:
    pw, received, port = vendor
    await stored_before_the_check(pw, "acme", {"subdomain": subdomain.format(port=port),
                                               "port": port})
    with pytest.raises(RequestRenderError) as info:
        await pw.call("vendor.ping", connection="acme")
    assert "subdomain" in info.value.message and "DNS label" in info.value.message
    assert received == []


@pytest.mark.parametrize("subdomain", HOSTILE)
async def test_a_hostile_subdomain_is_refused_when_the_connection_is_added(
        vendor: tuple[Patchwire, list[str], str], subdomain: str) -> None:
    pw, _, port = vendor
    with pytest.raises(ConfigError, match="subdomain"):
        await pw.add_connection("vendor", "acme", {"subdomain": subdomain.format(port=port),
                                                   "port": port, "api_key": KEY})
    assert await pw.list_connections() == []


async def test_a_value_outside_a_settings_enum_is_refused(
        vendor: tuple[Patchwire, list[str], str]) -> None:
    pw, received, port = vendor
    with pytest.raises(ConfigError, match=r"region.*'eu', 'us'"):
        await pw.add_connection("vendor", "acme", {"subdomain": "acme", "port": port,
                                                   "region": "mars", "api_key": KEY})
    await stored_before_the_check(pw, "old", {"subdomain": "acme", "port": port,
                                              "region": "mars"})
    with pytest.raises(RequestRenderError, match="region"):
        await pw.call("vendor.ping", connection="old")
    assert received == []


ENUM_HOST = """
name: regional
base_url: "http://{region}:{port}/api"
settings:
  region: {enum: ["127.0.0.1", "eu.vendor.test"]}
  port: {}
actions:
  ping:
    request: {path: /ping}
"""


async def test_a_host_placeholder_with_an_enum_takes_exactly_the_declared_values(
        tmp_path: Path) -> None:
    received: list[str] = []

    async def record(req: web.Request) -> web.Response:
        received.append(req.host)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    registry = ConnectorRegistry([load_connector_text(ENUM_HOST, "regional.yaml")])
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry) as pw:
        port = url.rsplit(":", 1)[1]
        await pw.add_connection("regional", "lab", {"region": "127.0.0.1", "port": port})
        assert await pw.call("regional.ping") == {"ok": True}
        with pytest.raises(ConfigError, match="region"):
            await pw.add_connection("regional", "other", {"region": "127.0.0.2",
                                                          "port": port})
    assert received == [f"127.0.0.1:{port}"]


def test_a_default_outside_the_settings_enum_is_a_spec_problem() -> None:
    text = CONNECTOR.replace("{default: eu, enum: [eu, us]}", "{default: mars, enum: [eu, us]}")
    with pytest.raises(SpecError, match="region"):
        load_connector_text(text, "vendor.yaml")


def test_a_whole_url_setting_is_not_a_host_placeholder() -> None:
    # `{url}/api` takes scheme and host from one setting on purpose: it is the URL
    spec = load_connector_text("name: whole\nbase_url: '{url}/api'\nsettings: {url: {}}\n")
    assert spec.base_url == "{url}/api"


# -- OpenAPI server variables -------------------------------------------------------------


def test_openapi_server_variables_carry_their_enum_and_default_into_the_settings() -> None:
    result = import_openapi({
        "openapi": "3.0.3", "info": {"title": "Regions", "version": "1"}, "paths": {},
        "servers": [{"url": "https://{region}.api.example.com:{port}/v1",
                     "variables": {"region": {"default": "eu", "enum": ["eu", "us"]},
                                   "port": {"default": "443", "enum": ["443", 8443]}}}]})
    settings = result.connector.settings
    assert (settings["region"].enum, settings["region"].default) == (["eu", "us"], "eu")
    assert (settings["port"].enum, settings["port"].default) == (["443", "8443"], "443")
    assert load_connector_text(result.to_yaml()) == result.connector


# -- OAuth2 token and authorize URLs ------------------------------------------------------


OAUTH = """
name: tenanted
base_url: "https://{tenant}.api.example.com"
settings:
  tenant: {}
  port: {}
  client_id: {}
  client_secret: {secret: true}
auth:
  type: oauth2
  flow: client_credentials
  token_url: "http://{tenant}.auth.test:{port}/token"
  authorize_url: "https://{tenant}.auth.test/authorize"
actions: {}
"""


@pytest.mark.parametrize("tenant", ["127.0.0.1:{port}/steal?", "x@127.0.0.1:{port}", "a.b"])
async def test_a_hostile_setting_in_the_token_url_fails_naming_it_and_sends_nothing(
        tenant: str) -> None:
    received: list[str] = []

    async def record(req: web.Request) -> web.Response:
        received.append(req.path)
        return web.json_response({"access_token": "t", "token_type": "bearer"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    spec = load_connector_text(OAUTH, "tenanted.yaml")
    http = HttpCore(allow_networks=LOOPBACK, resolver=VendorDns())
    try:
        async with serve(app) as url:
            port = url.rsplit(":", 1)[1]
            values = {"tenant": tenant.format(port=port), "port": port,
                      "client_id": "cid", "client_secret": "cs"}
            with pytest.raises(OAuthError) as info:
                client = OAuth2Client(spec.auth, values, http=http)  # type: ignore[arg-type]
                await client.client_credentials()
    finally:
        await http.close()
    assert "tenant" in info.value.message and "DNS label" in info.value.message
    assert received == []


def test_a_host_placeholder_default_that_is_not_a_dns_label_is_a_spec_problem() -> None:
    text = ("name: bad\nbase_url: 'https://{sub}.vendor.com'\n"
            "settings: {sub: {default: 'evil.com#'}}\n")
    with pytest.raises(SpecError, match=r"settings\.sub\.default.*DNS label"):
        load_connector_text(text, "bad.yaml")
