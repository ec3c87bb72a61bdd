"""OAuth2 against the sandbox's /oauth server: the ``oauthy`` connector, a stored
connection holding its tokens, a token keeper, and the code flow driven like a browser."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from patchwire.auth import (
    OAuth2Client,
    TokenKeeper,
    TokenSet,
    Vault,
    connection_aad,
    new_authorization,
)
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.connectors.spec import OAuth2Auth
from patchwire.http import HttpCore
from patchwire.sandbox import Sandbox
from patchwire.store import ConnectionRecord, Store
from tests.support.clocks import FakeClock

CLIENT_ID = "patchwire-sandbox"
CLIENT_SECRET = "sandbox-client-secret"
#: where the authorization server sends the browser back to (nothing listens there)
REDIRECT = "http://127.0.0.1:1/callback"
#: a fake clock's start for tokens: epoch seconds (mid-2025)
EPOCH = 1_750_000_000.0


def oauth_connector(flow: str = "authorization_code", name: str = "oauthy") -> ConnectorSpec:
    auth: dict[str, Any] = {"type": "oauth2", "flow": flow,
                            "token_url": "{sandbox_url}/oauth/token", "scopes": ["profile", "email"]}
    if flow == "authorization_code":
        auth["authorize_url"] = "{sandbox_url}/oauth/authorize"
    return ConnectorSpec.model_validate({
        "name": name,
        "base_url": "{sandbox_url}/oauth",
        "settings": {
            "sandbox_url": {},
            "client_id": {},
            "client_secret": {"secret": True, "required": False},
        },
        "auth": auth,
        "retry": {"attempts": 1},
        "actions": {"me": {"request": {"method": "GET", "path": "/userinfo"}}},
    })


async def add_connection(
    store: Store, vault: Vault, sandbox: Sandbox, *, name: str = "acme",
    connector: str = "oauthy", tokens: TokenSet | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> ConnectionRecord:
    rec = ConnectionRecord.new(name, connector, settings={"sandbox_url": sandbox.url,
                                                          "client_id": CLIENT_ID})
    values: dict[str, Any] = {"client_secret": CLIENT_SECRET, **(secrets or {})}
    if tokens is not None:
        values = tokens.merged_into(values)
    rec = dataclasses.replace(rec, secrets=vault.encrypt_json(values, aad=connection_aad(rec.id)))
    await store.add_connection(rec)
    return rec


def keeper(store: Store, vault: Vault, registry: ConnectorRegistry, http: HttpCore,
           clock: FakeClock) -> TokenKeeper:
    return TokenKeeper(store, vault, registry, http, skew=60.0, clock=clock)


def ci_required() -> bool:
    return bool(os.environ.get("CI"))


def client_for(sandbox: Sandbox, http: HttpCore, clock: FakeClock, *,
               flow: str = "authorization_code", client_id: str = CLIENT_ID,
               secret: str | None = CLIENT_SECRET) -> OAuth2Client:
    auth = oauth_connector(flow).auth
    assert isinstance(auth, OAuth2Auth)
    values = {"sandbox_url": sandbox.url, "client_id": client_id}
    if secret is not None:
        values["client_secret"] = secret
    return OAuth2Client(auth, values, http=http, connection="acme", clock=clock)


async def authorize(url: str) -> dict[str, str]:
    """Follow the authorize URL like a browser would, up to the redirect back to us."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
            s.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def code_flow_tokens(client: OAuth2Client) -> TokenSet:
    url, state, pkce = new_authorization(client, REDIRECT)
    answer = await authorize(url)
    assert answer["state"] == state
    assert pkce is not None
    return await client.exchange_code(answer["code"], redirect_uri=REDIRECT,
                                      code_verifier=pkce.verifier)


async def granted(sandbox: Sandbox, http: HttpCore, clock: FakeClock) -> TokenSet:
    """Tokens from the code flow against the sandbox's /oauth server."""
    return await code_flow_tokens(client_for(sandbox, http, clock))
