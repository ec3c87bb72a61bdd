"""Connect links against the sandbox: its connectors (the shop, an API key the form asks
for; an account signing in at the sandbox's OAuth2 server, the deployment's OAuth app as
its client) and the served app with a client that drives the hosted pages like a browser
(no redirects followed unless asked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.sandbox import Sandbox

#: the sandbox's confidential OAuth client (sandbox/_oauth.py)
CLIENT_ID = "patchwire-sandbox"
CLIENT_SECRET = "sandbox-client-secret"


def shop_connector(sandbox: Sandbox) -> ConnectorSpec:
    """The built-in shop, its sandbox URL the running sandbox's (a setting with a default
    is the deployment's: the form does not ask for it)."""
    spec = ConnectorRegistry.load(()).get("shop")
    url = spec.settings["sandbox_url"].model_copy(update={"default": sandbox.url})
    return spec.model_copy(update={"settings": {**spec.settings, "sandbox_url": url}})


def oauth_connector(sandbox: Sandbox) -> ConnectorSpec:
    """A connector signing in at the sandbox's OAuth2 server; the client id and secret
    are not the connection's (the deployment's OAuth app supplies them)."""
    return ConnectorSpec.model_validate({
        "name": "oauthy", "title": "Sandbox Account",
        "base_url": "{sandbox_url}/oauth",
        "settings": {
            "sandbox_url": {"default": sandbox.url},
            "client_id": {"required": False},
            "client_secret": {"secret": True, "required": False},
        },
        "auth": {"type": "oauth2", "authorize_url": "{sandbox_url}/oauth/authorize",
                 "token_url": "{sandbox_url}/oauth/token", "scopes": ["profile"]},
        "retry": {"attempts": 1},
        "test": {"action": "me"},
        "actions": {"me": {"request": {"method": "GET", "path": "/userinfo"}}},
    })


@dataclass
class Site:
    """The served app, the Patchwire behind it, and a browser-like client."""

    url: str
    pw: Patchwire
    http: aiohttp.ClientSession
    sandbox: Sandbox
    canary: str
    database_url: str

    def at(self, path: str) -> str:
        return self.url + path

    async def link(self, end_user: str = "u1", connectors: tuple[str, ...] = ("shop",),
                   **body: Any) -> dict[str, Any]:
        async with self.http.post(self.at("/api/v1/connect-sessions"), json={
                "end_user": end_user, "connectors": list(connectors), **body}) as resp:
            assert resp.status == 201, await resp.text()
            created: dict[str, Any] = await resp.json()
        return created

    async def page(self, url: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
        async with self.http.get(url, allow_redirects=False, **kwargs) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def post_form(self, url: str, data: dict[str, str], *,
                        origin: str | None = "own") -> tuple[int, str, dict[str, str]]:
        headers = {}
        if origin is not None:  # a browser sends the page's origin with a form post
            headers["Origin"] = self.url if origin == "own" else origin
        async with self.http.post(url, data=data, headers=headers,
                                  allow_redirects=False) as resp:
            return resp.status, await resp.text(), dict(resp.headers)
