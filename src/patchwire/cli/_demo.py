"""`make demo`: a chatbot-style support scenario against the sandbox APIs.

A customer writes to a support bot; the bot looks up the customer and their latest order,
opens a helpdesk ticket about it, refunds the charge (with an idempotency key, retried
safely) and books a call-back — every step one call through the call path, shown with
its result and timing. Connections are created (or updated) in the default store, so
`patchwire calls` and `patchwire connection list` show what happened afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from patchwire._patchwire import Patchwire
from patchwire.calls import CallOutcome
from patchwire.config import Settings, load_settings
from patchwire.errors import CallError, ConnectionExists
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox

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
            await pw.add_connection(api, f"demo-{api}", values, owner="acme")
        except ConnectionExists:
            await pw.update_connection(f"demo-{api}", values)


async def run_demo(*, port: int = 0) -> None:
    settings = load_settings()
    console.rule("[bold]Patchwire demo[/]: a support bot that can act")
    async with _sandbox(port) as sandbox, Patchwire(_admit(settings, sandbox)) as pw:
        console.print(f"Sandbox APIs on [bold]{sandbox.url}[/] (shop · helpdesk · calendar · "
                      f"payments); store at {settings.effective_database_url.split('///')[-1]}")
        console.print(f"SSRF guard on: internal addresses are refused; the sandbox's address "
                      f"{sandbox.host} is allow-listed for this demo only")
        await _connect(pw, sandbox.url)
        console.print("Connections demo-shop, demo-helpdesk, demo-calendar, demo-payments "
                      "ready (secrets encrypted at rest)\n")
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
        await _tools_scene(pw, charge)
        await _flows_scene(pw, customer, order)
    _connect_a_client(sandbox.port)


DEMO_CONNECTIONS = ["demo-shop", "demo-helpdesk", "demo-calendar", "demo-payments"]


async def _tools_scene(pw: Patchwire, charge: dict[str, Any]) -> None:
    """The same actions as a model sees them: tools with safety flags, errors it can act
    on, and a refund that waits for a person's yes."""
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


async def _flows_scene(pw: Patchwire, customer: dict[str, Any],
                       order: dict[str, Any]) -> None:
    """The shipped example flows, run durably by the embedded engine."""
    from patchwire.flows import FlowRegistry
    from patchwire.flows._engine import FlowEngine

    console.print()
    console.rule("[bold]Durable flows[/]: the same work as multi-step workflows")
    registry = FlowRegistry.load(pw.settings.flow_paths)
    async with FlowEngine(pw, registry.as_mapping(), schedules=False) as engine:
        scenes = [
            ("chat_to_ticket", {"email": customer["email"],
                                "message": "Where is my refund? (from the chat widget)"}),
            ("refund_to_ticket_comment", {"order_id": str(order["id"]),
                                          "reason": "damaged in transit"}),
            ("overdue_invoice_reminders", {}),
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
                      "crashes and resume where they were.")
    console.print("Runs: [bold]patchwire runs list[/], [bold]patchwire runs show ID[/]; "
                  "flows: [bold]patchwire flow list[/], docs/flows.md")


def _connect_a_client(sandbox_port: int) -> None:
    import shutil
    import sys
    from pathlib import Path

    exe = shutil.which("patchwire") or str(Path(sys.executable).with_name("patchwire"))
    scope = " ".join(f"--connection {c}" for c in DEMO_CONNECTIONS)
    env = "PATCHWIRE_ALLOW_NETWORKS=127.0.0.1"
    sandbox = "patchwire sandbox" + (f" --port {sandbox_port}" if sandbox_port != 8765 else "")
    console.print()
    console.rule("[bold]Connect a chatbot[/]")
    console.print(
        f"The demo connections point at the sandbox on port {sandbox_port}; start it again "
        f"first: [bold]{sandbox} &[/]\n"
        f"• MCP over stdio (Claude Desktop, Cursor, Inspector): command [bold]{exe}[/], "
        f"args [bold]mcp {scope}[/], env {env}\n"
        f"  try it: [bold]{env} npx @modelcontextprotocol/inspector --cli {exe} mcp "
        f"--connection demo-shop --method tools/list[/]\n"
        f"• MCP over Streamable HTTP: [bold]{env} patchwire serve[/] → "
        "http://127.0.0.1:8600/mcp (the dashboard of all the above: http://127.0.0.1:8600/)\n"
        "• OpenAI / Anthropic tool definitions: [bold]patchwire tools export --format openai "
        "--connection demo-shop[/]\n"
        "• A terminal chat with any OpenAI-compatible model: [bold]patchwire chat --base-url "
        "URL --model M --connection demo-shop[/]", highlight=False)


@contextlib.asynccontextmanager
async def _sandbox(port: int) -> AsyncIterator[Sandbox]:
    """The sandbox on ``port``; by default on `patchwire sandbox`'s port 8765 when it is
    free, so the demo's connections keep working with a sandbox started afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            sandbox = await stack.enter_async_context(Sandbox(port=port or 8765))
        except OSError:
            if port:
                raise
            sandbox = await stack.enter_async_context(Sandbox(port=0))
        yield sandbox


def _admit(settings: Settings, sandbox: Sandbox) -> Settings:
    """The SSRF guard refuses loopback: the demo's own instance admits exactly the
    sandbox's address, on top of whatever the user allow-listed."""
    return settings.with_(allow_networks=(*settings.allow_networks, sandbox.host))


def _items(value: Any, key: str | None = None) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for k in (key, "data", "items", "tickets", "slots", "appointments"):
            if k and isinstance(value.get(k), list):
                return list(value[k])
    return []
