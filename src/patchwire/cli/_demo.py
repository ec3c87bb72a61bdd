"""`make demo`: Patchwire running on the sandbox APIs, with a walkthrough and live traffic.

`patchwire demo` starts the sandbox APIs (shop, helpdesk, calendar, payments) and the real
server (`patchwire serve`'s app: REST API, dashboard, MCP, webhooks, flow engine, inbox,
deliveries, syncs) in one process on 127.0.0.1, over a demo store of its own
(``.patchwire-demo/``, started fresh; see ``_demo_store.py``). It creates connections,
webhook sources and a subscription, then walks a chatbot-style support scenario: a
customer writes to a support bot; the bot looks up the customer and their latest order,
opens a helpdesk ticket about it, refunds the charge (with an idempotency key, retried
safely) and books a call-back — every step one call through the call path, shown with its
result and timing — then the same actions as chatbot tools and as durable flows. Those
connections are end user ``acme``'s; a second end user, ``maya``, then connects her own
calendar from the chat through a connect link (``_demo_end_users.py``). After that it
prints the dashboard and MCP URLs and keeps a little traffic going (``_demo_traffic.py``),
failures and a refund waiting for approval included, until Ctrl-C or SIGTERM.

``--once`` walks the scenario without the server and exits (CI, a quick look).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from patchwire import Patchwire
from patchwire.calls import CallOutcome
from patchwire.cli._demo_end_users import SecondEndUser, sandbox_connectors
from patchwire.cli._demo_store import DEMO_HOME, demo_settings, demo_store
from patchwire.errors import CallError, ConfigError, ConnectionExists
from patchwire.sandbox import DEFAULT_PORT as SANDBOX_PORT
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.signals import stop_on_signals

if TYPE_CHECKING:
    from patchwire.cli._demo_server import DemoServer
    from patchwire.cli._demo_traffic import PendingRefund
    from patchwire.flows import Engine

console = Console()

CUSTOMER_MESSAGE = (
    "Hi, it's {name} ({email}). My last order arrived damaged — can I get my money back, "
    "and could someone call me tomorrow?"
)


class Scenario:
    def __init__(self, pw: Patchwire) -> None:
        self.pw = pw
        self.log: list[tuple[str, str, int, float, str]] = []

    async def step(self, title: str, action: str, arguments: dict[str, Any],
                   show: Any = None) -> Any:
        try:
            outcome: CallOutcome = await self.pw.execute(action, arguments,
                                                         connection=f"demo-{action.split('.')[0]}")
        except CallError as exc:
            self.log.append((action, f"[red]{exc.code}[/]", 0, 0.0, ""))
            console.print(f"  [red]✗[/] {title}: [red]{type(exc).__name__}[/] {exc.message}")
            return None
        self.log.append((action, f"HTTP {outcome.status}", outcome.attempts,
                         outcome.latency_ms, outcome.request_id[-8:]))
        summary = show(outcome.result) if show else _short(outcome.result)
        console.print(f"  [green]✓[/] {title} [dim]({action}, {outcome.latency_ms:.1f} ms, "
                      f"{outcome.attempts} attempt{'s' if outcome.attempts > 1 else ''})[/]")
        console.print(f"    [cyan]{summary}[/]", highlight=False)
        return outcome.result


def _short(value: Any, limit: int = 110) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency.upper()}"


def _next_business_day(today: dt.date) -> dt.date:
    day = today + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


async def _connect(pw: Patchwire, sandbox_url: str) -> None:
    for api, credentials in SANDBOX_CREDENTIALS.items():
        values = {"sandbox_url": sandbox_url, **credentials}
        try:
            await pw.add_connection(api, f"demo-{api}", values, end_user="acme")
        except ConnectionExists:
            await pw.update_connection(f"demo-{api}", values)


@dataclass(frozen=True)
class DemoOptions:
    """`patchwire demo`'s options."""

    #: walk the scenario and exit, without the server or traffic
    once: bool = False
    #: the server's port (None: 8700, or any free one when taken; 0: any free one)
    port: int | None = None
    #: the sandbox's port (None: 8765, or any free one when taken; 0: any free one)
    sandbox_port: int | None = None
    #: stop by itself after serving this many seconds past the walkthrough (None: never)
    duration: float | None = None
    #: the demo store's directory
    home: Path = DEMO_HOME


DEMO_CONNECTIONS = ["demo-shop", "demo-helpdesk", "demo-calendar", "demo-payments"]


async def run_demo(options: DemoOptions | None = None) -> None:
    """The demo until it is done (``once``), stopped (SIGINT, SIGTERM) or its ``duration``
    has passed. Stopping cancels the walkthrough or traffic, stops the server (engine,
    inbox, deliveries, syncs: work in flight is released), closes the store and the
    sandbox, and returns normally."""
    options = options or DemoOptions()
    stop = asyncio.Event()
    with stop_on_signals(stop):
        main = asyncio.get_running_loop().create_task(_main(options, stop),
                                                      name="patchwire-demo")
        stopped = asyncio.get_running_loop().create_task(stop.wait())
        try:
            await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not main.done():
                console.print("\n[bold]Stopping[/]: cancelling the traffic, releasing runs "
                              "in flight, closing the store…")
                main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
    if not options.once:
        console.print(f"Stopped. The demo store stays in {options.home}/ until the next demo: "
                      f"[bold]PATCHWIRE_HOME={options.home} patchwire runs list[/]",
                      highlight=False)


async def _main(options: DemoOptions, stop: asyncio.Event) -> None:
    sock: socket.socket | None = None
    public_url = None
    if not options.once:
        from patchwire.cli._demo_server import DEFAULT_PORT, listen

        # the server's port first: connect links are built from the public URL
        sock = listen(options.port, DEFAULT_PORT)
        public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = demo_settings(options.home, public_url=public_url)
    with contextlib.closing(sock) if sock is not None else contextlib.nullcontext(), \
            demo_store(options.home):
        console.rule("[bold]Patchwire demo[/]: a support bot that can act")
        async with (_sandbox(options.sandbox_port) as sandbox,
                    Patchwire(settings, connectors=sandbox_connectors(sandbox.url)) as pw):
            console.print(f"Sandbox APIs on [bold]{sandbox.url}[/] (shop · helpdesk · calendar · "
                          f"payments); a fresh demo store in {options.home}/ (your own store "
                          "is not touched)", highlight=False)
            console.print(f"SSRF guard on: internal addresses are refused; the sandbox's "
                          f"address {sandbox.host} is allow-listed for this demo only")
            await _connect(pw, sandbox.url)
            console.print("Connections demo-shop, demo-helpdesk, demo-calendar, demo-payments "
                          "ready (secrets encrypted at rest)")
            if options.once:
                console.print()
                await _walkthrough(pw, sandbox, engine=None, dashboard=None)
                _connect_a_client(sandbox.port, options.home)
                return
            assert sock is not None
            await _serve(pw, sandbox, options, stop, sock)


async def _serve(pw: Patchwire, sandbox: Sandbox, options: DemoOptions,
                 stop: asyncio.Event, sock: socket.socket) -> None:
    from patchwire.cli._demo_server import DemoServer
    from patchwire.cli._demo_traffic import Traffic

    async with DemoServer.running(pw, sandbox, sock=sock) as server:
        console.print(f"Server (the app `patchwire serve` runs) on [bold]{server.url}[/] with "
                      "the flow engine, webhook inbox, deliveries and syncs; webhook sources "
                      "shop, payments, helpdesk, calendar verify the sandbox's signed events; "
                      f"the dashboard is live already: {server.dashboard_url}\n",
                      highlight=False)
        pending = await _walkthrough(pw, sandbox, engine=server.engine,
                                     dashboard=server.dashboard_url)
        await SecondEndUser(pw, server.url, console).run()
        _running(server, sandbox, options)
        timer = (None if options.duration is None else
                 asyncio.get_running_loop().call_later(options.duration, stop.set))
        try:
            traffic = Traffic(pw, server.engine, sandbox, base_url=server.url,
                              connections=DEMO_CONNECTIONS, console=console, pending=pending)
            await traffic.run()
            await stop.wait()  # the traffic ended; the server goes on until stopped
        finally:
            if timer is not None:
                timer.cancel()


async def _walkthrough(pw: Patchwire, sandbox: Sandbox, *, engine: Engine | None,
                       dashboard: str | None) -> PendingRefund | None:
    """The scripted scenario; a refund left waiting for approval when there is a
    ``dashboard`` to decide it in (else a supervisor approves it here)."""
    s = Scenario(pw)

    delivered = await pw.call("shop.list_orders", {"status": "delivered", "limit": 5},
                              connection="demo-shop")
    someone = await pw.call("shop.get_customer",
                            {"customer_id": _items(delivered)[2]["customer_id"]},
                            connection="demo-shop")
    message = CUSTOMER_MESSAGE.format(name=someone["name"], email=someone["email"])
    console.print(Panel(message, title="customer → bot", border_style="blue"))

    customer = await s.step("Find the customer by email", "shop.find_customer_by_email",
                            {"email": someone["email"]},
                            show=lambda c: f"{c['name']} · {c['id']} · {c['company']}")
    orders = await s.step("List their orders", "shop.list_orders",
                          {"customer_id": customer["id"], "limit": 20},
                          show=lambda r: f"{len(_items(r))} order(s)")
    order_list = sorted(_items(orders), key=lambda o: o["created_at"], reverse=True)
    received = [o for o in order_list if o["status"] in ("delivered", "shipped", "paid")]
    latest = (received or order_list)[0]
    order = await s.step("Fetch the latest order", "shop.get_order",
                         {"order_id": latest["id"]},
                         show=lambda o: f"order {o['id']} · {o['status']} · "
                         f"{_money(o['total'], o['currency'])} · "
                         f"{len(o['line_items'])} item(s)")
    ticket = await s.step(
        "Open a helpdesk ticket about it", "helpdesk.create_ticket",
        {"subject": f"Order {order['id']} arrived damaged",
         "description": message, "requester_email": customer["email"],
         "priority": "high", "order_id": str(order["id"]), "tags": ["damaged", "refund"]},
        show=lambda t: f"ticket #{t['id']} · {t['status']} · priority {t['priority']}")
    await s.step("Add an internal note (form body)", "helpdesk.add_comment",
                 {"ticket_id": ticket["id"], "public": False,
                  "body": f"Bot: refund requested for order {order['id']}"},
                 show=lambda c: f"comment {c.get('id')} added")
    charges = await pw.call("payments.list_charges", {"customer": customer["id"]},
                            connection="demo-payments")
    paid = [c for c in _items(charges) if c.get("description") == f"Order #{order['id']}"
            and not c.get("refunded")]
    charge = paid[0] if paid else await s.step(
        "Record the order's payment (the sandbox had none)", "payments.create_charge",
        {"amount": max(order["total"], 50), "currency": order["currency"].lower(),
         "customer": customer["id"], "description": f"Order #{order['id']}",
         "idempotency_key": f"demo-{uuid.uuid4()}"},
        show=lambda c: f"{c['id']} · {_money(c['amount'], c['currency'])} · {c['status']}")
    # A flaky moment upstream: the refund is retried safely under its idempotency key.
    sandbox.set_chaos("payments", error_rate=0.5, error_statuses=(503,), seed=4)
    refund_key = f"demo-refund-{uuid.uuid4()}"
    await s.step(
        "Refund it (503s injected; retried with the same key)", "payments.refund_charge",
        {"charge_id": charge["id"], "reason": "damaged", "idempotency_key": refund_key},
        show=lambda r: f"refund {r.get('id')} · {_money(r['amount'], r['currency'])}")
    sandbox.clear_chaos("payments")
    day = _next_business_day(dt.datetime.now(dt.UTC).date())
    slots = await s.step("Find call-back slots tomorrow", "calendar.get_availability",
                         {"date": day.isoformat(), "duration": 30},
                         show=lambda r: f"{len(_items(r, 'slots'))} free slot(s) on {day}")
    slot = _items(slots, "slots")[0]
    start = slot["start"] if isinstance(slot, dict) else slot
    await s.step("Book the call-back", "calendar.book_appointment",
                 {"start": start, "duration_minutes": 30,
                  "attendee_email": customer["email"],
                  "topic": f"Call-back about order {order['id']}"},
                 show=lambda a: f"appointment {a['id']} at {a['start']}")
    await s.step("Book the same slot again (the bot must see the conflict)",
                 "calendar.book_appointment",
                 {"start": start, "duration_minutes": 30,
                  "attendee_email": customer["email"], "topic": "duplicate"})
    await s.step("Look up an order that does not exist", "shop.get_order",
                 {"order_id": "999999"})

    console.print()
    console.print(Panel(
        f"Sorry about order {order['id']}, {customer['name'].split()[0]}! I've opened "
        f"ticket #{ticket['id']}, refunded {_money(charge['amount'], charge['currency'])}"
        f" and booked a call-back at {start}.", title="bot → customer",
        border_style="green"))
    table = Table("action", "result", "attempts", "ms", "request", title="Calls")
    for action, status, attempts, ms, rid in s.log:
        table.add_row(action, status, str(attempts or ""), f"{ms:.1f}" if ms else "", rid)
    console.print(table)
    console.print("Every call is in the call log: [bold]patchwire calls[/]")
    pending = await _tools_scene(pw, charge, dashboard=dashboard)
    await _flows_scene(pw, customer, order, engine)
    return pending


async def _tools_scene(pw: Patchwire, charge: dict[str, Any], *,
                       dashboard: str | None) -> PendingRefund | None:
    """The same actions as a model sees them: tools with safety flags, errors it can act
    on, and a refund that waits for a person's yes — given here by a supervisor, or left
    for the user in the ``dashboard``."""
    from patchwire.cli._demo_traffic import PendingRefund
    from patchwire.tools import ToolInvoker

    console.print()
    console.rule("[bold]The same actions as chatbot tools[/]")
    invoker = ToolInvoker(pw, connections=DEMO_CONNECTIONS)
    catalog = await invoker.catalog()
    gated = [t.name for t in catalog if t.confirm]
    console.print(f"{len(catalog)} tools; {len(gated)} need a person's approval: "
                  f"{', '.join(gated)}")
    wrong = await invoker.invoke("shop_get_order", {"order": 42}, session_id="demo")
    console.print(Panel(wrong.text, title="model calls shop_get_order with a wrong argument "
                        "→ what it reads", border_style="yellow"))
    listed = await pw.call("payments.list_charges", {"limit": 50}, connection="demo-payments")
    refundable = [c for c in _items(listed) if not c.get("refunded") and c["id"] != charge["id"]]
    target = refundable[0] if refundable else charge
    args = {"charge_id": target["id"], "amount": 50, "reason": "goodwill"}
    pending = await invoker.invoke("payments_refund_charge", args, session_id="demo")
    console.print(Panel(pending.text, title="model asks for a refund → what it reads",
                        border_style="yellow"))
    if pending.approval_id and dashboard is not None:
        console.print(f"  [yellow]…[/] the refund waits for you: approve or deny it at "
                      f"[bold]{dashboard}approvals[/] — the bot then calls the tool again",
                      highlight=False)
        console.print("Tool calls are audited: the dashboard's tool audit, "
                      "[bold]patchwire tools audit[/]")
        return PendingRefund(pending.approval_id, args)
    if pending.approval_id:
        await invoker.repository.decide_approval(
            pending.approval_id, approved=True, decided_by="demo supervisor",
            reason="goodwill gesture approved")
        done = await invoker.invoke("payments_refund_charge", args, session_id="demo")
        console.print(f"  [green]✓[/] approved by the supervisor; the model's retry ran: "
                      f"{done.status}: {_short(done.data) if done.data else done.text}",
                      highlight=False)
    console.print("Tool calls are audited: [bold]patchwire tools audit[/]; approvals: "
                  "[bold]patchwire approvals list --status all[/]")
    return None


async def _flows_scene(pw: Patchwire, customer: dict[str, Any], order: dict[str, Any],
                       engine: Engine | None) -> None:
    """The shipped example flows, run durably: by the server's ``engine``, or by one
    started here for the walkthrough (``--once``). One run fails on purpose."""
    from patchwire.flows import FlowEngine, FlowRegistry

    console.print()
    console.rule("[bold]Durable flows[/]: the same work as multi-step workflows")
    registry = FlowRegistry.load(pw.settings.flow_paths, builtins=True)
    async with contextlib.AsyncExitStack() as stack:
        if engine is None:
            engine = await stack.enter_async_context(
                FlowEngine(pw, registry.as_mapping(), schedules=False))
        scenes = [
            ("chat_to_ticket", {"email": customer["email"],
                                "message": "Where is my refund? (from the chat widget)"}),
            ("refund_to_ticket_comment", {"order_id": str(order["id"]),
                                          "reason": "damaged in transit"}),
            ("overdue_invoice_reminders", {}),
            # fails: no such order (a dead letter: inspect it, retry it)
            ("refund_to_ticket_comment", {"order_id": "999999", "reason": "mistyped order"}),
        ]
        for flow_id, flow_input in scenes:
            if flow_id not in {f.id for f in registry}:
                continue
            run = await engine.run(flow_id, flow_input, trigger="demo", max_wait=60)
            steps = await engine.steps(run.id)
            colour = "green" if run.status == "succeeded" else "red"
            console.print(f"  [{colour}]{run.status}[/] {flow_id} "
                          f"[dim](run {run.id[-8:]}, {len(steps)} step checkpoints)[/]: "
                          f"{_short(run.output if run.status == 'succeeded' else run.error)}",
                          highlight=False)
    schedule = next((f.trigger.schedule[0] for f in registry if f.trigger.schedule), None)
    if schedule is not None:
        console.print(f"Scheduled flows fire on `patchwire serve` / `patchwire worker` "
                      f"(e.g. cron '{schedule.cron}' {schedule.timezone}); runs survive "
                      "crashes and resume where they were; a failed run can be retried.")
    console.print("Runs: [bold]patchwire runs list[/], [bold]patchwire runs show ID[/]; "
                  "flows: [bold]patchwire flow list[/], docs/flows.md")


def _running(server: DemoServer, sandbox: Sandbox, options: DemoOptions) -> None:
    """Where everything is, while the server runs."""
    home = options.home
    stop = (f"It stops by itself in {options.duration:g} s; [bold]Ctrl-C[/] stops it sooner."
            if options.duration is not None else "[bold]Ctrl-C[/] stops the demo.")
    console.print()
    console.print(Panel(
        f"Dashboard          [bold]{server.dashboard_url}[/]  (runs, approvals, tool audit, "
        "webhook inbox, deliveries, playground)\n"
        f"MCP (Streamable)   [bold]{server.mcp_url}[/]  (point a chatbot or the MCP "
        "Inspector at it)\n"
        f"REST API           [bold]{server.url}/api/v1[/]  (OpenAPI: {server.url}/api/v1/"
        f"openapi.json, docs: {server.url}/api/docs)\n"
        f"Webhooks           {server.url}/hooks/{{shop,payments,helpdesk,calendar}} "
        f"(the sandbox on {sandbox.url} posts its signed events)\n"
        f"Metrics            {server.url}/metrics\n"
        f"CLI on this store  PATCHWIRE_HOME={home} PATCHWIRE_ALLOW_NETWORKS=127.0.0.1 "
        "patchwire runs list | calls | approvals list\n\n"
        "A little traffic runs in the background — some calls and runs fail on purpose, "
        "and a refund waits for your approval in the dashboard.\n"
        + stop,
        title="Patchwire is running", border_style="green"), highlight=False)


def _connect_a_client(sandbox_port: int, home: Path) -> None:
    import shutil
    import sys

    exe = shutil.which("patchwire") or str(Path(sys.executable).with_name("patchwire"))
    scope = " ".join(f"--connection {c}" for c in DEMO_CONNECTIONS)
    env = f"PATCHWIRE_HOME={home} PATCHWIRE_ALLOW_NETWORKS=127.0.0.1"
    sandbox = "patchwire sandbox" + (f" --port {sandbox_port}"
                                     if sandbox_port != SANDBOX_PORT else "")
    console.print()
    console.rule("[bold]Connect a chatbot[/]")
    console.print(
        "The server, dashboard, live traffic and a second end user connecting her calendar "
        "through a connect link: [bold]patchwire demo[/] (without --once).\n"
        f"The demo connections (store {home}/) point at the sandbox on port {sandbox_port}; "
        f"start it again first: [bold]{sandbox} &[/]\n"
        f"• MCP over stdio (Claude Desktop, Cursor, Inspector): command [bold]{exe}[/], "
        f"args [bold]mcp {scope}[/], env {env}\n"
        f"  try it: [bold]{env} npx @modelcontextprotocol/inspector --cli {exe} mcp "
        f"--connection demo-shop --method tools/list[/]\n"
        f"• MCP over Streamable HTTP: [bold]{env} patchwire serve[/] → "
        "http://127.0.0.1:8600/mcp (the dashboard of all the above: http://127.0.0.1:8600/)\n"
        f"• OpenAI / Anthropic tool definitions: [bold]PATCHWIRE_HOME={home} patchwire tools "
        "export --format openai --connection demo-shop[/]\n"
        "• A terminal chat with any OpenAI-compatible model: [bold]patchwire chat --base-url "
        "URL --model M --connection demo-shop[/]", highlight=False)


@contextlib.asynccontextmanager
async def _sandbox(port: int | None) -> AsyncIterator[Sandbox]:
    """The sandbox on ``port`` (0: any free one); by default on `patchwire sandbox`'s port
    8765 when it is free, so the demo's connections keep working with a sandbox started
    afterwards, else on any free port."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            sandbox = await stack.enter_async_context(
                Sandbox(port=SANDBOX_PORT if port is None else port))
        except OSError as exc:
            if port is not None:
                raise ConfigError(f"cannot listen on 127.0.0.1:{port} for the sandbox: "
                                  f"{exc.strerror or exc}") from None
            sandbox = await stack.enter_async_context(Sandbox(port=0))
        yield sandbox


def _items(value: Any, key: str | None = None) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for k in (key, "data", "items", "tickets", "slots", "appointments"):
            if k and isinstance(value.get(k), list):
                return list(value[k])
    return []
