"""Outbound webhooks: subscriptions, dispatch, signed deliveries, order, retries, disabling,
redelivery, the SSRF guard, crash safety and secrecy.

Deliveries go to a sink served by this test's event loop on 127.0.0.1 (admitted by the
allow-list, as a user would admit a local endpoint). Time is a fake clock the tests move;
the worker is driven with ``run_once`` (dispatch, then send until every endpoint is done or
waits), so nothing sleeps. Each store test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from patchwire import Patchwire
from patchwire.auth.vault import Vault
from patchwire.flows import FlowEngine
from patchwire.flows.spec import FlowSpec
from patchwire.http import HttpCore, MockTransport, instant_retries
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.webhooks import (
    DISABLE_AFTER_FAILING_S,
    RETRY_AFTER_CAP_S,
    RETRY_SCHEDULE,
    DeliveryWorker,
    InvalidSubscription,
    WebhookOutbox,
    publish,
    retry_delay,
    type_matches,
)
from tests.support.cli import Cli
from tests.support.hostile import NoInvalidNames, bomb, memory_peak
from tests.support.servers import serve, serving
from tests.support.settings import LOOPBACK, local_settings

BOUND = 10.0  # no wait in these tests takes this long


class Clock:
    """Wall-clock stand-in the tests move (starts now, so signatures verify)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Sink:
    """An endpoint server: records every request; answers from a per-path script of
    (status, headers), then 204."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: dict[str, deque[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def at(self, path: str) -> str:
        return self.url + path

    def answer(self, path: str, *responses: int | tuple[int, dict[str, str]]) -> None:
        queue = self.script.setdefault(path, deque())
        for r in responses:
            queue.append(r if isinstance(r, tuple) else (r, {}))

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def types(self, path: str) -> list[str]:
        return [r.event["type"] for r in self.to(path)]

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path,
                                      {k.lower(): v for k, v in request.headers.items()},
                                      await request.read()))
        self.arrived.set()
        queue = self.script.get(request.path)
        status, headers = queue.popleft() if queue else (204, {})
        return web.Response(status=status, headers=headers,
                            text="nope" if status >= 300 else None)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = Sink()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def vault() -> Vault:
    return Vault({"k1": bytes(range(32))}, "k1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(store: Store, vault: Vault, clock: Clock) -> WebhookOutbox:
    return WebhookOutbox(store, vault, allow_networks=LOOPBACK, clock=clock)


@pytest.fixture
async def worker(outbox: WebhookOutbox, clock: Clock) -> AsyncIterator[DeliveryWorker]:
    w = DeliveryWorker(outbox, clock=clock, rng=random.Random(7), instant=False)
    try:
        yield w
    finally:
        await w.stop()


async def rows(store: Store, sql: str) -> list[Any]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


# -- delivery and signatures -----------------------------------------------------------------


async def test_an_event_is_delivered_with_standard_webhooks_headers_the_sdk_verifies(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink) -> None:
    created = await outbox.create_subscription(sink.at("/hooks"), ["order.*"])
    event_id = await publish(store, "order.refunded", {"order": "42", "amount": 12.5},
                             source="sync")

    assert await worker.run_once() == 1

    [got] = sink.received
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == event_id
    # the receiver's own library accepts the signature made with the secret shown once
    verified = Webhook(created.secret).verify(got.body, got.headers)
    assert verified["type"] == "order.refunded"
    assert verified["data"] == {"order": "42", "amount": 12.5}
    assert verified["timestamp"].endswith("Z")
    [delivery] = await outbox.list_deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "succeeded", 1, 204)
    assert delivery.last_latency_ms is not None and delivery.last_latency_ms > 0
    [attempt] = await outbox.attempts(delivery.id)
    assert (attempt.outcome, attempt.status_code, attempt.attempt) == ("succeeded", 204, 1)
    # the event is dispatched once: a second pass sends nothing more
    assert await worker.run_once() == 0 and len(sink.received) == 1


async def test_a_compressed_answer_is_read_to_64_kib_decoded_not_expanded_in_memory(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker) -> None:
    packed = bomb("gzip")  # ~400 KiB, 400 MiB decoded; sent although we asked for identity

    async def bombing(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, body=packed, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_post("/bomb", bombing)
    async with serve(app) as url:
        await outbox.create_subscription(f"{url}/bomb", ["*"])
        await publish(store, "e", {}, source="sync")
        with memory_peak() as peak:
            await worker.run_once()
    [delivery] = await outbox.list_deliveries()
    assert (delivery.status, delivery.last_status_code) == ("pending", 500)
    assert delivery.last_error is not None and delivery.last_error.startswith("HTTP 500")
    assert peak[0] < 50 * 1024 * 1024


async def test_flow_emits_and_run_outcomes_are_delivered_in_the_order_they_happened(
        tmp_path: Path, store_url: str, sink: Sink) -> None:
    spec = FlowSpec.model_validate(yaml.safe_load("""
id: emitting
steps:
  - {id: note, emit: ticket.noted, data: "{'n': $input.n}"}
"""))
    async with Patchwire(local_settings(tmp_path / "home", database_url=store_url)) as pw:
        box = WebhookOutbox.of(pw)
        await box.create_subscription(sink.at("/all"), ["*"])
        eng = FlowEngine(pw, {"emitting": spec}, poll_interval=3600)
        await eng.start()
        try:
            run = await eng.run("emitting", {"n": 1}, max_wait=BOUND)
        finally:
            await eng.stop()
        w = DeliveryWorker(box)
        try:
            await w.run_once()
        finally:
            await w.stop()
    assert sink.types("/all") == ["ticket.noted", "run.succeeded"]
    assert sink.received[0].event["data"] == {"n": 1}
    assert sink.received[1].event["data"]["run_id"] == run.id


async def test_publish_is_idempotent_on_the_event_id(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink) -> None:
    await outbox.create_subscription(sink.at("/a"), ["*"])
    first = await publish(store, "record.created", {"v": 1}, source="sync", event_id="ev-1")
    again = await publish(store, "record.created", {"v": 2}, source="sync", event_id="ev-1")
    await worker.run_once()
    assert first == again == "ev-1"
    assert [r.event["data"] for r in sink.received] == [{"v": 1}]


# -- filters ---------------------------------------------------------------------------------


def test_event_type_filters_take_exact_types_wildcards_and_everything() -> None:
    assert type_matches(["order.created"], "order.created")
    assert not type_matches(["order.created"], "order.created.late")
    assert type_matches(["order.*"], "order.refunded")
    assert type_matches(["order.*"], "order.item.added")
    assert not type_matches(["order.*"], "orders.created")
    assert not type_matches(["order.*"], "ticket.updated")
    assert type_matches(["*.failed"], "run.failed")
    assert type_matches(["*"], "anything.at.all")
    assert type_matches(["ticket.updated", "order.*"], "ticket.updated")
    assert not type_matches(["order.created"], "orderXcreated")  # the dot is literal


async def test_each_subscription_receives_only_the_events_its_filter_takes(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink) -> None:
    await outbox.create_subscription(sink.at("/orders"), ["order.*"])
    await outbox.create_subscription(sink.at("/tickets"), ["ticket.updated"])
    await outbox.create_subscription(sink.at("/all"), ["*"])
    for t in ("order.created", "ticket.updated", "ticket.closed", "order.refunded"):
        await publish(store, t, {}, source="sync")

    await worker.run_once()

    assert sink.types("/orders") == ["order.created", "order.refunded"]
    assert sink.types("/tickets") == ["ticket.updated"]
    assert sink.types("/all") == ["order.created", "ticket.updated", "ticket.closed",
                                  "order.refunded"]


async def test_invalid_urls_and_filters_are_refused_at_creation(
        outbox: WebhookOutbox) -> None:
    for url in ("ftp://example.com/x", "https://user:pw@example.com/", "https://", "nope"):
        with pytest.raises(InvalidSubscription):
            await outbox.create_subscription(url, ["*"])
    for types in ([], ["order created"], ["x" * 201]):
        with pytest.raises(InvalidSubscription):
            await outbox.create_subscription("https://example.com/hook", types)
    with pytest.raises(InvalidSubscription):
        await outbox.create_subscription("https://example.com/hook", ["*"], secret="plain")


# -- order, retries, disabling ---------------------------------------------------------------


async def test_a_failing_delivery_holds_back_later_ones_of_its_endpoint_only(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink,
        clock: Clock) -> None:
    await outbox.create_subscription(sink.at("/flaky"), ["*"])
    await outbox.create_subscription(sink.at("/healthy"), ["*"])
    sink.answer("/flaky", 500, 503)
    for n in range(3):
        await publish(store, f"e.{n}", {"n": n}, source="sync")

    await worker.run_once()
    assert sink.types("/flaky") == ["e.0"]  # e.1 and e.2 wait behind the failed e.0
    assert sink.types("/healthy") == ["e.0", "e.1", "e.2"]  # not held back

    for _ in range(2):  # second failure, then success and the rest, in order
        head = await _head(outbox, "/flaky", sink)
        assert head.next_attempt_at is not None
        clock.now = head.next_attempt_at
        await worker.run_once()
    assert sink.types("/flaky") == ["e.0", "e.0", "e.0", "e.1", "e.2"]
    flaky = [d for d in await outbox.list_deliveries() if d.event_type == "e.0"
             and d.last_status_code is not None and d.attempts == 3]
    assert len(flaky) == 1 and flaky[0].status == "succeeded"
    # a success ends the failure streak
    [sub] = [s for s in await outbox.list_subscriptions() if s.url.endswith("/flaky")]
    assert sub.failing_since is None and sub.retry_at is None


async def _head(outbox: WebhookOutbox, path: str, sink: Sink) -> Any:
    [sub] = [s for s in await outbox.list_subscriptions() if s.url == sink.at(path)]
    pending = await outbox.list_deliveries(subscription_id=sub.id, status="pending")
    return min(pending, key=lambda d: (d.event_created_at, d.event_id))


def test_the_retry_schedule_is_data_with_jitter_around_each_step() -> None:
    assert RETRY_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    rng = random.Random(1)
    for tries, step in enumerate(RETRY_SCHEDULE):
        delays = [retry_delay(tries, rng) for _ in range(200)]
        assert all(d is not None and step * 0.8 <= d <= step * 1.2 for d in delays)
        if step:
            assert len({round(d or 0, 6) for d in delays}) > 100  # really jittered
    assert retry_delay(len(RETRY_SCHEDULE), rng) is None
    # Retry-After wins when longer, capped; a shorter one does not shorten the schedule
    assert retry_delay(1, rng, retry_after=120) == 120
    assert retry_delay(1, rng, retry_after=10 ** 9) == RETRY_AFTER_CAP_S
    assert 240 <= (retry_delay(2, rng, retry_after=1) or 0) <= 360


async def test_failed_attempts_follow_the_schedule_then_the_delivery_fails_and_the_next_goes(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink,
        clock: Clock) -> None:
    await outbox.create_subscription(sink.at("/down"), ["*"])
    sink.answer("/down", *([500] * len(RETRY_SCHEDULE)))
    await publish(store, "first", {}, source="sync")
    await publish(store, "second", {}, source="sync")

    await worker.run_once()
    waits: list[float] = []
    for _ in range(len(RETRY_SCHEDULE) - 1):
        head = await _head(outbox, "/down", sink)
        assert head.event_type == "first" and head.status == "pending"
        waits.append(head.next_attempt_at - clock.now)
        clock.now = head.next_attempt_at - 0.5
        assert await worker.run_once() == 0  # not before its time
        clock.now = head.next_attempt_at
        await worker.run_once()

    for wait, step in zip(waits, RETRY_SCHEDULE[1:], strict=True):
        assert step * 0.8 <= wait <= step * 1.2
    assert sink.types("/down") == ["first"] * len(RETRY_SCHEDULE) + ["second"]
    first = next(d for d in await outbox.list_deliveries() if d.event_type == "first")
    assert (first.status, first.attempts, first.last_status_code) == (
        "failed", len(RETRY_SCHEDULE), 500)
    log = await outbox.attempts(first.id)
    assert [a.attempt for a in log] == list(range(1, len(RETRY_SCHEDULE) + 1))
    assert all(a.outcome == "failed" and a.status_code == 500 and a.error for a in log)


async def test_retry_after_longer_than_the_next_step_is_honoured(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink,
        clock: Clock) -> None:
    await outbox.create_subscription(sink.at("/busy"), ["*"])
    sink.answer("/busy", (429, {"Retry-After": "120"}))
    await publish(store, "e", {}, source="sync")

    await worker.run_once()
    head = await _head(outbox, "/busy", sink)
    assert head.next_attempt_at == pytest.approx(clock.now + 120, abs=0.01)
    clock.now += 60
    await worker.run_once()
    assert len(sink.received) == 1
    clock.now += 60
    await worker.run_once()
    assert len(sink.received) == 2 and (await outbox.get_delivery(head.id)).status == (
        "succeeded")


async def test_a_410_disables_the_endpoint_and_enabling_it_sends_the_rest_in_order(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink) -> None:
    created = await outbox.create_subscription(sink.at("/gone"), ["*"])
    sink.answer("/gone", 410)
    for n in range(3):
        await publish(store, f"e.{n}", {}, source="sync")

    await worker.run_once()
    sub = await outbox.get_subscription(created.subscription.id)
    assert sub.status == "disabled" and sub.disabled_reason is not None
    assert "410" in sub.disabled_reason and sub.disabled_at is not None
    assert sink.types("/gone") == ["e.0"]
    # disabled: new events are not delivered to it, pending ones wait
    await publish(store, "while.disabled", {}, source="sync")
    await worker.run_once()
    assert sink.types("/gone") == ["e.0"]

    await outbox.enable(sub.id)
    await worker.run_once()
    assert sink.types("/gone") == ["e.0", "e.1", "e.2"]
    assert (await outbox.get_subscription(sub.id)).status == "active"


async def test_five_days_of_failures_disable_the_endpoint(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink,
        clock: Clock) -> None:
    created = await outbox.create_subscription(sink.at("/broken"), ["*"])
    sink.answer("/broken", *([500] * 100))
    await publish(store, "e", {}, source="sync")
    started = clock.now

    await worker.run_once()
    sub = await outbox.get_subscription(created.subscription.id)
    assert sub.failing_since == pytest.approx(started)
    clock.now = started + DISABLE_AFTER_FAILING_S - 60  # not yet
    await worker.run_once()
    assert (await outbox.get_subscription(sub.id)).status == "active"
    clock.now = started + DISABLE_AFTER_FAILING_S
    await outbox.redeliver((await _head(outbox, "/broken", sink)).id)  # due now
    await worker.run_once()
    sub = await outbox.get_subscription(sub.id)
    assert sub.status == "disabled"
    assert sub.disabled_reason is not None and "5 days" in sub.disabled_reason


async def test_manual_redelivery_of_one_delivery_and_of_every_failed_one(
        store: Store, outbox: WebhookOutbox, sink: Sink, clock: Clock) -> None:
    created = await outbox.create_subscription(sink.at("/r"), ["*"])
    sub_id = created.subscription.id
    sink.answer("/r", *([500] * (2 * len(RETRY_SCHEDULE))))
    await publish(store, "a", {}, source="sync")
    await publish(store, "b", {}, source="sync")
    # the testing switch: every wait is zero, so both exhaust their schedule at once
    fast = DeliveryWorker(outbox, clock=clock, instant=True)
    try:
        assert await fast.run_once() == 2 * len(RETRY_SCHEDULE)
        assert {d.status for d in await outbox.list_deliveries()} == {"failed"}

        assert await outbox.redeliver_failed(sub_id) == 2
        await fast.run_once()
        assert sink.types("/r")[-2:] == ["a", "b"]
        assert {d.status for d in await outbox.list_deliveries()} == {"succeeded"}

        done = next(d for d in await outbox.list_deliveries() if d.event_type == "a")
        again = await outbox.redeliver(done.id)
        assert again.status == "pending" and again.tries == 0
        await fast.run_once()
    finally:
        await fast.stop()
    assert sink.types("/r")[-1] == "a"
    redone = await outbox.get_delivery(done.id)
    assert redone.status == "succeeded"
    assert redone.attempts == len(RETRY_SCHEDULE) + 2  # the log keeps every attempt
    assert len(await outbox.attempts(done.id)) == redone.attempts


# -- safety ----------------------------------------------------------------------------------


async def test_the_ssrf_guard_refuses_private_endpoints_without_the_allow_list(
        store: Store, vault: Vault, clock: Clock, sink: Sink) -> None:
    guarded = WebhookOutbox(store, vault, clock=clock)  # no allow-list
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.8/x", "http://169.254.169.254/",
                "http://[::1]/x", "http://2130706433/x", "http://metadata.google.internal/"):
        with pytest.raises(InvalidSubscription, match="SSRF"):
            await guarded.create_subscription(url, ["*"])

    # a name is checked when connecting: "localhost" resolves to loopback and is refused
    port = sink.url.rsplit(":", 1)[1]
    await guarded.create_subscription(f"http://localhost:{port}/x", ["*"])
    await publish(store, "e", {}, source="sync")
    w = DeliveryWorker(guarded, clock=clock, instant=False)
    try:
        await w.run_once()
    finally:
        await w.stop()
    assert sink.received == []
    [delivery] = await guarded.list_deliveries()
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error is not None and "SSRF guard" in delivery.last_error


async def test_an_endpoint_whose_name_does_not_resolve_fails_its_attempt_with_a_reason(
        store: Store, outbox: WebhookOutbox, clock: Clock) -> None:
    await outbox.create_subscription("http://hooks.nothing.invalid/x", ["*"])
    await publish(store, "e", {}, source="sync")
    w = DeliveryWorker(outbox, clock=clock, instant=False, resolver=NoInvalidNames({}))
    try:
        await w.run_once()
    finally:
        await w.stop()
    [delivery] = await outbox.list_deliveries()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    # in the call path's words: deliveries send through its HTTP core
    assert delivery.last_error == ("connection error: cannot resolve hooks.nothing.invalid "
                                   "(Name or service not known)")


async def test_deliveries_send_through_the_http_core_they_are_given_and_follow_no_redirect(
        store: Store, outbox: WebhookOutbox, clock: Clock) -> None:
    created = await outbox.create_subscription("https://hooks.example/in", ["*"])
    answers = iter([MockTransport.response(307, headers={"Location": "/elsewhere"}),
                    MockTransport.response(204)])
    transport = MockTransport(lambda request: next(answers))
    http = HttpCore(transport=transport)
    await publish(store, "order.paid", {"id": 1}, source="sync")
    w = DeliveryWorker(outbox, clock=clock, http=http)
    with instant_retries():
        try:
            assert await w.run_once() == 2  # the 307 failed the attempt; the retry went
        finally:
            await w.stop()
    assert not transport.closed  # the worker leaves a core it was given open
    first, second = transport.requests
    assert first.url == second.url == "https://hooks.example/in"
    Webhook(created.secret).verify(first.data, first.headers)
    [delivery] = await outbox.list_deliveries()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    [failed, done] = await outbox.attempts(delivery.id)
    assert (failed.status_code, failed.error, done.status_code) == (307, "HTTP 307", 204)


async def test_a_crash_between_dispatch_and_send_neither_loses_nor_duplicates_a_delivery(
        store_url: str, vault: Vault, clock: Clock, sink: Sink) -> None:
    async with await Store.open(store_url) as first:
        box = WebhookOutbox(first, vault, allow_networks=LOOPBACK, clock=clock)
        await box.create_subscription(sink.at("/x"), ["*"])
        await box.create_subscription(sink.at("/y"), ["*"])
        for n in range(5):
            await publish(first, f"e.{n}", {"n": n}, source="sync")
        assert await box.dispatch() == 5
        # the process dies here: deliveries exist, none was sent; this worker held a lease
        dead = DeliveryWorker(box, clock=clock, owner="dead-worker")
        assert await dead._claim((await box.list_subscriptions())[0].id, clock.now)

    async with await Store.open(store_url) as second:
        box = WebhookOutbox(second, vault, allow_networks=LOOPBACK, clock=clock)
        # dispatching again (the events would be re-read after a crash mid-dispatch) makes
        # no second delivery
        async with second.engine.begin() as conn:
            await conn.execute(text("UPDATE events SET dispatched_at = NULL"))
        assert await box.dispatch() == 5
        assert await box.count_deliveries() == 10
        w = DeliveryWorker(box, clock=clock, owner="new-worker")
        try:
            await w.run_once()
            assert len(sink.to("/y")) == 5  # the free endpoint goes at once
            assert sink.to("/x") == []  # the dead worker's lease still holds it
            clock.now += w.lease + 1
            await w.run_once()
        finally:
            await w.stop()
    for path in ("/x", "/y"):
        assert sink.types(path) == [f"e.{n}" for n in range(5)]  # each once, in order


async def test_secrets_never_appear_in_records_listings_or_logs(
        store: Store, outbox: WebhookOutbox, worker: DeliveryWorker, sink: Sink,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = await outbox.create_subscription(sink.at("/s"), ["*"])
    secret = created.secret
    key_part = secret.removeprefix("whsec_")
    assert secret.startswith("whsec_") and len(key_part) >= 32
    sink.answer("/s", (500, {}))
    await publish(store, "e", {"x": 1}, source="sync")
    await worker.run_once()

    texts = [repr(created), json.dumps([s.to_dict() for s in
                                        await outbox.list_subscriptions()]),
             json.dumps([d.to_dict() for d in await outbox.list_deliveries()]), caplog.text]
    for table in ("webhook_subscriptions", "webhook_deliveries", "webhook_attempts",
                  "events"):
        texts.append(repr(await rows(store, f"SELECT * FROM {table}")))
    dump = "\n".join(texts)
    assert secret not in dump and key_part not in dump
    # the stored secret is a vault token bound to its subscription
    [(token,)] = await rows(store, "SELECT secret FROM webhook_subscriptions")
    assert token.startswith("pwv1.")
    assert await outbox.secret_of(created.subscription.id) == secret


# -- a running worker, the API, the CLI ------------------------------------------------------


async def test_a_started_worker_delivers_a_published_event_without_being_driven(
        store: Store, outbox: WebhookOutbox, sink: Sink) -> None:
    await outbox.create_subscription(sink.at("/live"), ["*"])
    async with DeliveryWorker(outbox, poll_interval=3600):
        await publish(store, "live.event", {}, source="sync")  # wakes the worker
        await asyncio.wait_for(sink.arrived.wait(), BOUND)
    assert sink.types("/live") == ["live.event"]


async def test_the_api_manages_subscriptions_and_shows_the_delivery_log(
        tmp_path: Path, store_url: str, sink: Sink) -> None:
    import aiohttp

    settings = local_settings(tmp_path / "home", database_url=store_url)
    pw = Patchwire(settings)
    async with (serving(create_app(pw, engine=True)) as url,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as http):
        async with http.post(f"{url}/api/v1/subscriptions",
                             json={"url": sink.at("/api"), "event_types": ["order.*"]}) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
            assert r.headers["Location"].endswith(created["id"])
        assert created["secret"].startswith("whsec_")
        async with http.get(f"{url}/api/v1/subscriptions/{created['id']}") as r:
            shown = await r.json()
        assert "secret" not in shown and shown["event_types"] == ["order.*"]
        async with http.post(f"{url}/api/v1/subscriptions",
                             json={"url": "http://10.1.2.3/x", "event_types": ["*"]}) as r:
            assert r.status == 400 and r.content_type == "application/problem+json"
            assert "SSRF" in (await r.json())["detail"]
        async with http.get(f"{url}/api/v1/deliveries/nope") as r:
            assert r.status == 404 and r.content_type == "application/problem+json"

        await publish(pw.store, "order.created", {"id": 1}, source="sync")
        await asyncio.wait_for(sink.arrived.wait(), BOUND)
        Webhook(created["secret"]).verify(sink.received[0].body, sink.received[0].headers)
        for _ in range(100):  # the result is committed just after the answer
            async with http.get(f"{url}/api/v1/deliveries",
                                params={"subscription": created["id"]}) as r:
                log = await r.json()
            if log and log[0]["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        assert log[0]["status"] == "succeeded" and log[0]["last_status_code"] == 204
        async with http.get(f"{url}/api/v1/deliveries/{log[0]['id']}") as r:
            detail = await r.json()
        assert [a["outcome"] for a in detail["attempt_log"]] == ["succeeded"]
        async with http.post(f"{url}/api/v1/deliveries/{log[0]['id']}/redeliver") as r:
            assert r.status == 200 and (await r.json())["status"] == "pending"
        async with http.post(f"{url}/api/v1/subscriptions/{created['id']}/disable") as r:
            assert (await r.json())["status"] == "disabled"
        async with http.delete(f"{url}/api/v1/subscriptions/{created['id']}") as r:
            assert r.status == 204
        async with http.get(f"{url}/api/v1/subscriptions") as r:
            assert await r.json() == []


@pytest.mark.slow  # the patchwire command in subprocesses
async def test_the_cli_adds_lists_disables_and_removes_and_shows_the_secret_once(
        tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    added = await cli("subscriptions", "add", "https://example.com/hooks", "--events",
                      "order.*", "--events", "ticket.updated", "--json")
    assert added.code == 0, added
    created = added.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["event_types"] == ["order.*",
                                                                       "ticket.updated"]
    listed = await cli("subscriptions", "list")
    shown = await cli("subscriptions", "show", created["id"], "--json")
    disabled = await cli("subscriptions", "disable", created["id"])
    after = await cli("subscriptions", "show", created["id"], "--json")
    none = await cli("deliveries", "list")
    refused = await cli("subscriptions", "add", "http://192.168.1.1/x", "--events", "*")
    bad_redeliver = await cli("deliveries", "redeliver", "--failed")
    removed = await cli("subscriptions", "remove", created["id"])
    gone = await cli("subscriptions", "show", created["id"])
    assert listed.code == 0 and created["id"] in listed.out and "example.com" in listed.out
    assert shown.json()["status"] == "active"
    assert disabled.code == 0 and after.json()["status"] == "disabled"
    assert none.code == 0 and "no deliveries" in none.out
    assert refused.code == 1 and "SSRF" in refused.flat_err
    assert bad_redeliver.code == 2
    assert removed.code == 0 and gone.code == 1
    # shown once: in the add output and nowhere else
    later = "\n".join(r.out + r.err for r in cli.runs[1:])
    assert secret not in later
