"""What happens behind a connect link: the OAuth2 authorization (code + PKCE + state)
and the credentials form, each ending with the end user's connection saved and the link
closed.

OAuth2: the browser is sent to the provider with a fresh ``state`` and PKCE challenge; the
session row keeps the state's SHA-256 and the verifier sealed by the vault, so the callback
(``{public_url}/oauth/callback``) finds its session by state, takes it once (a replayed or
forged state finds nothing), and trades the code for tokens through the token client (the
HTTP core, as every token request). The client id and secret are the deployment's OAuth app
for the connector. The tokens are stored encrypted with the connection, as the token keeper
stores every token.

Credentials (API key, basic, header schemes): the fields are the connector's settings that
a connection must supply (secret ones masked); they are proved with the connector's
``test:`` call *before* anything is saved — the call is made through a call path of its own
over the unsaved connection — so a wrong key is refused on the page and nothing is kept.

A new connection is named ``{connector}-{random}`` and belongs to the end user; their first
of a connector becomes their default. A reconnect link replaces the credentials of the
connection it names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from patchwire.auth import MissingCredential, TokenSet, new_authorization
from patchwire.calls import CallPath, CallRequest, ConnectionResolver
from patchwire.connect._sessions import ConnectSessions, closed_because, notify
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, compile_template
from patchwire.connectors.spec import OAuth2Auth
from patchwire.errors import (
    OAuthError,
    UnknownConnection,
    UnknownConnector,
    UnknownConnectSession,
    UnknownOAuthApp,
)
from patchwire.runtime import Runtime
from patchwire.store import ConnectionRecord
from patchwire.store.connect import ConnectSessionRecord, ConnectSessionRepository

__all__ = ["MAX_FIELD", "Accounts", "ConnectFlow", "FormField", "Offer", "clean",
           "new_connection_name"]

#: the longest value one field of the form may hold
MAX_FIELD: Final = 4096
#: the longest ``state`` a callback may carry (ours are 32 characters)
MAX_STATE: Final = 512
MAX_CODE: Final = 4096


class Accounts(Protocol):
    """What the connect flow needs of the ``Patchwire`` facade (it meets this)."""

    runtime: Runtime

    async def add_connection(
        self, connector: str, name: str, values: Mapping[str, Any] | None = None, *,
        end_user: str | None = None, label: str | None = None,
    ) -> Any: ...

    async def update_connection(
        self, name: str, values: Mapping[str, Any], *, label: str | None = None,
    ) -> Any: ...

    async def set_default_connection(self, name: str) -> Any: ...


@dataclass(frozen=True)
class FormField:
    """One input of a connect form: a connector's setting, named as in the connector."""

    name: str
    label: str
    secret: bool
    required: bool
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Offer:
    """A connector a link offers: ``oauth2`` (sign in at the provider) or ``form``."""

    connector: str
    title: str
    kind: str


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _verifier_aad(session: str) -> bytes:
    return f"connect_session:{session}".encode()


def _placeholder(template: str) -> str | None:
    names = compile_template(template).names
    return names[0] if len(names) == 1 and template.strip() == f"{{{names[0]}}}" else None


class _Unsaved:
    """The one connection a proving call may use, not in the store."""

    def __init__(self, record: ConnectionRecord) -> None:
        self._record = record

    async def get_connection(self, name: str) -> ConnectionRecord:
        if name != self._record.name:
            raise UnknownConnection(f"no connection named {name!r}")
        return self._record

    async def list_connections(self, connector: str | None = None,
                               end_user: str | None = None) -> Sequence[ConnectionRecord]:
        return [self._record]


class ConnectFlow:
    """The connect flow over ``accounts`` (the facade) and its ``sessions``."""

    def __init__(self, accounts: Accounts, sessions: ConnectSessions | None = None) -> None:
        self._accounts = accounts
        self.sessions = sessions or ConnectSessions(accounts.runtime)

    @property
    def _runtime(self) -> Runtime:
        return self._accounts.runtime

    @property
    def redirect_uri(self) -> str:
        return f"{self._runtime.settings.effective_public_url}/oauth/callback"

    def _repo(self) -> ConnectSessionRepository:
        return ConnectSessionRepository(self._runtime.store)

    # -- what a link offers ---------------------------------------------------------------

    def offers(self, rec: ConnectSessionRecord) -> list[Offer]:
        connectors = self._runtime.connectors
        out = []
        for name in rec.connectors:
            if name in connectors:  # a connector removed since the link was made: gone
                spec = connectors.get(name)
                out.append(Offer(name, spec.title or name, _kind(spec)))
        return out

    def offered(self, rec: ConnectSessionRecord, connector: str) -> ConnectorSpec:
        """The connector when the link offers it; UnknownConnector otherwise."""
        if connector not in rec.connectors or connector not in self._runtime.connectors:
            raise UnknownConnector(f"this connect link does not offer {connector!r}")
        return self._runtime.connectors.get(connector)

    @staticmethod
    def fields(spec: ConnectorSpec) -> list[FormField]:
        """What the end user fills in: the connector's settings a connection must supply,
        secret ones masked. A setting with a default is the deployment's (a base URL):
        not offered, so nobody points the server's calls elsewhere. For OAuth2 the
        credentials come from the provider and the OAuth app, so only plain settings
        without a default are asked (a tenant's subdomain)."""
        oauth = isinstance(spec.auth, OAuth2Auth)
        skip: set[str] = set()
        if isinstance(spec.auth, OAuth2Auth):
            skip = {n for n in (_placeholder(spec.auth.client_id),
                                _placeholder(spec.auth.client_secret)) if n}
            # the provider tells these (an instance URL, a company id): nobody types them
            skip |= set(spec.auth.settings_from_token) | set(spec.auth.settings_from_callback)
        out = []
        for name, setting in spec.settings.items():
            if name in skip or (oauth and setting.secret):
                continue
            if setting.default is not None and not setting.secret:
                continue
            out.append(FormField(name, setting.description or name, setting.secret,
                                 setting.required and setting.default is None,
                                 tuple(setting.enum) if setting.enum else None))
        return out

    async def existing(self, rec: ConnectSessionRecord) -> ConnectionRecord | None:
        """The connection a reconnect link names (still the end user's), else None."""
        if rec.connection is None:
            return None
        found = await self._runtime.store.get_connection(rec.connection)
        if found.end_user != rec.end_user:
            raise UnknownConnection(f"no connection named {rec.connection!r}")
        return found

    # -- the credentials form -------------------------------------------------------------

    async def save_credentials(self, token: str, connector: str,
                               values: Mapping[str, str]) -> tuple[ConnectSessionRecord,
                                                                   str]:
        """Prove and save the credentials given on the form; (the session, the
        connection's name). ValueError for an unusable field (the message names the
        field, never its value); the proving call's typed error (AuthError for refused
        credentials) — nothing is saved then; ConnectSessionClosed, UnknownConnector."""
        rec = await self.sessions.open_record(token)
        spec = self.offered(rec, connector)
        if isinstance(spec.auth, OAuth2Auth):
            raise ValueError(f"{spec.title or spec.name} is connected by signing in there, "
                             "not with a form")
        given = clean(self.fields(spec), values)
        existing = await self.existing(rec)
        name = existing.name if existing is not None else new_connection_name(connector)
        merged: dict[str, Any] = dict(given)
        if existing is not None:
            merged = {**existing.settings, **self._runtime.decrypt(existing), **given}
        await self.prove(spec, name, rec.end_user, merged)
        if existing is not None:
            await self._accounts.update_connection(name, given)
            await self._runtime.store.set_connection_state(name, needs_reauth=False)
            self._runtime.calls.forget(name)
        else:
            await self._add(spec, name, rec, given)
        await self.sessions.finish(rec, name)
        return rec, name

    async def prove(self, spec: ConnectorSpec, name: str, end_user: str,
                    values: Mapping[str, Any]) -> None:
        """Make the connector's ``test:`` call with these values, unsaved (a connector
        without one cannot be proved: the values are taken as they are)."""
        if spec.test is None:
            return
        plain = {k: v for k, v in values.items() if not spec.settings[k].secret}
        secret = {k: v for k, v in values.items() if spec.settings[k].secret}
        record = ConnectionRecord.new(name, spec.name, end_user=end_user, settings=plain)
        registry = ConnectorRegistry([spec])
        # tokens a connector obtains with these values (token exchange, password grant...)
        # are fetched for the proof, not stored: the connection does not exist yet
        resolver = ConnectionResolver(_Unsaved(record), registry, lambda _: dict(secret),
                                      self._runtime.tokens.unsaved(record, secret))
        # a call path of its own: the unsaved connection is never cached where calls look
        path = CallPath(registry, resolver, self._runtime.http, lambda _: None,
                        code_paths=self._runtime.settings.code_paths)
        await path.execute(CallRequest(f"{spec.name}.{spec.test.action}",
                                       dict(spec.test.input), name, end_user=end_user))

    async def _add(self, spec: ConnectorSpec, name: str, rec: ConnectSessionRecord,
                   values: Mapping[str, Any]) -> None:
        first = not await self._runtime.store.list_connections(connector=spec.name,
                                                               end_user=rec.end_user)
        await self._accounts.add_connection(spec.name, name, values, end_user=rec.end_user,
                                            label=rec.label)
        if first:
            await self._accounts.set_default_connection(name)

    # -- OAuth2 ---------------------------------------------------------------------------

    async def start_oauth(self, token: str, connector: str,
                          values: Mapping[str, str] | None = None) -> str:
        """The provider's authorize URL for this link; the state and verifier are noted on
        the session. UnknownOAuthApp when neither the deployment nor the connection has a
        client id."""
        rec = await self.sessions.open_record(token)
        spec = self.offered(rec, connector)
        auth = spec.auth
        if not isinstance(auth, OAuth2Auth) or auth.flow != "authorization_code":
            raise ValueError(f"{spec.title or spec.name} is connected with a form")
        given = clean(self.fields(spec), values or {})
        existing = await self.existing(rec)
        client = await self._client(spec, rec, existing, given)
        url, state, pkce = new_authorization(client, self.redirect_uri)
        sealed = (self._runtime.vault.encrypt(pkce.verifier.encode(),
                                              aad=_verifier_aad(rec.id))
                  if pkce is not None else None)
        if not await self._repo().begin_oauth(rec.id, connector=connector,
                                              state_digest=_digest(state),
                                              code_verifier=sealed,
                                              extra={"settings": dict(given)},
                                              now=self.sessions.clock()):
            closed_because(await self.sessions.record(token), self.sessions.clock())
        return url

    async def _client(self, spec: ConnectorSpec, rec: ConnectSessionRecord,
                      existing: ConnectionRecord | None,
                      settings: Mapping[str, Any]) -> Any:
        record = existing or ConnectionRecord.new(f"{spec.name}-new", spec.name,
                                                  end_user=rec.end_user,
                                                  settings=dict(settings))
        secrets_ = self._runtime.decrypt(existing) if existing is not None else {}
        try:
            return await self._runtime.tokens.oauth_client(record, secrets_)
        except MissingCredential:
            raise UnknownOAuthApp(
                f"this deployment has no OAuth app for {spec.name!r} yet (the operator sets "
                f"one with `patchwire oauth-apps set {spec.name}`)") from None

    async def finish_oauth(self, *, state: str | None, code: str | None,
                           error: str | None = None,
                           query: Mapping[str, str] | None = None,
                           ) -> tuple[ConnectSessionRecord, str]:
        """The provider sent the browser back: trade the code for tokens and save them
        with the end user's connection; (the session, the connection's name). ``query``
        is the callback's whole query, which settings the connector takes from it
        (``settings_from_callback``) are read from, checked like a typed value.
        UnknownConnectSession for a state no link is waiting for (forged, or used
        already); ConnectSessionClosed; OAuthError when the provider refused or the
        exchange failed (the link stays usable: the person may try again)."""
        if not state or len(state) > MAX_STATE:
            raise UnknownConnectSession("this sign-in answer belongs to no connect link")
        digest = _digest(state)
        rec = await self._repo().by_oauth_state(digest)
        if rec is None:
            raise UnknownConnectSession("this sign-in answer belongs to no connect link "
                                        "waiting for one (was it used already?)")
        closed_because(rec, self.sessions.clock())
        if not await self._repo().take_oauth(rec.id, digest):  # a replay racing this one
            raise UnknownConnectSession("this sign-in answer was used already")
        if error or not code or len(code) > MAX_CODE:
            reason = _code(error) if error else "no_code"
            await self._repo().note_error(rec.id, f"the provider answered {reason}")
            notify(rec.id)
            raise OAuthError(f"the provider did not grant access ({reason})",
                             error=reason)
        assert rec.oauth_connector is not None  # set with the state
        spec = self.offered(rec, rec.oauth_connector)
        settings = dict((rec.extra or {}).get("settings") or {})
        existing = await self.existing(rec)
        client = await self._client(spec, rec, existing, settings)
        try:
            learned = client.callback_settings(query or {})
        except OAuthError as exc:  # a forged value ("evil.com" for a shop): nothing saved
            await self._repo().note_error(rec.id, f"the provider answered {exc.error}")
            notify(rec.id)
            raise
        if learned:  # the token request's URL may name them (Shopify's {shop})
            settings = {**settings, **learned}
            client = await self._client(spec, rec, existing, settings)
        verifier = (self._runtime.vault.decrypt(rec.code_verifier,
                                                aad=_verifier_aad(rec.id)).decode()
                    if rec.code_verifier else None)
        tokens: TokenSet = await client.exchange_code(code, redirect_uri=self.redirect_uri,
                                                      code_verifier=verifier)
        # saved with the tokens (the keeper writes the settings a grant taught)
        tokens = dataclasses.replace(tokens, settings={**learned, **tokens.settings})
        if existing is not None:
            name = existing.name
            await self._runtime.store.set_connection_state(name, needs_reauth=False)
        else:
            name = new_connection_name(spec.name)
            await self._add(spec, name, rec, {**settings, **tokens.settings})
        await self._runtime.tokens.store_tokens(name, tokens)
        self._runtime.calls.forget(name)
        await self.sessions.finish(rec, name)
        return rec, name


def _kind(spec: ConnectorSpec) -> str:
    return ("oauth2" if isinstance(spec.auth, OAuth2Auth)
            and spec.auth.flow == "authorization_code" else "form")


def _code(error: str) -> str:
    """An RFC 6749 error code as shown: its safe characters only, bounded."""
    kept = "".join(c for c in error[:64] if c.isalnum() or c in "_-.")
    return kept or "error"


def new_connection_name(connector: str) -> str:
    """``{connector}-{8 random hex}``: unique enough, and naming no end user."""
    return f"{connector}-{secrets.token_hex(4)}"


def clean(fields: Sequence[FormField], values: Mapping[str, str]) -> dict[str, str]:
    """The form's values of ``fields`` (others ignored), each one line of at most
    :data:`MAX_FIELD` characters; ValueError names the field (never its value). Empty
    optional fields are left out."""
    out: dict[str, str] = {}
    for f in fields:
        raw = values.get(f.name)
        value = raw.strip() if isinstance(raw, str) else ""
        if len(value) > MAX_FIELD:
            raise ValueError(f"{f.label}: at most {MAX_FIELD} characters")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
            raise ValueError(f"{f.label}: must be one line without control characters")
        if not value:
            if f.required:
                raise ValueError(f"{f.label}: required")
            continue
        if f.enum is not None and value not in f.enum:
            raise ValueError(f"{f.label}: must be one of {', '.join(f.enum)}")
        out[f.name] = value
    return out

