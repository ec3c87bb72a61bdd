"""What `patchwire demo` runs besides the walkthrough: the server and its webhooks.

- **The store** is the demo's own (``_demo_store.py``), opened by the caller.
- **The server** is the app `patchwire serve` runs (``create_app``) with the flow engine,
  schedules, webhook inbox, outbound deliveries and syncs (the shipped examples), served by
  uvicorn in this process on 127.0.0.1 — on port 8700 unless told otherwise or taken.
- **Webhooks**: the sandbox posts every API's events to one URL, each signed in its own
  vendor's scheme. They arrive at ``/hooks/sandbox`` and :class:`SandboxHooks` hands each to
  the source of the API that signed it (``/hooks/shop``, ``/hooks/payments``...), so they
  are verified, deduplicated and turned into flow runs like anyone's. An outbound
  subscription sends run failures and flow events to a small receiver on the same server
  (``/_demo/receiver``) that checks their signatures like a subscriber would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from patchwire import BACKGROUND_REFRESH_INTERVAL, Patchwire
from patchwire.errors import ConfigError, WebhookRejected
from patchwire.flows import Engine, FlowEngine, FlowRegistry
from patchwire.sandbox import API_NAMES, Sandbox
from patchwire.server import create_app
from patchwire.sync import SyncRegistry
from patchwire.webhooks import SchemeSettings, WebhookOutbox, WebhookSources, verify

__all__ = ["DEFAULT_PORT", "DemoReceiver", "DemoServer", "SandboxHooks", "listen"]

#: the demo server's port when free (not `serve`'s 8600: a real server may be running)
DEFAULT_PORT = 8700
#: where the sandbox's webhooks arrive, before being handed to each API's source
SANDBOX_HOOK_PATH = "/hooks/sandbox"
RECEIVER_PATH = "/_demo/receiver"
#: the events the demo's subscription asks for
SUBSCRIBED_EVENTS = ("run.failed", "order.refund_noted")
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
#: how long stopping waits for open HTTP connections (a dashboard tab) before closing them
GRACEFUL_SHUTDOWN_S = 2


def listen(port: int | None, default: int) -> socket.socket:
    """A TCP socket bound to 127.0.0.1: on ``port`` (0: any free one); without one, on
    ``default`` when it is free, else on any free port."""
    for candidate in ([default, 0] if port is None else [port]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", candidate))
        except OSError as exc:
            sock.close()
            if port is not None:
                raise ConfigError(f"cannot listen on 127.0.0.1:{port}: "
                                  f"{exc.strerror or exc}") from None
            continue
        return sock
    raise ConfigError("no free port on 127.0.0.1")  # pragma: no cover - port 0 always binds


class SandboxHooks:
    """ASGI middleware: a webhook posted to ``/hooks/sandbox`` goes on to the source of the
    sandbox API that sent it, told apart by its scheme's signature header (ASGI header
    names are lower case). Anything else passes through untouched; a request with none of
    these headers reaches the unknown source ``sandbox`` and is refused like any other."""

    HEADERS: dict[bytes, str] = {
        b"x-shopify-hmac-sha256": "shop",
        b"stripe-signature": "payments",
        b"x-hub-signature-256": "helpdesk",
        b"webhook-signature": "calendar",
    }

    def __init__(self, app: ASGIApp, path: str = SANDBOX_HOOK_PATH) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            for name, _ in scope["headers"]:
                api = self.HEADERS.get(name)
                if api is not None:
                    path = f"/hooks/{api}"
                    scope = {**scope, "path": path, "raw_path": path.encode()}
                    break
        await self.app(scope, receive, send)


@dataclass
class DemoReceiver:
    """The endpoint of the demo's outbound subscription: verifies each delivery's Standard
    Webhooks signature like a subscriber would, and answers 503 to every fourth one so the
    deliveries page shows a retry."""

    secret: str = field(default="", repr=False)
    received: int = 0
    verified: int = 0
    refused: int = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.received += 1
        try:
            verify(SchemeSettings(scheme="standard"), [self.secret], dict(request.headers),
                   body, now=time.time())
        except WebhookRejected:
            self.refused += 1
            return Response(status_code=401)
        if self.received % 4 == 0:
            return Response(status_code=503, headers={"Retry-After": "1"})
        self.verified += 1
        return Response(status_code=204)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the demo stops it (SIGINT, SIGTERM, --for)
    after stopping its own work; uvicorn's handlers would re-raise the signal on exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class DemoServer:
    """The running server: its URL, flow engine and webhook receiver."""

    url: str
    engine: Engine
    flows: FlowRegistry
    receiver: DemoReceiver

    @property
    def dashboard_url(self) -> str:
        return f"{self.url}/"

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @property
    def hook_url(self) -> str:
        return f"{self.url}{SANDBOX_HOOK_PATH}"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, pw: Patchwire, sandbox: Sandbox, *, port: int | None = None,
                      sock: socket.socket | None = None) -> AsyncIterator[DemoServer]:
        """Serve ``pw`` like `patchwire serve` until the block ends, with webhook sources
        for the sandbox's APIs and a subscription; the sandbox's webhooks are sent to it
        while it runs. ``pw`` is opened and closed by the caller. ``sock``: the socket to
        serve on (closed at the end), bound already when the settings' public URL names
        its port; else one on ``port`` (see :func:`listen`)."""
        sock = sock if sock is not None else listen(port, DEFAULT_PORT)
        try:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            flows = FlowRegistry.load(pw.settings.flow_paths, builtins=True)
            engine = FlowEngine(pw, flows.as_mapping(), schedules=True)
            receiver = DemoReceiver()
            await _webhook_sources(pw, sandbox)
            created = await WebhookOutbox.of(pw).create_subscription(
                url + RECEIVER_PATH, SUBSCRIBED_EVENTS,
                description="the demo's own receiver (/_demo/receiver)")
            receiver.secret = created.secret  # shown nowhere: the receiver verifies with it
            app = create_app(pw, manage_lifecycle=False,
                             background_refresh=BACKGROUND_REFRESH_INTERVAL, engine=engine,
                             flows=flows, syncs=SyncRegistry.load(builtins=True))
            _add_receiver(app, receiver)
            server = cls(url, engine, flows, receiver)
            async with _serving(SandboxHooks(app), sock):
                sandbox.set_webhook_url(server.hook_url)
                try:
                    yield server
                finally:
                    # queued events are dropped rather than sent to a server going away
                    sandbox.set_webhook_url(None)
        finally:
            sock.close()


async def _webhook_sources(pw: Patchwire, sandbox: Sandbox) -> None:
    """One source per sandbox API, named after it (the example flow and sync listen to
    ``shop``), verifying its scheme with the sandbox's published secret."""
    sources = WebhookSources(pw)
    secrets = sandbox.webhook_secrets
    for api in API_NAMES:
        await sources.add(api, Sandbox.webhook_scheme(api), [secrets[api]])


def _add_receiver(app: FastAPI, receiver: DemoReceiver) -> None:
    app.add_api_route(RECEIVER_PATH, receiver.handle, methods=["POST"],
                      include_in_schema=False)


@contextlib.asynccontextmanager
async def _serving(app: ASGIApp, sock: socket.socket) -> AsyncIterator[None]:
    """uvicorn serving ``app`` on ``sock`` (lifespan included: the engine, inbox,
    deliveries and syncs start with it) until the block ends, then stopped gracefully."""
    config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = _Uvicorn(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]),
                                                  name="patchwire-demo-server")
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()  # its error, if it failed
                    raise ConfigError("the demo server stopped while starting (see above)")
                await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=SHUTDOWN_TIMEOUT_S)
        if not task.done():  # a connection that would not close: stop without it
            server.force_exit = True
            task.cancel()
        await _finished(task)


async def _finished(task: asyncio.Task[Any]) -> None:
    """Wait (bounded) for ``task`` to end; an error it ended with was logged by uvicorn."""
    await asyncio.wait({task}, timeout=SHUTDOWN_TIMEOUT_S)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it again
