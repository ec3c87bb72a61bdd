"""The narrow interfaces the engines are given: flows, syncs, webhooks and tools depend on
these protocols, never on the ``Patchwire`` facade (which, like the ``Runtime``, provides
them). Each one is what a package actually uses, so a test or an embedding application can
hand an engine exactly that and nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from patchwire.auth.vault import Vault
from patchwire.calls import CallOutcome, CallRequest, CompiledAction, ValidatedCall
from patchwire.config import Settings
from patchwire.connectors import ConnectorRegistry
from patchwire.store import Store

__all__ = [
    "Calls",
    "ConnectLink",
    "ConnectLinks",
    "ConnectionDirectory",
    "ConnectionName",
    "HasCalls",
    "HasConnectors",
    "HasSettings",
    "HasStore",
    "HasVault",
]


class Calls(Protocol):
    """The call path protocol (``patchwire.calls.CallPath`` meets it): an action compiled
    once, arguments validated once (ahead of a gate, when a caller has one), a call
    through the one entry point, a listing page by page."""

    def action(self, qualified: str) -> CompiledAction: ...

    def validate(self, request: CallRequest) -> ValidatedCall: ...

    async def execute(self, request: CallRequest | ValidatedCall) -> CallOutcome: ...

    def paginate(self, request: CallRequest, *, max_items: int | None = None,
                 max_pages: int | None = None) -> AsyncIterator[Any]: ...


class HasCalls(Protocol):
    """The call path, read when used: it exists once its host is open."""

    @property
    def calls(self) -> Calls: ...


class HasStore(Protocol):
    """The store, read when used: an engine may be built before its store is opened."""

    @property
    def store(self) -> Store: ...


class HasVault(Protocol):
    @property
    def vault(self) -> Vault: ...


class HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


class HasConnectors(Protocol):
    @property
    def connectors(self) -> ConnectorRegistry: ...


class ConnectionName(Protocol):
    """A connection as engines see it: its name and its connector's."""

    @property
    def name(self) -> str: ...

    @property
    def connector(self) -> str: ...


class ConnectionDirectory(Protocol):
    """The connections there are (secrets never included)."""

    async def list_connections(
        self, connector: str | None = None, end_user: str | None = None,
    ) -> Sequence[ConnectionName]: ...


@dataclass(frozen=True)
class ConnectLink:
    """A single-use link an end user opens to connect an account (``/connect/{token}``)."""

    token: str
    url: str
    expires_at: datetime


class ConnectLinks(Protocol):
    """Hands out connect links (the connect sessions of ``patchwire.connect`` meet it): a
    tool whose end user has no connection, or one that needs re-authorising, answers with
    one. ``connection``: reconnect that connection (its credentials are replaced)."""

    async def link(self, end_user: str, connectors: Sequence[str], *,
                   connection: str | None = None,
                   return_url: str | None = None) -> ConnectLink: ...
