"""Processing the inbox, on SQLite and PostgreSQL: matching flows start once per event,
handlers run once, failures are retried then marked failed, and processing survives a
processor's death (the next one takes the events over, and one that lost its lease
cannot mark them)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import yaml
from sqlalchemy import Table, select

from patchwire import Patchwire
from patchwire.flows import FlowEngine, FlowRegistry, FlowSpec
from patchwire.ids import new_id
from patchwire.server import create_app
from patchwire.store.models import FlowRunRow
from patchwire.webhooks import SchemeSettings, sign
from patchwire.webhooks._inbox import Inbox, InboxEvent
from patchwire.webhooks._sources import WebhookSources
from tests.support.servers import serving
from tests.support.settings import local_settings

#: bound on anything this file waits for
WAIT_S = 20.0
_RUNS = cast(Table, FlowRunRow.__table__)

REFUND_FLOW = """
id: on_refund
trigger:
  manual: false
  webhook:
    source: shop
    filter: "type = 'order.refunded'"
    input: "{'order_id': $string(data.id), 'event': $event.event_id}"
input:
  type: object
  properties: {order_id: {type: string}, event: {type: string}}
  required: [order_id]
steps:
  - id: note
    transform: "'refund of ' & $input.order_id"
output: "$steps.note"
"""
ANY_SHOP_EVENT_FLOW = """
id: on_shop_event
trigger:
  webhook: {source: shop}
input: {type: object}
steps:
  - id: kind
    transform: "$input.type"
"""
OTHER_SOURCE_FLOW = """
id: on_billing
trigger:
  webhook: {source: billing}
steps:
  - id: noop
    transform: "1"
"""


def flows(*texts: str) -> dict[str, FlowSpec]:
    specs = [FlowSpec.model_validate(yaml.safe_load(t)) for t in texts]
    return {s.id: s for s in specs}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pw(tmp_path: Path, store_url: str) -> AsyncIterator[Patchwire]:
    async with Patchwire(local_settings(tmp_path / "home", database_url=store_url)) as opened:
        yield opened


def row(source: str, event_id: str | None, payload: Any, *, kind: str | None = None,
        now: float | None = None) -> tuple[Any, ...]:
    at = time.time() if now is None else now
    return (new_id(), source, event_id, kind, json.dumps(payload), "{}", at, "pending", 0, at)


async def runs_by_key(pw: Patchwire) -> dict[str, tuple[str, Any]]:
    async with pw.store.engine.connect() as conn:
        rows = (await conn.execute(select(_RUNS.c.idempotency_key, _RUNS.c.flow_id,
                                          _RUNS.c.input, _RUNS.c.trigger))).all()
    assert all(r[3] == "webhook" for r in rows)
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_matching_flows_start_once_per_event_with_the_mapped_input(
        pw: Patchwire) -> None:
    engine = FlowEngine(pw, flows(REFUND_FLOW, ANY_SHOP_EVENT_FLOW, OTHER_SOURCE_FLOW),
                        schedules=False)  # not started: its runs are queued for a worker
    inbox = Inbox(pw, engine)
    refund = {"type": "order.refunded", "data": {"id": 42}}
    ids = []
    for event_id, payload in (("e1", refund), ("e2", {"type": "order.created"}),
                              ("e3", {**refund, "data": {"id": 7}})):
        r = row("shop", event_id, payload, kind=payload["type"])
        assert await inbox.ingest(r)
        ids.append(r[0])
    assert not await inbox.ingest(row("shop", "e1", refund))  # the sender's retry
    assert await inbox.tick() == 3
    assert await inbox.tick() == 0
    runs = await runs_by_key(pw)
    assert runs == {
        f"hook:{ids[0]}:on_refund": ("on_refund", {"order_id": "42", "event": "e1"}),
        f"hook:{ids[2]}:on_refund": ("on_refund", {"order_id": "7", "event": "e3"}),
        f"hook:{ids[0]}:on_shop_event": ("on_shop_event", refund),
        f"hook:{ids[1]}:on_shop_event": ("on_shop_event", {"type": "order.created"}),
        f"hook:{ids[2]}:on_shop_event": ("on_shop_event", {**refund, "data": {"id": 7}}),
    }
    assert await inbox.count(status="processed") == 3
    # a replay processes the event again, but its flows do not start twice
    await inbox.replay(ids[0])
    assert await inbox.tick() == 1
    assert len(await runs_by_key(pw)) == 5
    await inbox.stop()


async def test_every_handler_is_called_once_per_event(pw: Patchwire) -> None:
    seen: dict[str, list[InboxEvent]] = {"a": [], "b": []}
    inbox = Inbox(pw, batch_size=4)  # several batches

    for name in seen:
        async def handler(event: InboxEvent, into: list[InboxEvent] = seen[name]) -> None:
            into.append(event)

        inbox.add_handler(handler)
    await inbox.start()
    try:
        ids = []
        for n in range(10):
            r = row("shop", f"evt_{n}", {"n": n}, kind="order.created")
            assert await inbox.ingest(r)
            ids.append(r[0])

        await inbox.wait_idle(WAIT_S)
        assert await inbox.count(status="processed") == 10
    finally:
        await inbox.stop()
    for events in seen.values():
        assert sorted(e.id for e in events) == sorted(ids)
        assert {e.payload["n"] for e in events} == set(range(10))
        assert all(e.source == "shop" and e.type == "order.created" for e in events)


async def test_a_failing_event_is_retried_with_backoff_then_failed_and_replay_revives_it(
        pw: Patchwire) -> None:
    clock = Clock()
    inbox = Inbox(pw, clock=clock, max_attempts=3, backoff=10.0)
    broken = True
    calls = 0

    async def handler(event: InboxEvent) -> None:
        nonlocal calls
        calls += 1
        if broken:
            raise RuntimeError("the CRM is down")

    inbox.add_handler(handler)
    r = row("shop", "evt", {"x": 1}, now=clock.now)
    await inbox.ingest(r)
    assert await inbox.tick() == 1
    first = await inbox.get_event(r[0])
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.error == "RuntimeError: the CRM is down"
    assert clock.now + 5 <= first.next_attempt_at <= clock.now + 10
    assert await inbox.tick() == 0  # not due yet
    clock.now += 10
    assert await inbox.tick() == 1
    second = await inbox.get_event(r[0])
    assert second.attempts == 2
    assert clock.now + 10 <= second.next_attempt_at <= clock.now + 20  # the backoff doubled
    clock.now += 20
    assert await inbox.tick() == 1
    failed = await inbox.get_event(r[0])
    assert (failed.status, failed.attempts, calls) == ("failed", 3, 3)
    clock.now += 10_000
    assert await inbox.tick() == 0  # failed for good
    broken = False
    await inbox.replay(r[0])
    assert await inbox.tick() == 1
    done = await inbox.get_event(r[0])
    assert (done.status, done.error, calls) == ("processed", None, 4)
    await inbox.stop()


async def test_events_left_by_a_dead_processor_are_processed_by_the_next_one(
        pw: Patchwire) -> None:
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await asyncio.wait_for(gone.wait(), WAIT_S)  # reaped: nobody has its pid now
    dead_owner = f"{socket.gethostname()}:{gone.pid}:crashed"
    crashed = Inbox(pw, owner=dead_owner)
    ids = []
    for n in range(6):
        r = row("shop", f"evt_{n}", {"n": n})
        await crashed.ingest(r)
        ids.append(r[0])
    claimed = await crashed._claim(time.time())  # claimed, then the process died
    assert len(claimed) == 6
    seen: list[str] = []

    async def handler(event: InboxEvent) -> None:
        seen.append(event.id)

    survivor = Inbox(pw)
    survivor.add_handler(handler)
    await survivor.start()  # frees the dead process's events at once (no lease wait)
    try:
        await survivor.wait_idle(WAIT_S)
        assert await survivor.count(status="processed") == 6
    finally:
        await survivor.stop()
    assert sorted(seen) == sorted(ids)


async def test_a_processor_that_lost_its_lease_cannot_mark_the_event(pw: Patchwire) -> None:
    clock = Clock()
    slow, fast = Inbox(pw, clock=clock, lease=30), Inbox(pw, clock=clock, lease=30)
    r = row("shop", "evt", {}, now=clock.now)
    await slow.ingest(r)
    [claimed] = await slow._claim(clock.now)
    assert await fast.tick() == 0  # leased
    clock.now += 31  # the slow processor's lease ran out: the event is due again
    assert await fast.tick() == 1
    await slow._settle([(claimed.id, 0, None)])  # too late: not its event any more
    assert (slow.processed, fast.processed) == (0, 1)
    event = await fast.get_event(r[0])
    assert (event.status, event.attempts) == ("processed", 1)


async def test_the_writer_drops_duplicates_inside_one_batch_but_never_events_without_id(
        pw: Patchwire) -> None:
    inbox = Inbox(pw)
    rows = [row("a", "same", {}), row("a", "same", {}), row("b", "same", {}),
            row("a", None, {}), row("a", None, {})]
    results = await asyncio.gather(*(inbox.ingest(r) for r in rows))  # one commit
    assert results == [True, False, True, True, True]
    assert inbox.writer.commits == 1
    assert await inbox.count() == 4
    await inbox.stop()


async def test_a_signed_event_posted_to_the_server_starts_its_flow_and_its_handlers_once(
        tmp_path: Path, store_url: str) -> None:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    async with Patchwire(settings) as setup:
        await WebhookSources(setup).add("shop", SchemeSettings(scheme="standard"), [secret])
    app_pw = Patchwire(settings)
    registry = FlowRegistry(flows(REFUND_FLOW).values())
    engine = FlowEngine(app_pw, registry.as_mapping(), schedules=False)
    app = create_app(app_pw, engine=engine, flows=registry)
    handled: list[InboxEvent] = []

    async def handler(event: InboxEvent) -> None:
        handled.append(event)

    cast(Inbox, app.state.inbox).add_handler(handler)
    async with (
        serving(app) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        body = json.dumps({"type": "order.refunded", "data": {"id": 5}}).encode()
        for _ in range(2):  # the second is the sender's retry: acknowledged, dropped
            headers = sign(SchemeSettings(scheme="standard"), secret, body,
                           timestamp=time.time(), event_id="msg_refund_5")
            async with http.post(f"{url}/hooks/shop", data=body, headers=headers) as r:
                assert r.status in (200, 202)

        inbox = cast(Inbox, app.state.inbox)
        await inbox.wait_idle(WAIT_S)
        [started] = await engine.list_runs(flow_id="on_refund")
        run = await engine.wait(started.id, max_wait=WAIT_S)
        assert (run.trigger, run.status) == ("webhook", "succeeded")
        assert run.output == "refund of 5"
        async with http.get(f"{url}/api/v1/webhooks/inbox") as r:
            [event] = await r.json()
        assert event["status"] == "processed"
        assert [(e.id, e.event_id, e.type, e.payload) for e in handled] == [
            (event["id"], "msg_refund_5", "order.refunded", json.loads(body))]
