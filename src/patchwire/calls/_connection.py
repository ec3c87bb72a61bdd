"""Connections ready for calls: settings merged, secrets decrypted, auth rendered.

:class:`ResolvedConnection` is one connection as the call path uses it;
:class:`ConnectionResolver` finds and caches them — the connector's only connection when a
call names none, each connection reloaded at most once per TTL (or before its OAuth2 access
token lapses), one load at a time per name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from patchwire.auth import (
    DEFAULT_REFRESH_SKEW,
    AuthParts,
    MissingCredential,
    RequestSigner,
    SigningError,
    TokenSet,
    build_signer,
    render_auth,
    render_client_tls,
)
from patchwire.connectors import (
    MISSING,
    ConnectorRegistry,
    ConnectorSpec,
    compile_template,
    setting_value_problems,
)
from patchwire.connectors.spec import KEPT_TOKEN_AUTHS
from patchwire.errors import (
    CallContext,
    ConfigError,
    NotConnected,
    RequestRenderError,
    UnknownConnection,
)
from patchwire.http import ClientCertificateError, PreparedRequest, Redactor
from patchwire.observability import remember_secrets
from patchwire.store.records import ConnectionRecord

__all__ = [
    "BREAKS_HEADER",
    "CONNECTION_TTL",
    "TOKEN_SKEW",
    "AccessTokens",
    "ConnectionResolver",
    "ConnectionRows",
    "ResolvedConnection",
    "check_end_user",
]

#: end users whose default connection per connector is remembered at once
MAX_DEFAULTS = 50_000

#: how long a resolved connection is reused before re-reading it from the store, so a
#: change made by another process is picked up without a round trip per call
CONNECTION_TTL = 30.0
#: an OAuth2 access token is renewed this long before it expires
TOKEN_SKEW = DEFAULT_REFRESH_SKEW

#: characters that would end a header line (or that HTTP forbids in one)
BREAKS_HEADER = re.compile(r"[\r\n\0]")


@dataclass(frozen=True, slots=True)
class ResolvedConnection:
    """A connection ready for calls. Holds decrypted secrets: never log or serialise it."""

    record: ConnectionRecord
    connector: ConnectorSpec
    base_url: str
    auth: AuthParts | None  # None: a required credential is missing (reported at call time)
    missing_credential: str | None
    headers: dict[str, str]
    redact: Redactor
    loaded_at: float = field(default_factory=time.monotonic)
    #: kept tokens only (OAuth2, token exchange): the access token in use and when it
    #: expires (epoch seconds), so the call path can renew it before it lapses and tell a
    #: refresher which token was refused
    access_token: str | None = None
    token_expires_at: float | None = None
    #: names (lower case) of the headers carrying credentials: the auth scheme's, and any
    #: connector header holding a secret. A redirect to another origin drops them.
    credential_headers: frozenset[str] = frozenset()
    #: mutual TLS: the context presenting the connector's client certificate (None: none)
    tls: ssl.SSLContext | None = None
    #: the connection's settings and secrets by name, for protocol adapters that write
    #: credentials into the body (a SOAP envelope's WS-Security header)
    values: Mapping[str, Any] = field(default_factory=dict)
    #: signs each request (OAuth 1.0a, AWS SigV4, HMAC signature auth), else None
    signer: RequestSigner | None = None
    #: the connector's own query parameters (``query:``), rendered from the settings
    query: Mapping[str, str] = field(default_factory=dict)

    def sign(self, req: PreparedRequest, context: CallContext) -> None:
        """Sign the rendered request as the last step before sending (RequestRenderError
        when it cannot be signed as declared)."""
        assert self.signer is not None
        try:
            self.signer.sign(req, time.time())
        except SigningError as exc:
            raise RequestRenderError(self.redact(str(exc)), context=context) from None
        req.credentials = req.credentials | self.signer.headers

    def __repr__(self) -> str:
        return f"ResolvedConnection({self.record.name!r}, connector={self.connector.name!r})"

    @classmethod
    def build(
        cls, record: ConnectionRecord, connector: ConnectorSpec, secrets: Mapping[str, Any]
    ) -> ResolvedConnection:
        values: dict[str, Any] = {
            k: s.default for k, s in connector.settings.items() if s.default is not None
        }
        values.update(record.settings)
        values.update(secrets)
        auth: AuthParts | None
        missing_credential: str | None = None
        tls: ssl.SSLContext | None = None
        signer: RequestSigner | None = None
        try:
            auth = render_auth(connector.auth, values)
            tls = render_client_tls(connector.client_certificate, values)
            signer = build_signer(connector.auth, values)
        except MissingCredential as exc:
            auth, missing_credential = None, exc.setting
        except SigningError as exc:  # e.g. an RSA key that does not parse; names no secret
            raise RequestRenderError(f"connection {record.name!r}: {exc}",
                                     context=CallContext(connection=record.name)) from None
        except ClientCertificateError as exc:
            raise RequestRenderError(
                f"connection {record.name!r}: {exc} (fix it with `patchwire connection "
                f"update {record.name} --set-stdin ...`)",
                context=CallContext(connection=record.name)) from None
        # Every credential the calls use, each in every encoding, worked out once here:
        # the secrets and what the auth scheme made of them (`Basic base64(user:secret)`,
        # a signer's key assembled from several settings).
        signer_keys = signer.secrets if signer is not None else ()
        redact = Redactor([*(str(v) for v in secrets.values() if v), *_credentials(auth),
                           *signer_keys])
        # observability: logs redact them
        remember_secrets([*(v for v in secrets.values() if v), *signer_keys])
        problems = setting_value_problems(connector, values)
        if problems:
            # e.g. a subdomain of "127.0.0.1:8080/steal?" would send the credentials there
            raise RequestRenderError(
                f"connection {record.name!r}: {redact(problems[0])} (fix it with "
                f"`patchwire connection update {record.name} --set ...`)",
                context=CallContext(connection=record.name))
        base = compile_template(connector.base_url).render(values)
        if base is MISSING:
            missing = [n for n in compile_template(connector.base_url).names if n not in values]
            raise RequestRenderError(
                f"connection {record.name!r} lacks setting {missing[0]!r} needed by "
                f"{connector.name}'s base_url",
                context=CallContext(connection=record.name),
            )
        parsed = urlsplit(str(base))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RequestRenderError(
                f"connection {record.name!r}: {connector.name}'s base URL must be an absolute "
                f"http(s) URL, got {redact(str(base))!r} (check its settings)",
                context=CallContext(connection=record.name),
            )
        headers = _filled(connector.headers, values)
        if auth is not None:
            headers.update(auth.headers)
        for name, text in headers.items():
            if BREAKS_HEADER.search(text):
                raise RequestRenderError(
                    f"connection {record.name!r}: header {name!r} of {connector.name} would "
                    f"carry a line break or NUL character (check its settings)",
                    context=CallContext(connection=record.name))
        query = _filled(connector.query, values)
        secret_values = [str(v) for v in secrets.values() if v]
        credential_headers = frozenset(
            name.lower() for name, text in headers.items()
            if (auth is not None and name in auth.headers)
            or any(secret in text for secret in secret_values))
        return cls(record, connector, str(base).rstrip("/"), auth, missing_credential,
                   headers, redact, credential_headers=credential_headers, values=values,
                   tls=tls, signer=signer, query=query)


def _filled(templates: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """A connector's header or query templates filled from a connection's settings; one
    naming a setting the connection lacks is left out."""
    out: dict[str, str] = {}
    for name, template in templates.items():
        rendered = compile_template(template).render(values)
        if rendered is not MISSING:
            out[name] = str(rendered)
    return out


class ConnectionRows(Protocol):
    """Where connections are stored (the store)."""

    async def get_connection(self, name: str) -> ConnectionRecord: ...

    async def list_connections(
        self, connector: str | None = None, end_user: str | None = None
    ) -> Sequence[ConnectionRecord]: ...


class AccessTokens(Protocol):
    """OAuth2 access tokens, renewed ahead of expiry (a ``TokenKeeper``)."""

    async def tokens(self, name: str) -> TokenSet: ...

    async def refresh(self, name: str, *, rejected: str | None = None) -> TokenSet: ...


class ConnectionResolver:
    """The connections calls use, resolved once and cached briefly.

    ``decrypt`` turns a connection's stored secrets into their values; ``tokens`` gives
    OAuth2 connections their access token (None: no OAuth2 connection can be resolved).
    """

    def __init__(
        self, rows: ConnectionRows, connectors: ConnectorRegistry,
        decrypt: Callable[[ConnectionRecord], dict[str, Any]],
        tokens: AccessTokens | None = None,
    ) -> None:
        self._rows = rows
        self._connectors = connectors
        self._decrypt = decrypt
        self._tokens = tokens
        self._resolved: dict[str, ResolvedConnection] = {}
        self._loading: dict[str, asyncio.Future[ResolvedConnection]] = {}
        self._defaults: OrderedDict[tuple[str, str | None], tuple[str, float]] = (
            OrderedDict())

    def forget(self, name: str | None = None) -> None:
        """Drop what is cached of connection ``name`` (None: of every connection), after
        it changed here; which connection is a connector's only one is looked up again."""
        if name is None:
            self._resolved.clear()
        else:
            self._resolved.pop(name, None)
        self._defaults.clear()

    def ready(self, name: str, connector: str) -> ResolvedConnection | None:
        """Connection ``name`` of ``connector`` when the cached one can be used as it is:
        the hot path, without a coroutine."""
        cached = self._resolved.get(name)
        if cached is None or cached.connector.name != connector or stale(cached):
            return None
        return cached

    async def resolve(self, name: str, connector: str) -> ResolvedConnection:
        """Connection ``name`` of ``connector``, cached (reloaded at most once per TTL).

        One load runs at a time per name: when the TTL ends under load, every call in
        flight would otherwise read and decrypt the same row at once.
        """
        cached = self._resolved.get(name)
        if cached is None or stale(cached):
            pending = self._loading.get(name)
            if pending is None:
                pending = asyncio.ensure_future(self._load(name))
                self._loading[name] = pending
                pending.add_done_callback(lambda _: self._loading.pop(name, None))
            cached = await asyncio.shield(pending)
        if cached.connector.name != connector:
            raise UnknownConnection(
                f"connection {name!r} belongs to connector {cached.record.connector!r}, "
                f"not {connector!r}")
        return cached

    async def _load(self, name: str) -> ResolvedConnection:
        rec = await self._rows.get_connection(name)
        spec = self._connectors.get(rec.connector)
        secrets = self._decrypt(rec)
        if isinstance(spec.auth, KEPT_TOKEN_AUTHS):
            # Renewed ahead of expiry (single-flight across coroutines and processes).
            if self._tokens is None:
                raise ConfigError(
                    f"connection {name!r}: connector {spec.name!r} obtains a token "
                    f"({spec.auth.type}), and nothing here can obtain one")
            tokens = await self._tokens.tokens(name)
            resolved = ResolvedConnection.build(
                rec, spec, {**secrets, "access_token": tokens.access_token})
            resolved = dataclasses.replace(resolved, access_token=tokens.access_token,
                                           token_expires_at=tokens.expires_at)
        else:
            resolved = ResolvedConnection.build(rec, spec, secrets)
        self._resolved[name] = resolved
        return resolved

    async def default_for(self, connector: str, end_user: str | None = None) -> str:
        """The connector's only connection, or of ``end_user``'s connections of it their
        only or default one (kept for the connection TTL: flows and tools call without
        naming one all the time). NotConnected when the end user has none."""
        key = (connector, end_user)
        cached = self._defaults.get(key)
        if cached is not None and time.monotonic() - cached[1] < CONNECTION_TTL:
            return cached[0]
        recs = await self._rows.list_connections(connector=connector, end_user=end_user)
        chosen: ConnectionRecord | None = None
        if len(recs) == 1:
            chosen = recs[0]
        elif end_user is not None:
            defaults = [r for r in recs if r.is_default]
            chosen = defaults[0] if len(defaults) == 1 else None
        if chosen is not None:
            self._defaults[key] = (chosen.name, time.monotonic())
            self._defaults.move_to_end(key)
            while len(self._defaults) > MAX_DEFAULTS:
                self._defaults.popitem(last=False)
            return chosen.name
        if end_user is not None:
            if not recs:
                raise NotConnected(
                    f"end user {end_user!r} has no {connector} account connected",
                    connector=connector, end_user=end_user)
            labels = ", ".join(r.label or r.name for r in recs)
            raise UnknownConnection(
                f"end user {end_user!r} has several {connector} connections ({labels}) and "
                "none is the default; name one")
        if not recs:
            raise UnknownConnection(
                f"no connection for connector {connector!r}; add one with "
                f"`patchwire connection add {connector} --name NAME --set key=value`"
            )
        names = ", ".join(r.name for r in recs)
        raise UnknownConnection(
            f"connector {connector!r} has several connections ({names}); name one"
        )

    async def renew(self, name: str, rejected: str) -> None:
        """The upstream refused access token ``rejected``: renew it (single-flight with
        every other caller) and resolve the connection again on its next use."""
        assert self._tokens is not None
        await self._tokens.refresh(name, rejected=rejected)
        self._resolved.pop(name, None)


def check_end_user(conn: ResolvedConnection, end_user: str | None) -> None:
    """Refuse a connection that is not ``end_user``'s (None: an operator's call, any
    connection), as if it did not exist: an end user learns nothing of others'."""
    if end_user is not None and conn.record.end_user != end_user:
        raise UnknownConnection(f"no connection named {conn.record.name!r}")


def stale(conn: ResolvedConnection) -> bool:
    """Time to reload: the TTL ran out, or its OAuth2 access token is about to."""
    if time.monotonic() - conn.loaded_at >= CONNECTION_TTL:
        return True
    expires = conn.token_expires_at
    return expires is not None and expires - TOKEN_SKEW <= time.time()


def _credentials(auth: AuthParts | None) -> list[str]:
    """The values an auth scheme sends, and the token of each ``Scheme token`` value."""
    if auth is None:
        return []
    out = [*auth.headers.values(), *auth.query.values(), *auth.cookies.values()]
    out.extend(v.strip().split(" ", 1)[1] for v in auth.headers.values()
               if " " in v.strip())
    return out
