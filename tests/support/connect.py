"""Connectors for connect links against the sandbox: the shop (an API key the form asks
for) and an account signing in at the sandbox's OAuth2 server (the deployment's OAuth app
as its client)."""

from __future__ import annotations

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
