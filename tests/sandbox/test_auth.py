from __future__ import annotations

import base64

import aiohttp
import pytest

from patchwire.sandbox import Sandbox, auth_headers

PROBES = {
    "shop": "/orders/42",
    "helpdesk": "/tickets/1",
    "calendar": "/appointments",
    "payments": "/charges",
}
WRONG = {
    "shop": {"X-API-Key": "nope"},
    "helpdesk": {"Authorization": "Basic " + base64.b64encode(b"agent@example.com:x").decode()},
    "calendar": {"Authorization": "Bearer wrong"},
    "payments": {"Authorization": "Bearer pk_test_sandbox"},
}
SCHEMES = {"shop": "ApiKey", "helpdesk": "Basic", "calendar": "Bearer", "payments": "Payments-Key"}


@pytest.mark.parametrize("api", list(PROBES))
async def test_missing_credentials_get_401_with_a_challenge(
    sandbox: Sandbox, http: aiohttp.ClientSession, api: str
) -> None:
    async with http.get(sandbox.api_url(api) + PROBES[api]) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith(SCHEMES[api])
        assert (await resp.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("api", list(PROBES))
async def test_wrong_credentials_get_401_and_right_ones_pass(
    sandbox: Sandbox, http: aiohttp.ClientSession, api: str
) -> None:
    async with http.get(sandbox.api_url(api) + PROBES[api], headers=WRONG[api]) as resp:
        assert resp.status == 401
        assert "X-RateLimit-Limit" in resp.headers
    async with http.get(sandbox.api_url(api) + PROBES[api], headers=auth_headers(api)) as resp:
        assert resp.status == 200


async def test_a_wrong_bearer_token_is_reported_as_invalid_token(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.api_url("calendar") + "/appointments"
    async with http.get(url, headers=WRONG["calendar"]) as resp:
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_auth_scheme_names_are_case_insensitive(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    token = auth_headers("helpdesk")["Authorization"].split(" ", 1)[1]
    url = sandbox.api_url("helpdesk") + "/tickets/1"
    async with http.get(url, headers={"Authorization": f"basic  {token}"}) as resp:
        assert resp.status == 200


async def test_overridden_credentials_replace_the_defaults(http: aiohttp.ClientSession) -> None:
    async with Sandbox(credentials={"shop": {"api_key": "k2"}}) as sandbox:
        url = sandbox.api_url("shop") + "/products"
        async with http.get(url, headers={"X-API-Key": "k2"}) as resp:
            assert resp.status == 200
        async with http.get(url, headers=auth_headers("shop")) as resp:
            assert resp.status == 401
        assert sandbox.credentials["shop"]["api_key"] == "k2"
