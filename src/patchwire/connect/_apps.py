"""OAuth apps: the deployment's OAuth2 client (id, secret, scopes) per connector.

A connection made through a connect link has no client id of its own: the token keeper
uses the connector's OAuth app for it (``TokenKeeper.oauth_client``). The client secret is
sealed by the vault and bound to its connector (``oauth_app_aad``); nothing here returns it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from patchwire.auth import oauth_app_aad
from patchwire.connectors.spec import OAuth2Auth
from patchwire.errors import ConfigError, UnknownOAuthApp
from patchwire.runtime import Runtime
from patchwire.store.connect import OAuthAppRecord, OAuthAppRepository

__all__ = ["MAX_CLIENT_ID", "MAX_CLIENT_SECRET", "MAX_SCOPES", "OAuthApp", "OAuthApps"]

MAX_CLIENT_ID: Final = 500
MAX_CLIENT_SECRET: Final = 2000
#: how many scopes an app may ask for, and how long one may be
MAX_SCOPES: Final = 100
MAX_SCOPE: Final = 200


@dataclass(frozen=True)
class OAuthApp:
    """An OAuth app as shown to people and APIs: never its secret."""

    connector: str
    client_id: str
    scopes: tuple[str, ...]
    client_secret_set: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rec: OAuthAppRecord) -> OAuthApp:
        return cls(rec.connector, rec.client_id, rec.scopes, bool(rec.client_secret),
                   rec.created_at, rec.updated_at)

    def to_dict(self) -> dict[str, Any]:
        return {"connector": self.connector, "client_id": self.client_id,
                "scopes": list(self.scopes), "client_secret_set": self.client_secret_set,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


def _one_line(value: str, what: str, longest: int) -> str:
    if not isinstance(value, str) or not value or len(value) > longest:
        raise ValueError(f"{what} must be 1 to {longest} characters")
    if value != value.strip() or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                                     for c in value):
        raise ValueError(f"{what} cannot contain blanks at its ends or control characters")
    return value


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, deduplicated in order; ValueError for a blank, a control character or
    too many."""
    if len(scopes) > MAX_SCOPES:
        raise ValueError(f"an OAuth app asks for at most {MAX_SCOPES} scopes")
    out: list[str] = []
    for scope in scopes:
        _one_line(scope, "a scope", MAX_SCOPE)
        if any(c.isspace() for c in scope):
            raise ValueError(f"a scope cannot contain blanks: {scope[:50]!r}")
        if scope not in out:
            out.append(scope)
    return tuple(out)


class OAuthApps:
    """The OAuth apps of a deployment (``runtime`` must be open when they are used)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _repo(self) -> OAuthAppRepository:
        return OAuthAppRepository(self._runtime.store)

    def check_connector(self, connector: str) -> OAuth2Auth:
        """The connector's OAuth2 auth; UnknownConnector, or ConfigError when it does not
        use the authorization-code flow (there is nobody to send to a consent page)."""
        spec = self._runtime.connectors.get(connector)
        if not isinstance(spec.auth, OAuth2Auth) or spec.auth.flow != "authorization_code":
            raise ConfigError(f"connector {connector!r} does not use OAuth2's authorization "
                              "code flow: it needs no OAuth app")
        return spec.auth

    async def set(self, connector: str, *, client_id: str, client_secret: str,
                  scopes: Sequence[str] = ()) -> OAuthApp:
        """Create or replace the app of ``connector``. ValueError for an unusable value
        (never echoing the secret), UnknownConnector, ConfigError (see
        :meth:`check_connector`)."""
        self.check_connector(connector)
        _one_line(client_id, "the client id", MAX_CLIENT_ID)
        _one_line(client_secret, "the client secret", MAX_CLIENT_SECRET)
        checked = check_scopes(scopes)
        sealed = self._runtime.vault.encrypt(client_secret.encode(),
                                             aad=oauth_app_aad(connector))
        return OAuthApp.of(await self._repo().put(connector, client_id=client_id,
                                                  client_secret=sealed, scopes=checked))

    async def get(self, connector: str) -> OAuthApp:
        found = await self._repo().get(connector)
        if found is None:
            raise UnknownOAuthApp(f"no OAuth app for connector {connector!r}: set one with "
                                  f"`patchwire oauth-apps set {connector} --client-id ...`")
        return OAuthApp.of(found)

    async def list(self) -> list[OAuthApp]:
        return [OAuthApp.of(r) for r in await self._repo().list()]

    async def remove(self, connector: str) -> None:
        if not await self._repo().remove(connector):
            raise UnknownOAuthApp(f"no OAuth app for connector {connector!r}")
