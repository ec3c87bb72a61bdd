"""The sandbox APIs send vendor-signed webhooks for their own events to a configured URL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import standardwebhooks
import stripe
from aiohttp import web

from patchwire.expressions import compile_expression
from patchwire.sandbox import (
    SANDBOX_WEBHOOK_SCHEMES,
    SANDBOX_WEBHOOK_SECRETS,
    Sandbox,
    WebhookSender,
    auth_headers,
)
from patchwire.webhooks import verify
from tests.support.sandboxes import ANCHOR

WAIT_S = 5.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []  # answers to give first (then 200)
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.statuses.pop(0) if self.statuses else 200
        async with self._arrived:
            self.received.append(Received(request.path, dict(request.headers), body))
            self._arrived.notify_all()
        return web.Response(status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int) -> list[Received]:
        """The first ``count`` requests, waiting at most WAIT_S for them."""
        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    await hooks.start()
    yield hooks
    await hooks.stop()


@pytest.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0, calendar_anchor=ANCHOR, webhook_url=receiver.url) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def verified(api: str, received: Received) -> dict[str, Any]:
    """Checks the request with our verifier for the API's scheme; returns the event."""
    result = verify(SANDBOX_WEBHOOK_SCHEMES[api], [SANDBOX_WEBHOOK_SECRETS[api]],
                    received.headers, received.body, now=time.time())
    event = received.event
    assert event["id"].startswith("evt_")
    assert set(event) == {"id", "type", "created", "data"}
    if api != "payments":  # Stripe's scheme carries the event id in the body only
        assert result.event_id == event["id"]
    return event


async def paid_order(sandbox: Sandbox, http: aiohttp.ClientSession) -> str:
    async with http.get(sandbox.api_url("shop") + "/orders", params={"status": "paid"},
                        headers=auth_headers("shop")) as resp:
        order_id: str = (await resp.json())["data"][0]["id"]
    return order_id


async def patch_order(
    sandbox: Sandbox, http: aiohttp.ClientSession, order_id: str, body: dict[str, Any]
) -> None:
    async with http.patch(f"{sandbox.api_url('shop')}/orders/{order_id}", json=body,
                          headers=auth_headers("shop")) as resp:
        assert resp.status == 200, await resp.text()


# -- shop (Shopify-style) -------------------------------------------------------------------


async def test_refunding_an_order_sends_a_shopify_signed_order_refunded_event(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    order_id = await paid_order(sandbox, http)
    await patch_order(sandbox, http, order_id, {"status": "refunded", "note": "arrived broken"})
    [hook] = await receiver.wait_for(1)
    event = verified("shop", hook)
    assert event["type"] == "order.refunded"
    assert event["data"]["id"] == order_id
    assert event["data"]["status"] == "refunded"
    assert event["data"]["reason"] == "arrived broken"
    assert hook.headers["X-Shopify-Topic"] == "refunds/create"
    assert hook.headers["X-Shopify-Shop-Domain"].endswith(".myshopify.com")
    assert hook.path == "/hooks"

    # what the example flow refund_to_ticket_comment does with it
    assert compile_expression("type = 'order.refunded'").evaluate(event) is True
    mapped = compile_expression('{"order_id": $string(data.id), "reason": data.reason}')
    assert mapped.evaluate(event) == {"order_id": order_id, "reason": "arrived broken"}


async def test_a_refund_without_a_note_leaves_the_reason_out(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    order_id = await paid_order(sandbox, http)
    await patch_order(sandbox, http, order_id, {"status": "refunded"})
    [hook] = await receiver.wait_for(1)
    event = verified("shop", hook)
    assert "reason" not in event["data"]
    mapped = compile_expression('{"order_id": $string(data.id), "reason": data.reason}')
    assert mapped.evaluate(event) == {"order_id": order_id}


async def test_creating_and_updating_orders_send_created_then_updated_in_order(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with http.post(sandbox.api_url("shop") + "/orders", headers=auth_headers("shop"),
                         json={"customer_id": "cus_0001",
                               "line_items": [{"product_id": "prod_001", "quantity": 2}]}) as r:
        order = await r.json()
    await patch_order(sandbox, http, order["id"], {"status": "paid"})
    await patch_order(sandbox, http, order["id"], {"note": "gift wrap"})
    hooks = await receiver.wait_for(3)
    events = [verified("shop", hook) for hook in hooks]
    assert [e["type"] for e in events] == ["order.created", "order.updated", "order.updated"]
    assert [e["data"]["status"] for e in events] == ["pending", "paid", "paid"]
    assert events[2]["data"]["note"] == "gift wrap"
    assert [h.headers["X-Shopify-Topic"] for h in hooks] == [
        "orders/create", "orders/updated", "orders/updated"
    ]
    assert len({e["id"] for e in events}) == 3


# -- payments (Stripe-style) ----------------------------------------------------------------


async def test_charges_send_stripe_signed_events_that_the_stripe_sdk_accepts(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    base = sandbox.api_url("payments")
    headers = {**auth_headers("payments"), "Idempotency-Key": "charge-1"}
    form = {"amount": "2500", "currency": "usd", "customer": "cus_0001"}
    async with http.post(base + "/charges", data=form, headers=headers) as resp:
        charge = await resp.json()
    async with http.post(base + "/charges", data=form, headers=headers) as resp:
        assert resp.headers["Idempotent-Replayed"] == "true"  # replays send nothing
    async with http.post(f"{base}/charges/{charge['id']}/refunds", data={"amount": "500"},
                         headers=auth_headers("payments")) as resp:
        assert resp.status == 201
    hooks = await receiver.wait_for(2)
    events = [verified("payments", hook) for hook in hooks]
    assert [e["type"] for e in events] == ["charge.succeeded", "charge.refunded"]
    assert events[1]["data"]["id"] == charge["id"]
    assert events[1]["data"]["amount_refunded"] == 500
    for hook in hooks:
        stripe_event = stripe.Webhook.construct_event(
            hook.body, hook.headers["Stripe-Signature"], SANDBOX_WEBHOOK_SECRETS["payments"]
        )
        assert stripe_event["id"] == json.loads(hook.body)["id"]
    await sandbox.flush_webhooks()
    assert len(receiver.received) == 2


# -- helpdesk (GitHub-style) ----------------------------------------------------------------


async def test_ticket_changes_send_github_signed_events(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    base = sandbox.api_url("helpdesk")
    headers = auth_headers("helpdesk")
    async with http.post(base + "/tickets", headers=headers, json={
        "subject": "Where is my order?", "description": "It is late.",
        "requester_email": "ada@example.com", "order_id": "42",
    }) as resp:
        ticket = await resp.json()
    async with http.patch(f"{base}/tickets/{ticket['id']}", headers=headers,
                          json={"status": "open"}) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/tickets/{ticket['id']}/comments", headers=headers,
                         data={"body": "On its way."}) as resp:
        assert resp.status == 201
    hooks = await receiver.wait_for(3)
    events = [verified("helpdesk", hook) for hook in hooks]
    assert [e["type"] for e in events] == ["ticket.created", "ticket.updated", "comment.created"]
    assert [h.headers["X-GitHub-Event"] for h in hooks] == [e["type"] for e in events]
    assert events[1]["data"]["status"] == "open"
    assert events[2]["data"]["ticket_id"] == ticket["id"]
    assert hooks[0].headers["User-Agent"].startswith("GitHub-Hookshot/")


# -- calendar (Standard Webhooks) -----------------------------------------------------------


async def test_bookings_send_standard_webhooks_the_reference_library_verifies(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    base = sandbox.api_url("calendar")
    headers = auth_headers("calendar")
    day = ANCHOR + timedelta(days=1)
    async with http.get(base + "/availability", params={"date": day.isoformat()},
                        headers=headers) as resp:
        slot = (await resp.json())["slots"][0]
    booking = {"start": slot["start"], "attendee_email": "ada@example.com", "topic": "Demo"}
    async with http.post(base + "/appointments", json=booking, headers=headers) as resp:
        appointment = await resp.json()
    async with http.delete(f"{base}/appointments/{appointment['id']}", headers=headers) as r:
        assert r.status == 204
    hooks = await receiver.wait_for(2)
    events = [verified("calendar", hook) for hook in hooks]
    assert [e["type"] for e in events] == ["appointment.booked", "appointment.cancelled"]
    assert events[0]["data"] == appointment
    assert events[1]["data"]["status"] == "cancelled"
    library = standardwebhooks.Webhook(SANDBOX_WEBHOOK_SECRETS["calendar"])
    for hook in hooks:
        assert library.verify(hook.body, hook.headers) == hook.event


# -- configuration and delivery -------------------------------------------------------------


async def test_without_a_webhook_url_nothing_is_sent_until_one_is_set(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    async with Sandbox(seed=0, calendar_anchor=ANCHOR) as quiet:
        order_id = await paid_order(quiet, http)
        await patch_order(quiet, http, order_id, {"status": "refunded"})
        await quiet.flush_webhooks()
        assert quiet.webhook_url is None
        assert quiet.webhook_stats.to_json() == {
            "emitted": 0, "sent": 0, "failed": 0, "dropped": 0, "retries": 0
        }
        assert receiver.received == []

        quiet.set_webhook_url(receiver.url)  # at run time; the next event goes out
        await patch_order(quiet, http, order_id, {"note": "late note"})
        [hook] = await receiver.wait_for(1)
        assert verified("shop", hook)["type"] == "order.updated"


async def test_the_webhook_url_can_be_set_over_http_and_counters_show_in_stats(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    async with Sandbox(seed=0, calendar_anchor=ANCHOR) as running:
        control = running.url + "/_sandbox/webhooks"
        async with http.put(control, json={"url": "ftp://nope"}) as resp:
            assert resp.status == 422
        async with http.put(control, json={"url": receiver.url}) as resp:
            state = await resp.json()
        assert state["url"] == receiver.url
        assert state["schemes"] == {
            "shop": "shopify", "payments": "stripe", "helpdesk": "github", "calendar": "standard"
        }
        assert "secret" not in json.dumps(state).lower()
        await patch_order(running, http, await paid_order(running, http), {"status": "shipped"})
        await receiver.wait_for(1)
        await running.flush_webhooks()
        async with http.get(running.url + "/_sandbox/stats") as resp:
            stats = await resp.json()
        assert stats["webhooks"]["sent"] == 1
        assert stats["webhooks"]["emitted"] == 1


async def test_a_5xx_is_retried_and_the_event_arrives_once_accepted(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.statuses = [503, 500]
    await patch_order(sandbox, http, await paid_order(sandbox, http), {"status": "shipped"})
    hooks = await receiver.wait_for(3)
    await sandbox.flush_webhooks()
    assert len({h.event["id"] for h in hooks}) == 1  # the same event, signed per attempt
    for hook in hooks:
        verified("shop", hook)
    assert (sandbox.webhook_stats.sent, sandbox.webhook_stats.retries) == (1, 2)
    assert sandbox.webhook_stats.failed == 0


async def test_a_4xx_is_not_retried_and_counts_as_failed(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.statuses = [401]
    await patch_order(sandbox, http, await paid_order(sandbox, http), {"status": "shipped"})
    await receiver.wait_for(1)
    await sandbox.flush_webhooks()
    assert len(receiver.received) == 1
    assert (sandbox.webhook_stats.sent, sandbox.webhook_stats.failed) == (0, 1)


async def test_an_unreachable_receiver_is_given_up_on_after_bounded_retries(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    dead = receiver.url
    await receiver.stop()  # nothing listens on that port any more
    async with Sandbox(seed=0, calendar_anchor=ANCHOR, webhook_url=dead) as running:
        started = time.monotonic()
        await patch_order(running, http, await paid_order(running, http), {"status": "shipped"})
        assert time.monotonic() - started < 1.0  # the API did not wait for the delivery
        await running.flush_webhooks()
        stats = running.webhook_stats
        assert (stats.sent, stats.failed, stats.retries) == (0, 1, 3)


async def test_a_full_queue_drops_events_and_counts_them() -> None:
    sender = WebhookSender("http://127.0.0.1:9/never", queue_size=2)
    events = sender.events_for("shop")
    assert events.enabled
    for number in range(5):
        # no await in between: the worker cannot take any event off the queue yet
        events.emit("order.updated", {"id": str(number)})
    assert (sender.counters.emitted, sender.counters.dropped) == (2, 3)
    await sender.close(drain_timeout=0)


async def test_event_ids_are_unique_and_events_are_snapshots(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url)
    events = sender.events_for("calendar")
    data = {"id": "apt_1", "status": ""}
    for number in range(20):
        data["status"] = f"s{number}"
        events.emit("appointment.booked", data)
    data["status"] = "changed after emit"
    hooks = await receiver.wait_for(20)
    await sender.close()
    assert len({h.event["id"] for h in hooks}) == 20
    # each carries the data as it was when emitted, and they arrive in emission order
    assert [h.event["data"]["status"] for h in hooks] == [f"s{n}" for n in range(20)]
    for hook in hooks:
        verified("calendar", hook)


async def test_custom_webhook_secrets_sign_the_events(
    receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    secret = "shpss_my_own_secret"
    async with Sandbox(seed=0, webhook_url=receiver.url,
                       webhook_secrets={"shop": secret}) as running:
        assert running.webhook_secrets["shop"] == secret
        assert running.webhook_secrets["payments"] == SANDBOX_WEBHOOK_SECRETS["payments"]
        await patch_order(running, http, await paid_order(running, http), {"status": "shipped"})
        [hook] = await receiver.wait_for(1)
    verify(Sandbox.webhook_scheme("shop"), [secret], hook.headers, hook.body, now=time.time())
    with pytest.raises(ValueError):
        Sandbox(webhook_secrets={"crm": "x"})
    with pytest.raises(ValueError):
        Sandbox(webhook_url="not a url")
