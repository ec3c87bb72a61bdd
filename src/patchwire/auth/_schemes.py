"""Turn a connector's auth declaration plus a connection's values into request parts."""

from __future__ import annotations

import ssl
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from patchwire.connectors import MISSING, compile_template
from patchwire.connectors.spec import (
    ApiKeyAuth,
    AuthSpec,
    BasicAuth,
    BearerAuth,
    ClientCertificate,
    HeaderAuth,
    NoAuth,
    OAuth2Auth,
    TokenExchangeAuth,
)
from patchwire.http import client_tls_context

__all__ = ["SIGNED_AUTH_TYPES", "AuthParts", "MissingCredential", "render_auth",
           "render_client_tls"]


#: the auth types whose every request is signed by a ``RequestSigner`` (``_signers.py``)
SIGNED_AUTH_TYPES = frozenset({"oauth1", "aws_sigv4", "hmac_signature"})


class MissingCredential(Exception):
    """A value the auth scheme needs is not set on the connection (names the setting)."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        super().__init__(setting)


@dataclass(frozen=True)
class AuthParts:
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


def _fill(template: str, values: Mapping[str, Any]) -> str:
    tpl = compile_template(template)
    out = tpl.render(values)
    if out is MISSING or out is None or out == "":
        missing = [n for n in tpl.names if values.get(n.split(".")[0]) in (None, "")]
        raise MissingCredential(missing[0] if missing else template)
    return str(out)


def render_auth(auth: AuthSpec, values: Mapping[str, Any]) -> AuthParts:
    """Computed once per connection and reused for every call through it."""
    if isinstance(auth, NoAuth):
        return AuthParts()
    if isinstance(auth, ApiKeyAuth):
        value = _fill(auth.value, values)
        if auth.in_ == "header":
            return AuthParts(headers={auth.name: value})
        if auth.in_ == "query":
            return AuthParts(query={auth.name: value})
        return AuthParts(cookies={auth.name: value})
    if isinstance(auth, BasicAuth):
        user = _fill(auth.username, values)
        # declared empty: the API key is the user name (Dropbox Sign, EasyPost, Close...)
        password = _fill(auth.password, values) if auth.password else ""
        # RFC 7617 section 2.1: UTF-8 is the charset servers expect today.
        token = b64encode(f"{user}:{password}".encode()).decode("ascii")
        return AuthParts(headers={"Authorization": f"Basic {token}"})
    if isinstance(auth, BearerAuth):
        return AuthParts(headers={"Authorization": f"Bearer {_fill(auth.token, values)}"})
    if isinstance(auth, HeaderAuth):
        return AuthParts(headers={k: _fill(v, values) for k, v in auth.headers.items()})
    if isinstance(auth, OAuth2Auth):
        access_token = values.get("access_token")
        if not access_token:
            raise MissingCredential("access_token")
        if auth.token_placement == "query":
            return AuthParts(query={"access_token": str(access_token)})
        value = f"{auth.token_prefix} {access_token}" if auth.token_prefix else str(access_token)
        return AuthParts(headers={auth.token_header: value})
    if isinstance(auth, TokenExchangeAuth):
        access_token = values.get("access_token")
        if not access_token:
            raise MissingCredential("access_token")
        # `{token}` names the exchanged token; other placeholders are settings
        with_token = {**values, "token": str(access_token)}
        return AuthParts(headers={k: _fill(v, with_token) for k, v in auth.headers.items()},
                         query={k: _fill(v, with_token) for k, v in auth.query.items()})
    if auth.type in SIGNED_AUTH_TYPES:
        # nothing fixed: every request is signed by the connection's signer (_signers.py)
        return AuthParts()
    raise AssertionError(f"unhandled auth scheme {auth!r}")


def render_client_tls(cert: ClientCertificate | None, values: Mapping[str, Any]
                      ) -> ssl.SSLContext | None:
    """The TLS context presenting a connection's client certificate (mutual TLS), or None
    when its connector declares none. MissingCredential names an unset setting;
    ``http.ClientCertificateError`` says the PEM cannot be loaded (never showing it)."""
    if cert is None:
        return None
    return client_tls_context(_fill(cert.cert, values), _fill(cert.key, values),
                              password=_optional(cert.password, values),
                              ca=_optional(cert.ca, values))


def _optional(template: str | None, values: Mapping[str, Any]) -> str | None:
    """A template whose settings may be unset (an unencrypted key, no private CA)."""
    if not template:
        return None
    out = compile_template(template).render(values)
    return None if out is MISSING or out is None or out == "" else str(out)
