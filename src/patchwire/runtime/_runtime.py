"""``Runtime``: one process's parts and the background work it runs.

Opening it builds the store, the vault, the HTTP core (its rate limits and concurrency
caps shared through the store), the call log and tool audit writers, the OAuth2 token
keeper and the call path; closing it writes what is pending and closes them. It provides
what the engines are given (``patchwire.ports``: the call path, the store, the settings,
the connectors, the connections, the tool audit), so they never see the ``Patchwire``
facade, which sits on top of it.

It also owns starting and stopping background workers (:meth:`running`): started in order,
stopped in the reverse order, each once; when one fails to start, those already started
are stopped before the failure is raised. ``patchwire serve`` (its app's lifespan) and
``patchwire worker`` both run theirs this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from patchwire.auth import DEFAULT_MAX_TOKEN_AGE, TokenKeeper
from patchwire.auth.vault import Vault, connection_aad
from patchwire.calls import CallPath, ConnectionResolver
from patchwire.config import Settings, load_settings
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import (
    ConfigError,
    OAuthError,
    PatchwireError,
    ReauthRequired,
    StoreError,
)
from patchwire.expressions import set_default_limits
from patchwire.http import HttpCore
from patchwire.ids import new_id
from patchwire.runtime._connection_events import ConnectionEvents, HealthPolicy
from patchwire.runtime._recorder import BatchWriter
from patchwire.runtime._workers import Watched, Worker
from patchwire.store import SlotTable, Store
from patchwire.store.blobs import BlobRepository
from patchwire.store.records import CallRecord, ConnectionRecord
from patchwire.store.tools import ToolCallRecord, ToolRepository

__all__ = ["Runtime", "health_policy"]

log = logging.getLogger("patchwire.runtime")

_NOT_OPEN = "Patchwire is not open: use `async with Patchwire() as pw`"


def health_policy(settings: Settings) -> HealthPolicy:
    """When a connection counts as unhealthy and as recovered (the ``health_*``
    settings); ConfigError for thresholds that cannot work together."""
    try:
        return HealthPolicy(
            window=settings.health_window, min_calls=settings.health_min_calls,
            unhealthy_below=settings.health_unhealthy_below,
            recovered_at=settings.health_recovered_at,
            recover_streak=settings.health_recover_streak)
    except ValueError as exc:
        raise ConfigError(f"{exc} (the health_* settings)") from None


def _recording(recorder: BatchWriter[CallRecord],
               events: ConnectionEvents) -> Callable[[CallRecord], None]:
    """Every call's record: to the call log, and to the connections' health."""
    log_call, observe = recorder.record, events.observe

    def record(rec: CallRecord) -> None:
        log_call(rec)
        observe(rec)

    return record


class Runtime:
    """The parts of one Patchwire process::

        async with Runtime(settings) as runtime:          # store, vault, call path open
            engine = create_engine(runtime, flows)
            async with runtime.running([engine, inbox]):  # background work
                ...
    """

    def __init__(self, settings: Settings | None = None, *,
                 connectors: ConnectorRegistry | None = None,
                 http: HttpCore | None = None) -> None:
        self.settings = settings or load_settings()
        # expressions are evaluated all over (connectors, flows, syncs, inbox): one
        # process, one configuration
        set_default_limits(self.settings.effective_expression_timeout,
                           self.settings.expression_max_depth)
        self._connectors = connectors
        self.http = http or HttpCore(allow_networks=self.settings.allow_networks)
        self._store: Store | None = None
        self._slots: SlotTable | None = None
        self._vault: Vault | None = None
        self._recorder: BatchWriter[CallRecord] | None = None
        self._tool_audit: BatchWriter[ToolCallRecord] | None = None
        self._calls: CallPath | None = None
        self._tokens: TokenKeeper | None = None
        self._events: ConnectionEvents | None = None
        self._open_lock = asyncio.Lock()
        #: workers running, in the order they started
        self._running: list[Worker] = []

    # -- the parts ---------------------------------------------------------------------------

    async def open(self) -> Runtime:
        """Open the store and build what uses it (idempotent)."""
        async with self._open_lock:
            if self._store is None:
                connectors = self.connectors
                self._vault = Vault.from_settings(self.settings)
                self._store = await Store.open(self.settings.effective_database_url)
                # declared rate limits hold across every process sharing this store
                self.http.limiters.share(self._store)
                if self.settings.effective_shared_concurrency:
                    # so do connectors' concurrency caps (several workers share the store)
                    self._slots = SlotTable(self._store)
                    self.http.share_concurrency(self._slots)
                self._recorder = BatchWriter(self._store.record_calls, what="call records")
                self._tool_audit = BatchWriter(ToolRepository(self._store).record_tool_calls,
                                               what="tool audit records")
                self._events = ConnectionEvents(self._store, health_policy(self.settings))
                self._tokens = TokenKeeper(self._store, self._vault, connectors, self.http,
                                           on_failure=self._record_refresh_failure)
                self._calls = CallPath(
                    connectors,
                    ConnectionResolver(self._store, connectors, self.decrypt, self._tokens),
                    self.http, _recording(self._recorder, self._events),
                    on_refused=self._events.reauth_needed,
                    code_paths=self.settings.code_paths,  # custom code's only source
                    keep_blob=BlobRepository(self._store).put)  # binary answers' bytes
        return self

    async def close(self) -> None:
        """Stop any worker still running, write what is pending, close the parts."""
        await self._stop(self._running)
        if self._events is not None:
            await self._events.drain()  # their writes need the store
            self._events = None
        if self._recorder is not None:
            await self._recorder.close()
            self._recorder = None
        if self._tool_audit is not None:
            await self._tool_audit.close()
            self._tool_audit = None
        await self.http.close()
        if self._store is not None:
            await self.http.limiters.unshare()  # hands unused leased tokens back
            await self.http.unshare_concurrency()  # once slot releases are written
            if self._slots is not None:
                await self._slots.close()
                self._slots = None
            await self._store.close()
            self._store = None
        self._calls = None
        self._tokens = None

    async def __aenter__(self) -> Runtime:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        return self._store is not None

    @property
    def connectors(self) -> ConnectorRegistry:
        if self._connectors is None:
            self._connectors = ConnectorRegistry.load(self.settings.connector_paths)
        return self._connectors

    def use_connectors(self, connectors: ConnectorRegistry) -> None:
        """Reloaded definitions: calls from now on use ``connectors``; a call in flight
        ends with the definition it started with. The registry is updated in place, so
        the token keeper sees the new connectors too."""
        if self._connectors is None:
            self._connectors = connectors
        else:
            self._connectors.replace_with(connectors)
        if self._calls is not None:
            self._calls.reload()  # resolved connections hold their connector's old spec

    @property
    def store(self) -> Store:
        if self._store is None:
            raise PatchwireError(_NOT_OPEN)
        return self._store

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            raise PatchwireError(_NOT_OPEN)
        return self._vault

    @property
    def calls(self) -> CallPath:
        """The call path: the one way anything here reaches an upstream."""
        if self._calls is None:
            raise PatchwireError(_NOT_OPEN)
        return self._calls

    @property
    def tokens(self) -> TokenKeeper:
        """OAuth2 tokens of the connections: renewed ahead of expiry, once across
        processes."""
        if self._tokens is None:
            raise PatchwireError(_NOT_OPEN)
        return self._tokens

    @property
    def events(self) -> ConnectionEvents:
        """Connections' lifecycle events (created, updated, deleted, needs_reauth,
        unhealthy, recovered) and the health judged from their calls."""
        if self._events is None:
            raise PatchwireError(_NOT_OPEN)
        return self._events

    def decrypt(self, rec: ConnectionRecord) -> dict[str, Any]:
        """A connection's secret settings (never log or return them)."""
        if not rec.secrets:
            return {}
        return self.vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id))

    async def list_connections(self, connector: str | None = None,
                               end_user: str | None = None) -> list[ConnectionRecord]:
        """The stored connections (their secrets still sealed)."""
        return await self.store.list_connections(connector=connector, end_user=end_user)

    async def refresh_due(self, max_age: float = DEFAULT_MAX_TOKEN_AGE) -> list[str]:
        """Renew every OAuth2 connection's tokens last renewed more than ``max_age``
        seconds ago (or expiring within the skew); the names renewed."""
        renewed = await self.tokens.refresh_due(max_age)
        for name in renewed:
            self.calls.forget(name)
        return renewed

    # -- the call log and the tool audit ----------------------------------------------------

    async def flush(self) -> None:
        """Write pending call and tool audit records now (they are otherwise written in
        batches)."""
        if self._recorder is not None:
            await self._recorder.flush()
        if self._tool_audit is not None:
            await self._tool_audit.flush()
        if self._events is not None:
            await self._events.drain()

    def audit_tool_call(self, record: ToolCallRecord) -> None:
        """Add a tool call to the tool audit (written in batches, like the call log)."""
        if self._tool_audit is None:
            raise StoreError("cannot audit a tool call: Patchwire is not open")
        self._tool_audit.record(record)

    def _record_refresh_failure(self, rec: ConnectionRecord, exc: OAuthError) -> None:
        """A failed token refresh as an entry of the call log (``patchwire calls``):
        action ``<connector>.oauth2_refresh``; codes and redacted descriptions only. A
        refused one marks the connection ``needs_reauth`` (once: connection.needs_reauth)."""
        if isinstance(exc, ReauthRequired) and self._events is not None:
            self._events.reauth_needed(rec.name)
        if self._recorder is None:
            return
        now = datetime.now(UTC)
        record_id = new_id()
        self._recorder.record(CallRecord(
            record_id, record_id, f"{rec.connector}.oauth2_refresh", rec.connector, rec.name,
            "error", exc.status, 0.0, 1, exc.code, exc.message[:1000], now))

    # -- background workers -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, workers: Sequence[Worker]) -> AsyncIterator[None]:
        """Start ``workers`` in order for the block, stop them in the reverse order after
        it (whatever ends it). One failing to start: the ones started are stopped, then
        its error is raised."""
        started: list[Worker] = []
        try:
            for worker in workers:
                await worker.start()
                started.append(worker)
                self._running.append(worker)
        except BaseException:
            await self._stop(started)
            raise
        try:
            yield
        finally:
            await self._stop(started)

    async def _stop(self, workers: list[Worker]) -> None:
        """Stop ``workers`` (the last started first), each once, every one even if another
        fails to stop (that failure is logged)."""
        for worker in reversed(list(workers)):
            if worker not in self._running:
                continue  # stopped already
            self._running.remove(worker)
            try:
                await worker.stop()
            except Exception:
                log.exception("stopping %s failed", type(worker).__name__)

    async def until_stopped(self, stop: asyncio.Event) -> None:
        """Return once ``stop`` is set — or once a running worker that can end on its own
        (a remote engine's executor) ended, raising its failure."""
        watched: list[asyncio.Future[Any]] = [
            ended for w in self._running if isinstance(w, Watched)
            and (ended := w.ended()) is not None]
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *watched],
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        for ended in watched:
            if ended in done:
                ended.result()  # a worker that died: say why

    @contextlib.contextmanager
    def stop_on_signals(self, stop: asyncio.Event, *,
                        on_reload: Callable[[], object] | None = None) -> Any:
        """While the block runs, SIGINT and SIGTERM set ``stop`` and SIGHUP calls
        ``on_reload`` (a worker's reload of its definitions)."""
        loop = asyncio.get_running_loop()
        signals = [signal.SIGINT, signal.SIGTERM]
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        if on_reload is not None:
            loop.add_signal_handler(signal.SIGHUP, on_reload)
            signals.append(signal.SIGHUP)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
