"""``Patchwire``: the object users hold — connections, calls, tokens — a thin face over the
``Runtime``, which holds the parts (store, vault, HTTP core, call path) and runs the
background work."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from patchwire.auth import DEFAULT_CONSENT_TIMEOUT, DEFAULT_MAX_TOKEN_AGE, consent_via_loopback
from patchwire.auth.vault import Vault, connection_aad
from patchwire.calls import CallOutcome, CallPath, CallRequest, ResolvedConnection
from patchwire.config import Settings
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, setting_value_problems
from patchwire.errors import ConfigError, RequestRenderError
from patchwire.http import BreakerState, HttpCore
from patchwire.runtime import BACKGROUND_REFRESH_INTERVAL, Runtime, TokenRefresh
from patchwire.store import Store
from patchwire.store.records import CallRecord, ConnectionRecord
from patchwire.store.tools import ToolCallRecord

__all__ = ["BACKGROUND_REFRESH_INTERVAL", "ConnectionInfo", "ConnectionTest", "Patchwire"]


@dataclass(frozen=True)
class ConnectionInfo:
    """A connection as shown to people and APIs: secret values are never included."""

    name: str
    connector: str
    end_user: str | None
    settings: dict[str, Any]
    secrets_set: list[str]
    created_at: datetime
    updated_at: datetime
    label: str | None = None
    is_default: bool = False
    needs_reauth: bool = False
    health: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d


@dataclass(frozen=True)
class ConnectionTest:
    """A connection's test call that succeeded: which action answered, how, how fast."""

    connection: str
    action: str
    status: int
    latency_ms: float


class Patchwire:
    """Entry point::

        async with Patchwire() as pw:
            order = await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")

    ``runtime``: the parts to use (shared with whoever built it: ``create_app``, the
    worker); by default one of its own, built from ``settings``, ``connectors``, ``http``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        connectors: ConnectorRegistry | None = None,
        http: HttpCore | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.runtime = runtime or Runtime(settings, connectors=connectors, http=http)
        self._refresher: TokenRefresh | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> Patchwire:
        await self.runtime.open()
        return self

    async def close(self) -> None:
        await self.stop_background_refresh()
        await self.runtime.close()

    async def __aenter__(self) -> Patchwire:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def connectors(self) -> ConnectorRegistry:
        return self.runtime.connectors

    def use_connectors(self, connectors: ConnectorRegistry) -> None:
        """Reloaded definitions: calls from now on use ``connectors``; a call in flight
        ends with the definition it started with."""
        self.runtime.use_connectors(connectors)

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def calls(self) -> CallPath:
        """The call path: the one way anything here reaches an upstream."""
        return self.runtime.calls

    @property
    def vault(self) -> Vault:
        return self.runtime.vault

    # -- connections -----------------------------------------------------------------------

    async def add_connection(
        self, connector: str, name: str, values: Mapping[str, Any] | None = None, *,
        end_user: str | None = None, label: str | None = None, test: bool = False,
    ) -> ConnectionInfo:
        """Create a connection. Values of settings declared ``secret`` are encrypted.
        ``test``: make the connector's test call with it first (see
        :meth:`add_tested_connection`)."""
        if test:
            return (await self.add_tested_connection(connector, name, values,
                                                     end_user=end_user, label=label))[0]
        return (await self._add_connection(connector, name, values, end_user, label,
                                           False))[0]

    async def add_tested_connection(
        self, connector: str, name: str, values: Mapping[str, Any] | None = None, *,
        end_user: str | None = None, label: str | None = None,
    ) -> tuple[ConnectionInfo, ConnectionTest]:
        """Create a connection whose test call succeeds: when it fails the connection is
        removed again (no event told of it) and the call's error raised (ConfigError when
        the connector declares no test call)."""
        info, tested = await self._add_connection(connector, name, values, end_user, label,
                                                  True)
        assert tested is not None
        return info, tested

    async def _add_connection(
        self, connector: str, name: str, values: Mapping[str, Any] | None,
        end_user: str | None, label: str | None, test: bool,
    ) -> tuple[ConnectionInfo, ConnectionTest | None]:
        spec = self.connectors.get(connector)
        plain, secret = split_settings(spec, dict(values or {}), connection=name)
        rec = ConnectionRecord.new(name, connector, end_user=end_user, label=label,
                                   settings=plain)
        if secret:
            rec = dataclasses.replace(
                rec, secrets=self.vault.encrypt_json(secret, aad=connection_aad(rec.id))
            )
        await self.store.add_connection(rec)
        self.calls.forget(name)
        tested: ConnectionTest | None = None
        if test:
            # the test call goes through the stored connection, like every call
            try:
                tested = await self.test_connection(name)
            except BaseException:
                await self.store.remove_connection(name)
                self.calls.forget(name)
                self.runtime.events.forget(name)
                raise
        await self.runtime.events.publish("connection.created", rec)
        return self._info(rec), tested

    async def update_connection(
        self, name: str, values: Mapping[str, Any], *, label: str | None = None,
    ) -> ConnectionInfo:
        """Change some values of a connection (and its label: ``""`` removes it); the
        others are kept."""
        rec = await self.store.get_connection(name)
        spec = self.connectors.get(rec.connector)
        old_secret = self._decrypt(rec)
        merged = {**rec.settings, **old_secret, **values}
        plain, secret = split_settings(spec, merged, connection=name)
        token = self.vault.encrypt_json(secret, aad=connection_aad(rec.id)) if secret else ""
        rec = await self.store.update_connection(name, settings=plain, secrets=token,
                                                 label=label)
        if any(spec.settings[k].secret for k in values):
            # new credentials: whatever made the old ones need re-authorising is moot
            await self.store.set_connection_state(name, needs_reauth=False)
            rec = dataclasses.replace(rec, needs_reauth=False)
        self.calls.forget(name)
        changed = sorted(values) + (["label"] if label is not None else [])
        await self.runtime.events.publish("connection.updated", rec, changed=changed)
        return self._info(rec)

    async def get_connection(self, name: str) -> ConnectionInfo:
        return self._info(await self.store.get_connection(name))

    async def list_connections(
        self, connector: str | None = None, end_user: str | None = None, *,
        after: str | None = None, limit: int | None = None,
    ) -> list[ConnectionInfo]:
        """Connections by name (one connector's, one end user's); a page of ``limit``
        after the name ``after``."""
        recs = await self.store.list_connections(connector=connector, end_user=end_user,
                                                 after=after, limit=limit)
        return [self._info(r) for r in recs]

    async def set_default_connection(self, name: str) -> ConnectionInfo:
        """Make connection ``name`` the one its end user's calls of its connector use when
        they name none."""
        rec = await self.store.set_default_connection(name)
        # its cached defaults go with it (forget drops every connector's default); the
        # other connections resolved stay as they are: their credentials did not change
        self.calls.forget(name)
        await self.runtime.events.publish("connection.updated", rec, changed=["is_default"])
        return self._info(rec)

    async def remove_connection(self, name: str) -> None:
        rec = await self.store.get_connection(name)
        await self.store.remove_connection(name)
        self.calls.forget(name)
        self.runtime.events.forget(name)
        await self.runtime.events.publish("connection.deleted", rec)

    def check_connection(self, connector: str, name: str,
                         values: Mapping[str, Any]) -> None:
        """Refuse values a connection could not make calls with, before anything is
        stored: unknown or missing settings, values out of their range, and what the call
        path would refuse to render (a header value with a line break, a base URL that is
        not http(s)). ConfigError saying which."""
        spec = self.connectors.get(connector)
        plain, secret = split_settings(spec, dict(values), connection=name)
        try:
            # the call path's own rendering, on a record that is never stored
            ResolvedConnection.build(ConnectionRecord.new(name, connector, settings=plain),
                                     spec, secret)
        except RequestRenderError as exc:
            raise ConfigError(exc.message) from None

    def _decrypt(self, rec: ConnectionRecord) -> dict[str, Any]:
        return self.runtime.decrypt(rec)

    def _info(self, rec: ConnectionRecord) -> ConnectionInfo:
        # Which secrets are set is derived from the connector, not by decrypting.
        secret_names = (
            sorted(self.connectors.get(rec.connector).secret_settings())
            if rec.connector in self.connectors and rec.secrets else []
        )
        return ConnectionInfo(rec.name, rec.connector, rec.end_user, dict(rec.settings),
                              secret_names, rec.created_at, rec.updated_at, rec.label,
                              rec.is_default, rec.needs_reauth, rec.health)

    # -- calls -----------------------------------------------------------------------------

    async def execute(
        self, action: str, arguments: Mapping[str, Any] | None = None, *,
        connection: str | None = None, request_id: str | None = None,
        run_id: str | None = None, idempotency_key: str | None = None,
        end_user: str | None = None,
    ) -> CallOutcome:
        """Call an action and return the result with its status, attempts and timing
        (shorthand for ``pw.calls.execute(CallRequest(...))``). ``end_user``: through one
        of that end user's connections only."""
        if not self.runtime.is_open:
            await self.open()
        return await self.calls.execute(CallRequest(
            action, {} if arguments is None else arguments, connection, request_id, run_id,
            idempotency_key, end_user=end_user))

    # -- background refresh ----------------------------------------------------------------

    async def refresh_due(self, max_age: float = DEFAULT_MAX_TOKEN_AGE) -> list[str]:
        """Renew every OAuth2 connection's tokens last renewed more than ``max_age``
        seconds ago (or expiring within the skew); returns the names renewed."""
        if not self.runtime.is_open:
            await self.open()
        return await self.runtime.refresh_due(max_age)

    def start_background_refresh(
        self, interval: float = BACKGROUND_REFRESH_INTERVAL, *,
        max_age: float = DEFAULT_MAX_TOKEN_AGE,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> asyncio.Task[None]:
        """Run :meth:`refresh_due` now and then every ``interval`` seconds until
        :meth:`close` (or :meth:`stop_background_refresh`), so refresh tokens of idle
        connections stay alive. ``sleep`` is replaceable for tests. Idempotent."""
        if self._refresher is None or self._refresher.task is None \
                or self._refresher.task.done():
            self.background_refresh(interval, max_age=max_age, sleep=sleep)
        assert self._refresher is not None
        return self._refresher.launch()

    def background_refresh(
        self, interval: float = BACKGROUND_REFRESH_INTERVAL, *,
        max_age: float = DEFAULT_MAX_TOKEN_AGE,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> TokenRefresh:
        """The background refresh as a worker, not started: ``serve`` has its runtime run
        it (:meth:`start_background_refresh` then returns its task; :meth:`close` stops
        it)."""
        # through self.refresh_due (looked up at each round), which opens the runtime
        self._refresher = TokenRefresh(lambda age: self.refresh_due(age),
                                       interval=interval, max_age=max_age, sleep=sleep)
        return self._refresher

    async def stop_background_refresh(self) -> None:
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            await refresher.stop()

    async def authorize(
        self, name: str, *, on_url: Callable[[str], None], port: int = 0,
        consent_timeout: float = DEFAULT_CONSENT_TIMEOUT,
    ) -> None:
        """Authorization-code flow for OAuth2 connection ``name``: ``on_url`` gets the URL
        a person must open; the redirect lands on a one-shot listener on 127.0.0.1, and the
        tokens are stored encrypted with the connection."""
        if not self.runtime.is_open:
            await self.open()
        rec = await self.store.get_connection(name)
        client = self.runtime.tokens.client_for(rec, self._decrypt(rec))
        tokens = await consent_via_loopback(client, on_url=on_url, port=port,
                                            consent_timeout=consent_timeout, connection=name)
        await self.runtime.tokens.store_tokens(name, tokens)
        await self.store.set_connection_state(name, needs_reauth=False)  # authorised anew
        self.calls.forget(name)

    async def needs_reauth(self, name: str) -> bool:
        """True when an OAuth2 connection's refresh was refused: a person must authorise
        it again (``patchwire connection connect``)."""
        if not self.runtime.is_open:
            await self.open()
        return await self.runtime.tokens.needs_reauth(name)

    async def test_connection(self, name: str) -> ConnectionTest:
        """Make the connector's test call (``test:`` in its spec, one cheap read) with
        connection ``name``: a wrong key is caught when it is entered, not at the first
        chat. Raises the call's typed error (AuthError for refused credentials), or
        ConfigError when the connector declares no test call."""
        if not self.runtime.is_open:
            await self.open()
        rec = await self.store.get_connection(name)
        spec = self.connectors.get(rec.connector)
        if spec.test is None:
            raise ConfigError(
                f"connector {spec.name!r} declares no test call (a `test:` entry naming a "
                f"cheap read action); try one yourself: `patchwire call {spec.name}.ACTION "
                f"--connection {name}`")
        action = f"{spec.name}.{spec.test.action}"
        outcome = await self.execute(action, spec.test.input, connection=name)
        return ConnectionTest(name, action, outcome.status, outcome.latency_ms)

    async def call(
        self, action: str, arguments: Mapping[str, Any] | None = None, *,
        connection: str | None = None, request_id: str | None = None,
        paginate: bool = False, max_items: int | None = None, max_pages: int | None = None,
        end_user: str | None = None,
    ) -> Any:
        """Call an action (``"shop.get_order"``) and return its mapped result.

        With ``paginate=True`` every page is read and the records are returned as one list
        (at most ``max_items`` of them, from at most ``max_pages`` pages). ``end_user``:
        through one of that end user's connections only (their default one when
        ``connection`` is None; NotConnected when they have none).
        """
        if not self.runtime.is_open:
            await self.open()
        request = CallRequest(action, {} if arguments is None else arguments, connection,
                              request_id, end_user=end_user)
        if paginate:
            return [record async for record in self.calls.paginate(
                request, max_items=max_items, max_pages=max_pages)]
        return (await self.calls.execute(request)).result

    async def recent_calls(
        self, *, action: str | None = None, connection: str | None = None, limit: int = 100
    ) -> list[CallRecord]:
        await self.flush()
        return await self.store.list_calls(action=action, connection=connection, limit=limit)

    def breaker_state(self, connector: str) -> BreakerState:
        """The connector's circuit breaker: ``closed``, ``open`` (with the next probe time)
        or ``half_open``; failure and call counts over its window."""
        return self.runtime.http.breaker_state(connector)

    async def flush(self) -> None:
        """Write pending call and tool audit records now (they are otherwise written in
        batches)."""
        await self.runtime.flush()

    def audit_tool_call(self, record: ToolCallRecord) -> None:
        """Add a tool call to the tool audit (written in batches, like the call log)."""
        self.runtime.audit_tool_call(record)

    # -- pagination ------------------------------------------------------------------------

    def paginate(
        self, action: str, arguments: Mapping[str, Any] | None = None, *,
        connection: str | None = None, max_items: int | None = None,
        max_pages: int | None = None,
    ) -> AsyncIterator[Any]:
        """Every record of a list action, fetching pages as they are consumed::

            async for order in pw.paginate("shop.list_orders", {"status": "paid"}):
                ...

        The action's ``pagination`` (else its connector's) says how pages are found. Each
        page is one call (validated, authorised, retried, recorded). Stops after
        ``max_items`` records or ``max_pages`` pages; raises
        :class:`~patchwire.PaginationError` on a loop, on a next URL to another origin,
        or when the default bound of 1000 pages is reached.
        """
        request = CallRequest(action, {} if arguments is None else arguments, connection)
        if self.runtime.is_open:
            return self.calls.paginate(request, max_items=max_items, max_pages=max_pages)
        return self._paginate_once_open(request, max_items, max_pages)

    async def _paginate_once_open(
        self, request: CallRequest, max_items: int | None, max_pages: int | None,
    ) -> AsyncIterator[Any]:
        await self.open()
        async for record in self.calls.paginate(request, max_items=max_items,
                                                max_pages=max_pages):
            yield record


def split_settings(
    spec: ConnectorSpec, values: dict[str, Any], *, connection: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check values against the connector's settings; return (plain, secret)."""
    unknown = sorted(set(values) - set(spec.settings))
    if unknown:
        known = ", ".join(sorted(spec.settings)) or "none"
        raise ConfigError(
            f"connection {connection!r}: connector {spec.name!r} has no setting "
            f"{', '.join(map(repr, unknown))} (settings: {known})"
        )
    missing = sorted(
        k for k, s in spec.settings.items()
        if s.required and s.default is None and values.get(k) in (None, "")
    )
    if missing:
        raise ConfigError(
            f"connection {connection!r}: missing required setting "
            f"{', '.join(map(repr, missing))} for connector {spec.name!r}"
        )
    defaults = {k: s.default for k, s in spec.settings.items() if s.default is not None}
    problems = setting_value_problems(spec, {**defaults, **values})
    if problems:  # a value the call path would refuse (enum, a URL's host) fails here first
        raise ConfigError(f"connection {connection!r}: " + "; ".join(problems))
    plain = {k: v for k, v in values.items() if not spec.settings[k].secret}
    secret = {k: v for k, v in values.items() if spec.settings[k].secret}
    return plain, secret
