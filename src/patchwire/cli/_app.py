"""Command tree. Each group lives in its own module; this one wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import typer

from patchwire.cli import (
    _approvals,
    _call,
    _catalog,
    _chat,
    _check,
    _connect_links,
    _connections,
    _connectors,
    _flows,
    _init,
    _keys,
    _mcp,
    _runs,
    _subscriptions,
    _sync,
    _tools,
    _webhooks,
)
from patchwire.cli._common import console, errors_handled, fail, run, settings

app = typer.Typer(
    name="patchwire",
    help="Patchwire: connectors, connections and one call path for AI chatbots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(_connectors.app, name="connector")
app.add_typer(_catalog.app, name="catalog")
app.add_typer(_connections.app, name="connection")
app.add_typer(_tools.app, name="tools")
app.add_typer(_approvals.app, name="approvals")
app.add_typer(_flows.app, name="flow")
app.command("call")(_call.call)
app.command("calls")(_call.calls)
app.command("chat")(_chat.chat)
app.command("init")(_init.init)
app.command("check")(_check.check)
# --- MCP server over stdio (src/patchwire/cli/_mcp.py) ---
app.command("mcp")(_mcp.mcp)
# --- flow runs: `flow run`, `runs ...`, `worker` (src/patchwire/cli/_runs.py) ---
_flows.app.command("run")(_runs.run_flow)
app.add_typer(_runs.app, name="runs")
app.command("worker")(_runs.worker)
# --- end flow runs ---
# --- inbound webhooks: sources, inbox, rejections (src/patchwire/cli/_webhooks.py) ---
app.add_typer(_webhooks.app, name="webhooks")
# --- outbound webhooks (src/patchwire/cli/_subscriptions.py) ---
app.add_typer(_subscriptions.subscriptions_app, name="subscriptions")
app.add_typer(_subscriptions.deliveries_app, name="deliveries")
# --- end outbound webhooks ---

# --- API keys (src/patchwire/cli/_keys.py) ---
app.add_typer(_keys.app, name="keys")
# --- end API keys ---
# --- connect links and OAuth apps (src/patchwire/cli/_connect_links.py) ---
app.add_typer(_connect_links.app, name="oauth-apps")
app.command("connect-link")(_connect_links.connect_link)
# --- end connect links ---

# --- sync: `sync list|run|status|check|example`, `records list` (src/patchwire/cli/_sync.py) ---
app.add_typer(_sync.app, name="sync")
app.add_typer(_sync.records_app, name="records")
# --- end sync ---

vault_app = typer.Typer(help="The credential vault.", no_args_is_help=True)
app.add_typer(vault_app, name="vault")


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="bind address (default 127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="port (default 8600)"),
    engine: str = typer.Option(None, "--engine",
                               help="where flows run: embedded (default) or temporal "
                                    "(PATCHWIRE_ENGINE; docs/scale-out.md)"),
) -> None:
    """Serve the REST API (POST /api/v1/actions/{action}/call ...) and run flows (queued
    and due runs, schedules) like `patchwire worker`. With the Temporal engine it starts
    runs on Temporal and `patchwire worker` processes execute them."""
    import uvicorn

    from patchwire import BACKGROUND_REFRESH_INTERVAL, Patchwire
    from patchwire.server import create_app, is_loopback

    with errors_handled():
        # into the settings, not only to uvicorn: the bind name is one the app's Host
        # allow-list (SiteGuard) must accept, and it reads it there
        cfg = settings(engine=engine, host=host, port=port)
    host, port = cfg.host, cfg.port
    # --- access control and observability (access/, observability/) ---
    from patchwire.observability import configure_logging, configure_tracing_from_env
    from patchwire.server import AccessPolicy, admin_key_exists

    public = not is_loopback(host)
    if public and not run(admin_key_exists(cfg.effective_database_url)):
        fail(f"refusing to bind {host}: without an admin API key the server binds loopback "
             "only (127.0.0.1 or ::1); create one with `patchwire keys create NAME --scope "
             "admin`, then every request needs a key", code=2)
    with errors_handled():
        configure_logging()  # PATCHWIRE_LOG_FORMAT=json|text, PATCHWIRE_LOG_LEVEL
    configure_tracing_from_env()  # PATCHWIRE_TRACING=1
    # --- end access control and observability ---
    definitions = _check.required_definitions(cfg, "serve")  # exit 2 listing every problem
    console.print(f"Patchwire API starting on http://{host}:{port}/api/v1 (docs at /api/docs); "
                  f"MCP (Streamable HTTP) at http://{host}:{port}/mcp")
    with errors_handled():
        app = create_app(Patchwire(cfg, connectors=definitions.connectors),
                         background_refresh=BACKGROUND_REFRESH_INTERVAL, engine=True,
                         flows=definitions.flows, syncs=definitions.syncs,
                         access=AccessPolicy(require_keys=public))
        # log_config=None: uvicorn's lines go through the handler configure_logging set
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                log_config=None)
        server = uvicorn.Server(config)

        async def main() -> None:
            # SIGHUP reloads the definitions (uvicorn handles SIGINT and SIGTERM itself)
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, _check.reload_on_signal, app.state.definitions)
            await server.serve()

        # as uvicorn.run: its event loop (uvloop when installed), and the SIGINT it raises
        # again once it has shut down is the end, not an error
        with (contextlib.suppress(KeyboardInterrupt),
              asyncio.Runner(loop_factory=config.get_loop_factory()) as runner):
            runner.run(main())


@app.command()
def sandbox(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8765, "--port"),
    seed: int = typer.Option(0, "--seed", help="seed of the generated data and chaos"),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url",
        help="send the APIs' signed webhooks (order refunded...) to this URL, e.g. "
             "http://127.0.0.1:8600/hooks/shop",
    ),
    rate_limit: int | None = typer.Option(
        None, "--rate-limit", min=1,
        help="requests per minute per credential and API before a 429 (default 100,000); "
             "raise it for a load test",
    ),
) -> None:
    """Serve the sandbox APIs (shop, helpdesk, calendar, payments) on loopback."""
    from patchwire.server import is_loopback

    if not is_loopback(host):
        fail(f"the sandbox binds loopback only, not {host}", code=2)
    from patchwire.sandbox import DEFAULT_RATE_LIMIT_PER_MINUTE, checked_webhook_url, serve_forever

    try:
        checked_webhook_url(webhook_url)
    except ValueError as exc:
        fail(str(exc), code=2)

    def ready(url: str) -> None:
        console.print(f"sandbox listening on {url} (shop, helpdesk, calendar, payments); "
                      "Ctrl-C stops it")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(
            host, port, seed=seed, ready=ready, webhook_url=webhook_url,
            rate_limit_per_minute=rate_limit or DEFAULT_RATE_LIMIT_PER_MINUTE))


@app.command()
def demo(
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535,
        help="server port (default 8700, or any free one when taken; 0: any free one)"),
    sandbox_port: int | None = typer.Option(
        None, "--sandbox-port", min=0, max=65535,
        help="sandbox port (default 8765, or any free one when taken; 0: any free one)"),
    once: bool = typer.Option(False, "--once",
                              help="walk the scenario and exit, without the server"),
    duration: float | None = typer.Option(
        None, "--for", min=0, metavar="SECONDS",
        help="stop by itself after serving this long past the walkthrough"),
) -> None:
    """Run Patchwire on the sandbox APIs with its own demo store (.patchwire-demo/): a
    chatbot-style walkthrough, then the dashboard, API and MCP server with a little
    background traffic until Ctrl-C."""
    if once and duration is not None:
        fail("--once walks the scenario without the server; --for bounds the server", code=2)
    # Ctrl-C before the demo handles signals itself (while it loads) stops it quietly too
    with contextlib.suppress(KeyboardInterrupt), errors_handled():
        from patchwire.cli._demo import DemoOptions, run_demo

        asyncio.run(run_demo(DemoOptions(once=once, port=port, sandbox_port=sandbox_port,
                                         duration=duration)))


@vault_app.command("rotate")
def rotate() -> None:
    """Make a new key active and re-encrypt every connection's secrets with it."""
    from patchwire.auth.vault import reencrypt_connections
    from patchwire.cli._common import run
    from patchwire.store import Store

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.auth.vault import Vault
        from patchwire.webhooks import WebhookOutbox, WebhookSources

        cfg = settings()
        vault = Vault.from_settings(cfg)
        new = vault.rotate()
        async with await Store.open(cfg.effective_database_url) as store:
            count = await reencrypt_connections(store, vault)
            subscriptions = await WebhookOutbox(store, vault).reencrypt()
        async with Patchwire(cfg) as pw:  # opened after rotate: it reads the new key set
            sources = await WebhookSources(pw).reencrypt()
        console.print(f"[green]rotated[/]: key {new} is active; {count} connection(s), "
                      f"{sources} webhook source(s) and {subscriptions} subscription(s) "
                      "re-encrypted")

    run(main())


@app.command()
def version() -> None:
    """Print the version."""
    from patchwire import __version__

    console.print(__version__)


def main() -> None:
    app()
