"""Background traffic for `patchwire demo`: a support bot and a shop that keep working.

Every round (two seconds apart, a bounded number of them) does a little of what a real
installation sees — and some of what goes wrong there, on purpose:

- calls through the call path: lookups, and now and then a 404 (an order that does not
  exist), a 409 (shipping a refunded order) or a 503 outage (the sandbox's chaos switch on
  payments; retried, then given up on);
- flow runs: ``chat_to_ticket`` for a customer, and ``refund_to_ticket_comment`` for an
  order that does not exist (it fails: a dead letter to retry or inspect);
- webhooks: an order is placed, paid and refunded, so the shop's signed ``order.created``
  and ``order.refunded`` events reach the inbox (the refund starts
  ``refund_to_ticket_comment``); now and then a forged one is refused;
- tool calls as a model makes them (one with wrong arguments), and a refund waiting for a
  person: approve or deny it in the dashboard and the bot calls the tool again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from rich.console import Console
from rich.markup import escape

from patchwire import Patchwire
from patchwire.errors import CallError
from patchwire.flows import Engine
from patchwire.http import HttpCore, Limits, PreparedRequest
from patchwire.sandbox import Sandbox
from patchwire.tools import ToolInvoker
from patchwire.webhooks import sign

__all__ = ["MAX_ROUNDS", "PendingRefund", "Traffic", "TrafficCounts"]

ROUND_INTERVAL_S = 2.0
#: about half an hour of traffic; the server keeps running after it
MAX_ROUNDS = 900
ROUND_TIMEOUT_S = 20.0
#: rounds between two summary lines
REPORT_EVERY = 15
#: a forged webhook's whole exchange with the demo server
_FORGED_LIMITS = Limits(aiohttp.ClientTimeout(total=5))
#: rounds between a decided approval and the bot's next request
ASK_AGAIN_AFTER = 8
SESSION = "demo"
REFUND_TOOL = "payments_refund_charge"

MESSAGES = (
    "Where is my parcel? The tracking page has not moved for days.",
    "I was charged twice for the same order.",
    "Can I change the shipping address of my last order?",
    "The blender I received does not turn on.",
    "Please cancel my subscription renewal.",
)


@dataclass
class PendingRefund:
    """A refund the bot asked for as a tool call, waiting for a person's decision."""

    approval_id: str
    arguments: dict[str, Any]


@dataclass
class TrafficCounts:
    rounds: int = 0
    calls: int = 0
    failed_calls: int = 0
    runs: int = 0
    failing_runs: int = 0
    tool_calls: int = 0
    orders: int = 0
    forged: int = 0
    errors: int = 0


class Traffic:
    """The rounds, on ``pw`` (its calls), ``engine`` (the server's runs) and ``sandbox``
    (its chaos switch), posting forged webhooks to ``base_url``. ``pending``: a refund
    already waiting for approval (the walkthrough leaves one)."""

    def __init__(self, pw: Patchwire, engine: Engine, sandbox: Sandbox, *,
                 base_url: str, connections: Sequence[str], console: Console,
                 pending: PendingRefund | None = None, interval: float = ROUND_INTERVAL_S,
                 rounds: int = MAX_ROUNDS, seed: int = 7) -> None:
        self.pw = pw
        self.engine = engine
        self.sandbox = sandbox
        self.base_url = base_url
        self.console = console
        self.pending = pending
        self.interval = interval
        self.rounds = rounds
        self.counts = TrafficCounts()
        self.invoker = ToolInvoker(pw, connections=list(connections), engine=engine)
        self._rng = random.Random(seed)
        self._customers: list[dict[str, Any]] = []
        self._products: list[dict[str, Any]] = []
        self._orders: list[str] = []
        self._refunded: list[str] = []
        self._decided_at = 0

    async def run(self) -> None:
        """The rounds, then return (the server goes on). Cancel it to stop early."""
        await self._prepare()
        # Patchwire's own HTTP core, to the demo server on loopback (which its SSRF guard
        # admits only when told)
        http = HttpCore(allow_networks=("127.0.0.0/8", "::1/128"))
        try:
            for n in range(1, self.rounds + 1):
                try:
                    async with asyncio.timeout(ROUND_TIMEOUT_S):
                        await self._round(n, http)
                except Exception as exc:  # one bad round must not end the traffic
                    self.counts.errors += 1
                    if self.counts.errors <= 3:
                        self.console.print(f"  [dim]traffic round {n}: {type(exc).__name__}: "
                                           f"{escape(str(exc))}[/]", highlight=False)
                self.counts.rounds = n
                if n % REPORT_EVERY == 0:
                    self.report()
                await asyncio.sleep(self.interval)
        finally:
            await http.close()
        self.console.print(f"[dim]The background traffic stopped after {self.rounds} rounds; "
                           "the server keeps running until Ctrl-C.[/]")

    def report(self) -> None:
        c = self.counts
        hooks = self.sandbox.webhook_stats
        waiting = " · a refund waits for approval" if self.pending is not None else ""
        self.console.print(
            f"[dim]traffic, {c.rounds} rounds: {c.calls} calls ({c.failed_calls} failed on "
            f"purpose) · {c.runs} runs started ({c.failing_runs} meant to fail) · "
            f"{c.tool_calls} tool calls · {hooks.sent} webhooks from the sandbox, "
            f"{c.forged} forged ones refused{waiting}[/]", highlight=False)

    # -- the rounds ------------------------------------------------------------------------

    async def _prepare(self) -> None:
        customers = await self.pw.call("shop.list_customers", {"limit": 100},
                                       connection="demo-shop")
        self._customers = [c for c in _items(customers) if c.get("email")]
        self._products = _items(await self.pw.call("shop.list_products", {},
                                                   connection="demo-shop"))
        orders = await self.pw.call("shop.list_orders", {"limit": 100}, connection="demo-shop")
        self._orders = [str(o["id"]) for o in _items(orders)]

    async def _round(self, n: int, http: HttpCore) -> None:
        await self._lookups()
        if n % 3 == 0:
            await self._failing_call(n // 3)
        if n % 4 == 1:
            await self._chat_run()
        if n % 4 == 3:
            await self._tool_calls(n)
        if n % 5 == 2:
            await self._failing_run(n)
        if n % 6 == 4:
            await self._order_lifecycle()
        if n % 7 == 5:
            await self._forged_webhook(http)
        await self._approvals(n)

    async def _call(self, action: str, arguments: dict[str, Any]) -> Any:
        """The result, or None when the call failed (counted)."""
        self.counts.calls += 1
        try:
            outcome = await self.pw.execute(action, arguments,
                                            connection=f"demo-{action.split('.')[0]}")
        except CallError:
            self.counts.failed_calls += 1
            return None
        return outcome.result

    async def _lookups(self) -> None:
        choice = self._rng.randrange(4)
        if choice == 0 and self._orders:
            await self._call("shop.get_order", {"order_id": self._rng.choice(self._orders)})
        elif choice == 1 and self._customers:
            customer = self._rng.choice(self._customers)
            await self._call("shop.get_customer", {"customer_id": customer["id"]})
        elif choice == 2:
            await self._call("helpdesk.list_tickets", {"status": "open", "per_page": 5})
        else:
            day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=self._rng.randrange(1, 8))
            await self._call("calendar.get_availability",
                             {"date": day.isoformat(), "duration": 30})

    async def _failing_call(self, k: int) -> None:
        kind = k % 3
        if kind == 0:  # 404: the model made up an order number
            await self._call("shop.get_order", {"order_id": str(900_000 + k)})
        elif kind == 1 and self._refunded:  # 409: a refunded order cannot be shipped
            await self._call("shop.update_order_status",
                             {"order_id": self._refunded[-1], "status": "shipped"})
        else:  # 503 with Retry-After: payments is down for a moment; retried, given up on
            self.sandbox.set_chaos("payments", error_rate=1.0, error_statuses=(503,))
            try:
                await self._call("payments.list_charges", {"limit": 5})
            finally:
                self.sandbox.clear_chaos("payments")

    async def _chat_run(self) -> None:
        if not self._customers:
            return
        customer = self._rng.choice(self._customers)
        await self.engine.start_run("chat_to_ticket", {
            "email": customer["email"], "message": self._rng.choice(MESSAGES)}, trigger="demo")
        self.counts.runs += 1

    async def _failing_run(self, n: int) -> None:
        # the order does not exist: the run fails at its first step (not_found)
        await self.engine.start_run("refund_to_ticket_comment", {
            "order_id": str(800_000 + n), "reason": "refund noted for a mistyped order"},
            trigger="demo")
        self.counts.runs += 1
        self.counts.failing_runs += 1

    async def _order_lifecycle(self) -> None:
        """Placed, paid, refunded: the shop's webhooks for each reach the inbox, and the
        refund starts the ``refund_to_ticket_comment`` flow."""
        if not self._customers or not self._products:
            return
        customer = self._rng.choice(self._customers)
        product = self._rng.choice(self._products)
        order = await self._call("shop.create_order", {
            "customer_id": customer["id"],
            "line_items": [{"product_id": product["id"], "quantity": self._rng.randint(1, 3)}],
            "note": "placed by the demo traffic"})
        if order is None:
            return
        order_id = str(order["id"])
        self.counts.orders += 1
        self._orders.append(order_id)
        await self._call("shop.update_order_status", {"order_id": order_id, "status": "paid"})
        refunded = await self._call("shop.update_order_status",
                                    {"order_id": order_id, "status": "refunded"})
        if refunded is not None:
            self._refunded.append(order_id)

    async def _forged_webhook(self, http: HttpCore) -> None:
        """An event signed with the wrong secret: refused (401) and listed as a rejection."""
        body = json.dumps({"id": f"evt_forged_{uuid.uuid4().hex[:12]}", "type": "order.refunded",
                           "created": int(time.time()),
                           "data": {"id": "1", "reason": "forged"}}).encode()
        headers = sign(Sandbox.webhook_scheme("shop"), "not-the-shop-secret", body,
                       timestamp=time.time(), event_id=uuid.uuid4().hex)
        headers["Content-Type"] = "application/json"
        await http.exchange(PreparedRequest("POST", f"{self.base_url}/hooks/shop", headers,
                                            data=body, idempotent=False), _FORGED_LIMITS)
        self.counts.forged += 1

    async def _tool_calls(self, n: int) -> None:
        if not self._orders:
            return
        order_id = self._rng.choice(self._orders)
        self.counts.tool_calls += 1
        if n % 8 == 7:  # as models do: a wrong argument name, told precisely what to send
            await self.invoker.invoke("shop_get_order", {"id": order_id}, session_id=SESSION)
        else:
            await self.invoker.invoke("shop_get_order", {"order_id": order_id},
                                      session_id=SESSION)

    # -- the refund waiting for a person -----------------------------------------------------

    async def _approvals(self, n: int) -> None:
        if self.pending is None:
            if n - self._decided_at >= ASK_AGAIN_AFTER:
                self.pending = await self._ask_for_refund()
            return
        record = await self.invoker.repository.get_approval(self.pending.approval_id)
        status = record.effective_status()
        if status == "pending":
            return
        # the bot calls the tool again with the same arguments, as the pending text told it
        self.counts.tool_calls += 1
        result = await self.invoker.invoke(REFUND_TOOL, self.pending.arguments,
                                           session_id=SESSION)
        by = escape(record.decided_by or "nobody")  # what people type is not markup
        if status == "approved":
            self.console.print(f"  [green]✓[/] {by} approved the refund; the bot called "
                               f"{REFUND_TOOL} again: {result.status}"
                               f"{' ' + escape(_short(result.data)) if result.data else ''}",
                               highlight=False)
        elif status == "denied":
            self.console.print(f"  [red]✗[/] {by} denied the refund; the bot was told so: "
                               f"{escape(_short(result.text))}", highlight=False)
        else:
            self.console.print(f"  [dim]the refund request is {status}[/]")
        self.pending = None
        self._decided_at = n

    async def _ask_for_refund(self) -> PendingRefund | None:
        charges = await self._call("payments.list_charges", {"limit": 50})
        refundable = [c for c in _items(charges) if not c.get("refunded")
                      and c.get("amount", 0) > c.get("amount_refunded", 0) + 100]
        if not refundable:
            return None
        charge = self._rng.choice(refundable)
        arguments = {"charge_id": charge["id"], "amount": 100,
                     "reason": "goodwill: late delivery"}
        self.counts.tool_calls += 1
        result = await self.invoker.invoke(REFUND_TOOL, arguments, session_id=SESSION)
        if result.approval_id is None or result.status != "pending_approval":
            return None
        self.console.print(f"  [yellow]…[/] the bot asks to refund 1.00 of {charge['id']}: "
                           f"approval {result.approval_id[-8:]} waits in the dashboard",
                           highlight=False)
        return PendingRefund(result.approval_id, arguments)


def _short(value: Any, limit: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("data", "items", "tickets"):
            if isinstance(value.get(key), list):
                return list(value[key])
    return []
