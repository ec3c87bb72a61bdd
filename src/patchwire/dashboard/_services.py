"""What the dashboard's pages read and do, injected: each page module gets these narrow
services, never the store or the vault. Built from the app's ``Patchwire`` in one place
(:meth:`DashboardServices.of`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from patchwire.auth import TokenStates
from patchwire.flows import Engine
from patchwire.ports import ConnectLinks
from patchwire.store.reports import ReportRepository
from patchwire.store.tools import ToolRepository
from patchwire.tools import ToolInvoker
from patchwire.webhooks import Inbox, WebhookOutbox

if TYPE_CHECKING:
    from patchwire import Patchwire
    from patchwire.connectors import ConnectorRegistry
    from patchwire.http import BreakerState

__all__ = ["Connections", "DashboardServices"]


class Connections(Protocol):
    """The connectors and breakers the overview shows (the facade is one); the
    connections themselves it reads from the reports, a bounded summary."""

    @property
    def connectors(self) -> ConnectorRegistry: ...

    def breaker_state(self, connector: str) -> BreakerState: ...

    async def flush(self) -> None:
        """Write the calls recorded a moment ago, so that the numbers include them."""


@dataclass(frozen=True)
class DashboardServices:
    """The factories are called per request: the store behind them exists once the app's
    lifespan has opened it."""

    connections: Connections
    tokens: TokenStates
    engine: Engine
    invoker: ToolInvoker
    reports: Callable[[], ReportRepository]
    tools: Callable[[], ToolRepository]
    inbox: Callable[[], Inbox]
    outbox: Callable[[], WebhookOutbox]
    #: hands out the connect links the Connections page offers (None: no reconnect button)
    links: ConnectLinks | None = None
    #: enables a catalog connector in the deployment and reloads (None: no add button)
    add_connector: Callable[[str], Awaitable[object]] | None = None

    @classmethod
    def of(cls, pw: Patchwire, *, engine: Engine, invoker: ToolInvoker,
           links: ConnectLinks | None = None,
           add_connector: Callable[[str], Awaitable[object]] | None = None
           ) -> DashboardServices:
        return cls(connections=pw, tokens=TokenStates(lambda: pw.store, lambda: pw.vault),
                   engine=engine, invoker=invoker,
                   reports=lambda: ReportRepository(pw.store),
                   tools=lambda: ToolRepository(pw.store),
                   inbox=lambda: Inbox(pw), outbox=lambda: WebhookOutbox.of(pw),
                   links=links, add_connector=add_connector)
