"""Keeping connections' tokens fresh: proactive, forced (after a 401), single-flight.

Every token Patchwire obtains for a connection is kept here: OAuth2's (each flow: code,
client credentials, password, device code, JWT bearer) and a two-step token exchange's
(``type: token_exchange``); :meth:`TokenKeeper.token_client` picks what renews it.

Single-flight on two levels, because a refresh storm is what revokes token families (a
server rotating refresh tokens treats a second use of the old one as theft):

* within a process, every caller needing a new token for a connection awaits the same
  future, so N concurrent callers cause one token request;
* across processes, the refresh runs while holding the connection's row lock
  (:meth:`Store.locked_connection`: ``SELECT ... FOR UPDATE`` on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite), and the row is re-read after the lock is taken: if
  another process refreshed meanwhile, its tokens are reused instead of refreshing again.

Holding the lock across the token request is deliberate: a token endpoint answers in
milliseconds to a few seconds (bounded by the connector's timeouts), and the alternative
(a lease with polling) would need either sleeps or a schema change.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from patchwire.auth._device import DEFAULT_DEVICE_WAIT, DeviceAuthorization
from patchwire.auth._exchange import TokenExchangeClient
from patchwire.auth._schemes import MissingCredential, render_client_tls
from patchwire.auth._tokens import (
    TokenSet,
    mark_needs_reauth,
    needs_reauth,
    renewed_at,
    stamp_renewed,
)
from patchwire.auth.oauth2 import OAuth2Client
from patchwire.auth.vault import Vault, connection_aad, oauth_app_aad
from patchwire.connectors import ConnectorRegistry, compile_template
from patchwire.connectors.spec import (
    KEPT_TOKEN_AUTHS,
    ConnectorSpec,
    OAuth2Auth,
    TokenExchangeAuth,
)
from patchwire.errors import ConfigError, OAuthError, ReauthRequired
from patchwire.http import ClientCertificateError, HttpCore
from patchwire.store import ConnectionRecord, Store
from patchwire.store.connect import OAuthAppRepository

if TYPE_CHECKING:
    from patchwire.store.core import LockedConnection

__all__ = ["DEFAULT_MAX_TOKEN_AGE", "DEFAULT_REFRESH_SKEW", "TokenKeeper", "UnsavedTokens",
           "connection_values"]

#: refresh this many seconds before the stated expiry, so a token never expires in flight
DEFAULT_REFRESH_SKEW = 60.0
#: tokens older than this are renewed by :meth:`TokenKeeper.refresh_due` even when nobody
#: uses the connection: many providers expire refresh tokens that sit unused
DEFAULT_MAX_TOKEN_AGE = 24 * 3600.0

#: told of every refresh that failed (``ReauthRequired`` or a transient ``OAuthError``)
FailureHook = Callable[[ConnectionRecord, OAuthError], None]

log = logging.getLogger("patchwire.oauth")


def connection_values(
    spec: ConnectorSpec, record: ConnectionRecord, secrets: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults, then settings, then secrets: what templates are filled from."""
    values: dict[str, Any] = {
        k: s.default for k, s in spec.settings.items() if s.default is not None
    }
    values.update(record.settings)
    values.update(secrets)
    return values


class TokenKeeper:
    """Fresh access tokens for OAuth2 connections, one refresh at a time per connection.

    ``clock`` gives epoch seconds (a fake one in tests). ``skew`` is how early before
    expiry a token counts as expired. ``on_failure`` is told of every failed refresh (the
    connection's record and the error), once per flight, e.g. to record an event.
    """

    def __init__(
        self,
        store: Store,
        vault: Vault,
        connectors: ConnectorRegistry,
        http: HttpCore,
        *,
        skew: float = DEFAULT_REFRESH_SKEW,
        clock: Callable[[], float] = time.time,
        on_failure: FailureHook | None = None,
    ) -> None:
        self._store = store
        self._vault = vault
        self._connectors = connectors
        self._http = http
        self.skew = skew
        self.clock = clock
        self.on_failure = on_failure
        self._cache: dict[str, TokenSet] = {}
        self._inflight: dict[str, asyncio.Future[TokenSet]] = {}

    def __repr__(self) -> str:
        return f"TokenKeeper(skew={self.skew!r}, connections={len(self._cache)})"

    # -- reading ---------------------------------------------------------------------------

    async def access_token(self, name: str) -> str:
        """A usable access token for connection ``name``, refreshed first if it expires
        within ``skew`` seconds."""
        return (await self.tokens(name)).access_token

    async def tokens(self, name: str) -> TokenSet:
        cached = self._cache.get(name)
        if cached is not None and not cached.expires_within(self.skew, self.clock()):
            return cached
        return await self._single_flight(name, rejected=None)

    async def refresh(self, name: str, *, rejected: str | None = None) -> TokenSet:
        """Renew now. ``rejected`` is the access token an upstream just refused (401): if
        the stored token is already a different one, somebody refreshed meanwhile and it is
        returned without another token request."""
        cached = self._cache.get(name)
        if (rejected is not None and cached is not None and cached.access_token != rejected
                and not cached.expires_within(self.skew, self.clock())):
            return cached
        return await self._single_flight(name, rejected=rejected or "")

    async def needs_reauth(self, name: str) -> bool:
        """True once a refresh was refused: a person must authorise the connection again."""
        rec = await self._store.get_connection(name)
        return needs_reauth(self._decrypt(rec))

    def forget(self, name: str) -> None:
        """Drop the cached tokens of ``name`` (e.g. after its secrets were replaced)."""
        self._cache.pop(name, None)

    # -- writing ---------------------------------------------------------------------------

    async def store_tokens(self, name: str, tokens: TokenSet) -> None:
        """Save tokens (after a code exchange) into the connection's encrypted secrets;
        clears ``needs_reauth``."""
        async with self._store.locked_connection(name) as locked:
            await self._write(locked, self._decrypt(locked.record), tokens)
        self._cache[name] = tokens

    def client_for(self, record: ConnectionRecord, secrets: Mapping[str, Any], *,
                   app: tuple[str, str | None, Sequence[str]] | None = None) -> OAuth2Client:
        """The token client of a connection. ``app``: the deployment's OAuth app for the
        connector (client id, secret, scopes), used when the connection has no client id
        of its own (see :meth:`oauth_client`)."""
        spec = self._connectors.get(record.connector)
        auth = spec.auth
        if not isinstance(auth, OAuth2Auth):
            raise ConfigError(
                f"connection {record.name!r}: connector {spec.name!r} does not use oauth2 auth"
            )
        values = connection_values(spec, record, secrets)
        if app is not None:
            client_id, client_secret, scopes = app
            values.update(_app_values(auth, client_id, client_secret))
            if scopes:
                auth = auth.model_copy(update={"scopes": list(scopes)})
        return OAuth2Client(auth, values, http=self._http,
                            timeouts=spec.timeouts, connection=record.name, clock=self.clock,
                            settings=spec.settings, base_url=spec.base_url,
                            tls=_client_tls(spec, values, record.name))

    async def oauth_client(self, record: ConnectionRecord,
                           secrets: Mapping[str, Any]) -> OAuth2Client:
        """:meth:`client_for`, falling back to the deployment's OAuth app of the connector
        (``oauth_apps``: ``patchwire oauth-apps set``) when the connection has no client id
        of its own — connections made through connect links have none."""
        spec = self._connectors.get(record.connector)
        app = None
        if isinstance(spec.auth, OAuth2Auth) and not _has_client_id(
                spec.auth, connection_values(spec, record, secrets)):
            found = await OAuthAppRepository(self._store).get(record.connector)
            if found is not None:
                secret = (self._vault.decrypt(found.client_secret,
                                              aad=oauth_app_aad(found.connector)).decode()
                          if found.client_secret else None)
                app = (found.client_id, secret, found.scopes)
        return self.client_for(record, secrets, app=app)

    async def token_client(self, record: ConnectionRecord, secrets: Mapping[str, Any]
                           ) -> OAuth2Client | TokenExchangeClient:
        """What renews the connection's token: its OAuth2 client (:meth:`oauth_client`),
        or the token exchange of a ``token_exchange`` connector. A setting it needs that is
        missing or unusable is an OAuthError naming the setting (never its value)."""
        spec = self._connectors.get(record.connector)
        try:
            if isinstance(spec.auth, TokenExchangeAuth):
                values = connection_values(spec, record, secrets)
                return TokenExchangeClient(
                    spec.auth, values, http=self._http, base_url=spec.base_url,
                    timeouts=spec.timeouts, connection=record.name, clock=self.clock,
                    settings=spec.settings, tls=_client_tls(spec, values, record.name),
                    secrets=[str(v) for v in secrets.values() if isinstance(v, str) and v])
            return await self.oauth_client(record, secrets)
        except MissingCredential as exc:
            raise _missing(record.name, exc) from None

    def unsaved(self, record: ConnectionRecord, secrets: Mapping[str, Any]) -> UnsavedTokens:
        """Tokens for a connection not (yet) in the store, from its values alone: what a
        connect page proving credentials before saving them gives its resolver."""
        return UnsavedTokens(self, record, secrets)

    async def authorize_device(
        self, name: str, *, on_code: Callable[[DeviceAuthorization], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = DEFAULT_DEVICE_WAIT,
    ) -> TokenSet:
        """The device authorization grant (RFC 8628) for connection ``name``: ``on_code``
        is given the verification URI and user code to show a person; then the token
        endpoint is polled (bounded, see :meth:`OAuth2Client.poll_device_token`) and the
        tokens are stored encrypted with the connection."""
        rec = await self._store.get_connection(name)
        client = await self.token_client(rec, self._decrypt(rec))
        if not isinstance(client, OAuth2Client) or client.spec.flow != "device_code":
            raise ConfigError(f"connection {name!r}: connector {rec.connector!r} does not "
                              "use the oauth2 device_code flow")
        device = await client.device_authorization()
        on_code(device)
        tokens = await client.poll_device_token(device, sleep=sleep, max_wait=max_wait)
        await self.store_tokens(name, tokens)
        return tokens

    async def refresh_due(self, max_age: float = DEFAULT_MAX_TOKEN_AGE) -> list[str]:
        """Renew every OAuth2 connection whose tokens were last issued or renewed more than
        ``max_age`` seconds ago (or never noted), or expire within ``skew``: keeps refresh
        tokens alive while connections sit idle. Single-flight as every refresh (the age is
        checked again under the row lock, so processes running this together renew once).

        Connections without tokens or marked ``needs_reauth`` are skipped; a failed
        refresh is logged (and reported to ``on_failure``) and the others still run.
        Returns the names whose tokens changed (renewed here, or by another process while
        this one waited for the row lock).
        """
        renewed: list[str] = []
        for rec in await self._store.list_connections():
            if rec.connector not in self._connectors or not isinstance(
                    self._connectors.get(rec.connector).auth, KEPT_TOKEN_AUTHS):
                continue
            try:
                secrets = self._decrypt(rec)
            except Exception:  # a key problem: say so, keep the others going
                log.warning("cannot read the tokens of connection %s", rec.name)
                continue
            tokens = TokenSet.from_secrets(secrets)
            if tokens is None or needs_reauth(secrets) or not self._due(tokens, secrets,
                                                                         max_age):
                continue
            try:
                fresh = await self._single_flight(rec.name, rejected=None, max_age=max_age)
            except OAuthError as exc:
                log.warning("background refresh of connection %s failed (%s)", rec.name,
                            exc.error)
                continue
            if fresh.access_token != tokens.access_token:
                renewed.append(rec.name)
        return renewed

    def _due(self, tokens: TokenSet, secrets: Mapping[str, Any], max_age: float | None) -> bool:
        now = self.clock()
        if tokens.expires_within(self.skew, now):
            return True
        if max_age is None:
            return False
        last = renewed_at(secrets)
        return last is None or now - last >= max_age

    # -- the refresh -----------------------------------------------------------------------

    async def _single_flight(
        self, name: str, *, rejected: str | None, max_age: float | None = None
    ) -> TokenSet:
        pending = self._inflight.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._renew(name, rejected, max_age))
            self._inflight[name] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(name, None))
        # shield: one impatient caller being cancelled must not cancel everyone's refresh
        return await asyncio.shield(pending)

    async def _renew(
        self, name: str, rejected: str | None, max_age: float | None = None
    ) -> TokenSet:
        reauth: ReauthRequired | None = None
        failed: OAuthError | None = None
        async with self._store.locked_connection(name) as locked:
            rec = locked.record
            secrets = self._decrypt(rec)
            current = TokenSet.from_secrets(secrets)
            if needs_reauth(secrets):
                raise ReauthRequired(
                    "the connection needs to be authorised again "
                    f"(`patchwire connection connect {rec.connector} --name {rec.name}`)",
                    error=str((secrets.get("oauth2") or {}).get("reauth_reason") or
                              "needs_reauth"),
                    connection=name,
                )
            if current is not None and self._still_good(current, rejected) and not (
                    max_age is not None and self._due(current, secrets, max_age)):
                # another process (or an earlier flight) refreshed while we waited
                self._cache[name] = current
                return current
            try:
                client = await self.token_client(rec, secrets)
                fresh = await client.renew(current)
            except MissingCredential as exc:  # e.g. a password grant's empty password
                failed = _missing(name, exc)
            except ReauthRequired as exc:
                reauth = exc
                await locked.update(secrets=self._encrypt(rec, mark_needs_reauth(secrets,
                                                                                 exc.error)))
            except OAuthError as exc:
                failed = exc  # transient (5xx, network): the next call tries again
            else:
                await self._write(locked, secrets, fresh)
                self._cache[name] = fresh
                log.info("renewed the tokens of connection %s", name)
                return fresh
        # outside the lock, so the needs_reauth mark is committed before anyone hears of it
        if failed is not None:
            self._report(rec, failed)
            raise failed
        assert reauth is not None
        self._cache.pop(name, None)
        log.warning("connection %s needs to be authorised again (%s)", name, reauth.error)
        self._report(rec, reauth)
        raise reauth

    async def _write(self, locked: LockedConnection, secrets: Mapping[str, Any],
                     tokens: TokenSet) -> None:
        """Save ``tokens`` into the locked connection's secrets, and the settings the grant
        taught (``tokens.settings``, checked already) with its settings: sealed with the
        secrets when the connector declares them secret. A setting the answer did not
        carry keeps its value; one it carries anew replaces it (an instance_url moved)."""
        rec = locked.record
        out = stamp_renewed(tokens.merged_into(secrets), self.clock())
        settings: dict[str, Any] | None = None
        if tokens.settings:
            declared = self._connectors.get(rec.connector).settings
            plain = {k: v for k, v in tokens.settings.items()
                     if not (k in declared and declared[k].secret)}
            out.update({k: v for k, v in tokens.settings.items() if k not in plain})
            if any(rec.settings.get(k) != v for k, v in plain.items()):
                settings = {**rec.settings, **plain}
        await locked.update(secrets=self._encrypt(rec, out), settings=settings)

    def _report(self, rec: ConnectionRecord, exc: OAuthError) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(rec, exc)
        except Exception:  # an event sink failing must not hide the refresh's own error
            log.exception("recording the failed refresh of connection %s failed", rec.name)

    def _still_good(self, current: TokenSet, rejected: str | None) -> bool:
        if current.expires_within(self.skew, self.clock()):
            return False
        if rejected is None:
            return True  # proactive: not expiring, nothing to do
        # forced: only a token other than the one the upstream refused will do
        return bool(rejected) and current.access_token != rejected

    def _decrypt(self, rec: ConnectionRecord) -> dict[str, Any]:
        if not rec.secrets:
            return {}
        return self._vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id))

    def _encrypt(self, rec: ConnectionRecord, secrets: dict[str, Any]) -> str:
        return self._vault.encrypt_json(secrets, aad=connection_aad(rec.id))


class UnsavedTokens:
    """``AccessTokens`` of one connection that is not in the store (its credentials are
    being proved): tokens fetched from its values, kept in memory only, one request at a
    time. Nothing is written anywhere; flows needing a person (code, device) have none."""

    def __init__(self, keeper: TokenKeeper, record: ConnectionRecord,
                 secrets: Mapping[str, Any]) -> None:
        self._keeper = keeper
        self._record = record
        self._secrets = dict(secrets)
        self._tokens: TokenSet | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"UnsavedTokens({self._record.name!r})"

    async def tokens(self, name: str) -> TokenSet:
        async with self._lock:
            current = self._tokens
            if current is None or current.expires_within(self._keeper.skew,
                                                         self._keeper.clock()):
                current = await self._fetch(current)
            return current

    async def refresh(self, name: str, *, rejected: str | None = None) -> TokenSet:
        async with self._lock:
            current = self._tokens
            if current is not None and rejected is not None \
                    and current.access_token != rejected:
                return current  # renewed meanwhile
            return await self._fetch(current)

    async def _fetch(self, previous: TokenSet | None) -> TokenSet:
        client = await self._keeper.token_client(self._record, self._secrets)
        try:
            fresh = await client.renew(previous)
        except MissingCredential as exc:
            raise _missing(self._record.name, exc) from None
        self._tokens = fresh
        return fresh


def _client_tls(spec: ConnectorSpec, values: Mapping[str, Any], name: str
                ) -> ssl.SSLContext | None:
    """The connection's client certificate (mutual TLS), presented to its token endpoint as
    to its API; an unusable one is an OAuthError that never shows it."""
    try:
        return render_client_tls(spec.client_certificate, values)
    except MissingCredential as exc:
        raise _missing(name, exc) from None
    except ClientCertificateError as exc:
        raise OAuthError(f"connection {name!r}: {exc}", error="invalid_setting",
                         connection=name) from None


def _missing(name: str, exc: MissingCredential) -> OAuthError:
    return OAuthError(
        f"connection {name!r} has no value for setting {exc.setting!r}, which its token "
        f"request needs (`patchwire connection update {name} --set {exc.setting}=...`)",
        error="missing_setting", connection=name)


def _placeholder(template: str) -> str | None:
    """The setting a template is exactly (``"{client_id}"`` → ``client_id``), else None."""
    names = compile_template(template).names
    return names[0] if len(names) == 1 and template.strip() == f"{{{names[0]}}}" else None


def _has_client_id(auth: OAuth2Auth, values: Mapping[str, Any]) -> bool:
    name = _placeholder(auth.client_id)
    return name is None or values.get(name) not in (None, "")


def _app_values(auth: OAuth2Auth, client_id: str, client_secret: str | None
                ) -> dict[str, Any]:
    """What fills the connector's client id and secret templates from an OAuth app."""
    out: dict[str, Any] = {}
    id_name, secret_name = _placeholder(auth.client_id), _placeholder(auth.client_secret)
    if id_name is not None:
        out[id_name] = client_id
    if secret_name is not None and client_secret:
        out[secret_name] = client_secret
    return out
