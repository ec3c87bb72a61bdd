"""Incremental sync: polls into records with change events, reconciliation, webhooks, the
records tool, schedules once per slot, and a cursor that survives a restart.

Each test runs on SQLite and PostgreSQL (``store_url``) against the sandbox shop on
loopback; time is a fake clock the test moves, so nothing waits on a real schedule.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from patchwire import Patchwire
from patchwire.errors import SpecError
from patchwire.sandbox import Sandbox
from patchwire.store.models import EventRow
from patchwire.sync import SyncEngine, SyncRegistry, SyncSpec, load_sync_text
from patchwire.tools import ToolInvoker
from tests.support.sandboxes import connected

#: 2025-03-01T00:00:00Z: after every seeded order's updated_at
T0 = 1740787200.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Event:
    """An inbox event as the inbox hands it to handlers (``InboxEvent``'s fields)."""

    id: str
    source: str
    event_id: str | None
    type: str | None
    payload: Any
    received_at: float


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox, canary: str,
             store_url: str) -> AsyncIterator[Patchwire]:
    async with connected(tmp_path / "home", sandbox, canary, store_url) as opened:
        yield opened


def example(sync_id: str, **changes: Any) -> SyncSpec:
    spec = SyncRegistry.load(builtins=True).get(sync_id)
    return SyncSpec.model_validate({**spec.model_dump(), **changes})


def shop(sandbox: Sandbox) -> Any:
    return sandbox.state.apis["shop"]


async def events(pw: Patchwire, type: str | None = None) -> list[dict[str, Any]]:
    table = EventRow.__table__
    stmt = select(table).where(table.c.source == "sync").order_by(table.c.created_at)
    if type is not None:
        stmt = stmt.where(table.c.type == type)
    async with pw.store.engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def calls(pw: Patchwire) -> int:
    await pw.flush()
    return await pw.store.count_calls()


async def a_pending_order(pw: Patchwire) -> str:
    page = await pw.call("shop.list_orders", {"status": "pending", "limit": 1})
    return str(page["data"][0]["id"])


# -- polls ------------------------------------------------------------------------------------


async def test_the_first_poll_copies_every_record_and_emits_record_created_for_each(
        pw: Patchwire, sandbox: Sandbox) -> None:
    engine = SyncEngine(pw, [example("shop_orders")], clock=Clock())
    [outcome] = await engine.run("shop_orders")
    assert outcome.status == "ok", outcome.error
    total = len(shop(sandbox).orders)
    assert (outcome.created, outcome.updated, outcome.deleted) == (total, 0, 0)
    assert outcome.cursor == max(o["updated_at"] for o in shop(sandbox).orders.values())
    created = await events(pw, "record.created")
    assert len(created) == total
    assert created[0]["data"]["model"] == "order" and created[0]["data"]["connection"] == "acme"
    records, _ = await engine.records.search("order", connection="acme", limit=1000)
    assert len(records) == total and all(r.version == 1 for r in records)


async def test_an_incremental_poll_picks_up_a_change_and_emits_record_updated_once(
        pw: Patchwire, sandbox: Sandbox) -> None:
    clock = Clock()
    engine = SyncEngine(pw, [example("shop_orders")], clock=clock)
    await engine.run("shop_orders")
    order_id = await a_pending_order(pw)
    await pw.call("shop.update_order_status", {"order_id": order_id, "status": "paid"},
                  connection="acme")
    clock.now += 300
    [outcome] = await engine.run("shop_orders")
    # only the change and the records at the old watermark were listed
    assert (outcome.created, outcome.updated) == (0, 1)
    assert outcome.unchanged < 5
    [updated] = await events(pw, "record.updated")
    assert updated["data"]["id"] == order_id and updated["data"]["version"] == 2
    assert updated["data"]["record"]["status"] == "paid"
    assert "status" in updated["data"]["changed"]
    record = await engine.records.get("order", "acme", order_id)
    assert record is not None and record.data["status"] == "paid" and record.version == 2

    clock.now += 300
    [again] = await engine.run("shop_orders")
    assert (again.created, again.updated) == (0, 0)
    assert len(await events(pw, "record.updated")) == 1


async def test_a_poll_that_finds_nothing_changed_emits_no_event(pw: Patchwire) -> None:
    engine = SyncEngine(pw, [example("shop_orders", incremental={"mode": "full"})],
                        clock=Clock())
    await engine.run("shop_orders")
    before = len(await events(pw))
    [outcome] = await engine.run("shop_orders")
    assert outcome.status == "ok" and outcome.unchanged == before
    assert (outcome.created, outcome.updated, outcome.deleted) == (0, 0, 0)
    assert len(await events(pw)) == before


async def test_a_poll_reads_at_most_max_pages_and_the_next_one_goes_on_from_there(
        pw: Patchwire, sandbox: Sandbox) -> None:
    spec = example("shop_orders", max_pages=1, args={"updated_since": "$since", "limit": 50})
    engine = SyncEngine(pw, [spec], clock=Clock())
    [first] = await engine.run("shop_orders")
    assert first.created == 50
    [second] = await engine.run("shop_orders")
    # the watermark moved past the first 50 changes (oldest first): the next 50 or so
    assert 40 <= second.created <= 50
    assert second.cursor > first.cursor


# -- reconciliation -------------------------------------------------------------------------


async def test_reconciliation_records_a_delete_the_incremental_poll_cannot_see(
        pw: Patchwire, sandbox: Sandbox) -> None:
    clock = Clock()
    engine = SyncEngine(pw, [example("shop_orders")], clock=clock)
    await engine.run("shop_orders")
    del shop(sandbox).orders["7"]
    clock.now += 300
    [poll] = await engine.run("shop_orders")
    assert poll.deleted == 0  # an incremental listing says nothing about what is gone
    clock.now += 300
    [full] = await engine.run("shop_orders", full=True)
    assert full.status == "ok" and full.deleted == 1
    [deleted] = await events(pw, "record.deleted")
    assert deleted["data"]["id"] == "7" and deleted["data"]["record"]["id"] == "7"
    live, _ = await engine.records.search("order", connection="acme", query="7", limit=1000)
    assert "7" not in {r.id for r in live}
    gone = await engine.records.get("order", "acme", "7")
    assert gone is not None and gone.deleted and gone.changed_by == "reconcile"
    [again] = await engine.run("shop_orders", full=True)
    assert again.deleted == 0 and len(await events(pw, "record.deleted")) == 1


# -- webhooks -------------------------------------------------------------------------------


async def test_a_webhook_event_updates_the_record_at_once_and_a_late_one_is_ignored(
        pw: Patchwire, sandbox: Sandbox) -> None:
    engine = SyncEngine(pw, [example("shop_orders")], clock=Clock())
    await engine.run("shop_orders")
    calls_before = await calls(pw)
    order = dict(shop(sandbox).orders["12"])
    refunded = {**order, "status": "refunded", "updated_at": "2030-01-01T00:00:00Z"}
    # the sandbox shop's body (Shopify-style): the order, plus the refund's reason
    event = Event("in_1", "shop", "evt_1", "order.refunded",
                  {"id": "evt_1", "type": "order.refunded", "created": 1,
                   "data": {**refunded, "reason": "damaged"}}, T0)
    await engine.handle_webhook_event(event)
    record = await engine.records.get("order", "acme", "12")
    assert record is not None and record.data == refunded  # the reason is not stored
    assert record.changed_by == "webhook"
    [updated] = await events(pw, "record.updated")
    assert updated["data"]["id"] == "12"

    await engine.handle_webhook_event(event)  # the inbox may hand it over twice
    stale = Event("in_0", "shop", "evt_0", "order.updated",
                  {"data": {**order, "status": "shipped",
                            "updated_at": "2029-01-01T00:00:00Z"}}, T0)
    await engine.handle_webhook_event(stale)
    other = Event("in_2", "payments", "evt_2", "order.refunded", {"id": "12"}, T0)
    await engine.handle_webhook_event(other)
    record = await engine.records.get("order", "acme", "12")
    assert record is not None and record.data["status"] == "refunded" and record.version == 2
    assert len(await events(pw, "record.updated")) == 1
    assert await calls(pw) == calls_before  # real time: no upstream call


async def test_a_webhook_mapped_to_a_delete_deletes_the_record(pw: Patchwire) -> None:
    spec = example("shop_orders", webhook=[{"source": "shop", "types": ["order.deleted"],
                                            "record": "{'id': order_id}", "delete": "true"}])
    engine = SyncEngine(pw, [spec], clock=Clock())
    await engine.run("shop_orders")
    await engine.handle_webhook_event(
        Event("in_3", "shop", None, "order.deleted", {"order_id": "3"}, T0))
    record = await engine.records.get("order", "acme", "3")
    assert record is not None and record.deleted and record.changed_by == "webhook"
    assert len(await events(pw, "record.deleted")) == 1


# -- the records tool -----------------------------------------------------------------------


async def test_the_search_tool_answers_from_synced_records_without_calling_upstream(
        pw: Patchwire, sandbox: Sandbox) -> None:
    spec = example("shop_customers")
    engine = SyncEngine(pw, [spec], clock=Clock())
    await engine.run("shop_customers")
    invoker = ToolInvoker(pw, connections=["acme"], syncs=[spec])
    tool = (await invoker.catalog()).get("search_synced_customers")
    assert tool.read_only and not tool.confirm
    customer = shop(sandbox).customers["cus_0007"]
    before = await calls(pw)

    result = await invoker.invoke("search_synced_customers",
                                  {"query": customer["name"], "country": customer["country"]})
    assert result.status == "ok", result.text
    assert customer["id"] in {r["id"] for r in result.data["results"]}
    assert set(result.data["results"][0]) == {"id", "name", "email", "company", "country"}
    assert result.data["synced_at"] is not None
    nothing = await invoker.invoke("search_synced_customers", {"query": "zzz-no-such-name"})
    assert nothing.status == "ok" and nothing.data["results"] == []
    bad = await invoker.invoke("search_synced_customers", {"limit": 0})
    assert bad.status == "invalid_arguments"
    assert await calls(pw) == before


async def test_a_search_tool_is_offered_only_for_connections_in_the_catalog_scope(
        pw: Patchwire, sandbox: Sandbox, canary: str) -> None:
    await pw.add_connection("shop", "globex", {"sandbox_url": sandbox.url, "api_key": canary})
    spec = example("shop_customers")
    everyone = await ToolInvoker(pw, syncs=[spec]).catalog()
    assert {"acme_search_synced_customers", "globex_search_synced_customers"} <= set(
        everyone.names())
    scoped = await ToolInvoker(pw, connections=["globex"], syncs=[spec]).catalog()
    assert scoped.get("search_synced_customers").connection == "globex"


# -- schedules, leases, restarts ------------------------------------------------------------


async def test_a_schedule_slot_runs_once_across_two_engines(pw: Patchwire) -> None:
    clock = Clock()
    spec = example("shop_orders")
    a = SyncEngine(pw, [spec], clock=clock, owner="a")
    b = SyncEngine(pw, [spec], clock=clock, owner="b")
    first = [*(await a.tick()), *(await b.tick())]
    assert [o.kind for o in first] == ["poll"]  # a new sync polls at once
    assert [*(await a.tick()), *(await b.tick())] == []
    clock.now += 299  # the */5 slot after T0 is T0 + 300
    assert await asyncio.gather(a.tick(), b.tick()) == [[], []]
    clock.now += 1
    ran = [o for batch in await asyncio.gather(a.tick(), b.tick()) for o in batch]
    assert [o.kind for o in ran] == ["poll"] and ran[0].status == "ok"
    clock.now += 86400  # a day later: many missed slots, one poll, and the reconciliation
    ran = [o for batch in await asyncio.gather(a.tick(), b.tick()) for o in batch]
    assert [o.kind for o in ran] == ["reconcile"]


async def test_a_poll_of_a_connection_being_polled_elsewhere_is_busy(pw: Patchwire) -> None:
    clock = Clock()
    spec = example("shop_orders")
    a = SyncEngine(pw, [spec], clock=clock, owner="a")
    b = SyncEngine(pw, [spec], clock=clock, owner="b")
    await a.records.ensure_state(spec.id, "acme", clock.now, None)
    assert await a.records.take_lease(spec.id, "acme", "a", clock.now, clock.now + 60)
    [busy] = await b.run("shop_orders")
    assert busy.status == "busy"
    clock.now += 61  # the lease of a poll that died expires
    [ok] = await b.run("shop_orders")
    assert ok.status == "ok"


async def test_a_restart_keeps_the_cursor_and_the_next_poll_resumes_from_it(
        tmp_path: Path, sandbox: Sandbox, canary: str, store_url: str) -> None:
    spec = example("shop_customers", args={"limit": 20})
    async with connected(tmp_path / "home", sandbox, canary, store_url) as pw:
        [first] = await SyncEngine(pw, [spec], clock=Clock()).run("shop_customers")
        assert (first.created, first.pages) == (50, 3)
        cursor = first.cursor
        assert cursor is not None
    customers = shop(sandbox).customers
    customers["cus_0051"] = {**customers["cus_0050"], "id": "cus_0051", "name": "Zed New"}
    settings = pw.settings
    async with Patchwire(settings) as again:
        engine = SyncEngine(again, [spec], clock=Clock(T0 + 60))
        [status] = await engine.status()
        assert status.cursor == cursor and status.records == 50
        [second] = await engine.run("shop_customers")
        # one page from the stored cursor: the last 10 customers and the new one
        assert (second.pages, second.created, second.unchanged) == (1, 1, 10)
        assert len(await events(again, "record.created")) == 51


# -- the format -----------------------------------------------------------------------------


def test_a_sync_document_with_mistakes_reports_each_with_its_line() -> None:
    text = """\
id: broken
model: order
action: shop.list_orders
args: {updated_since: "$since("}
schedule: {cron: "every minute"}
shedule: {cron: "* * * * *"}
"""
    with pytest.raises(SpecError) as caught:
        load_sync_text(text, "syncs/broken.yaml")
    shown = [str(p) for p in caught.value.problems]
    assert any("syncs/broken.yaml:4 at args.updated_since" in p for p in shown), shown
    assert any(":5 at schedule.cron" in p and "five fields" in p for p in shown), shown
    assert any(":6 at shedule" in p and "unknown field" in p for p in shown), shown


def test_the_shipped_examples_load_and_name_real_actions() -> None:
    from patchwire.connectors import ConnectorRegistry

    reg = SyncRegistry.load(builtins=True, strict=True)
    assert {"shop_customers", "shop_orders"} <= {s.id for s in reg}
    assert reg.check_references(ConnectorRegistry.load()) == []
    assert len(SyncRegistry.load()) == 0  # templates: not loaded unless asked for


# -- REST API and CLI -----------------------------------------------------------------------


async def test_the_api_runs_a_sync_and_pages_through_records_with_a_query(
        tmp_path: Path, sandbox: Sandbox, canary: str, store_url: str) -> None:
    import aiohttp

    from patchwire.server import create_app
    from tests.support.servers import serving
    from tests.support.settings import local_settings

    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme",
                                   {"sandbox_url": sandbox.url, "api_key": canary})
    app = create_app(Patchwire(settings), syncs=SyncRegistry([example("shop_customers")]))
    async with serving(app) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v1/syncs/shop_customers/run", json={}) as resp:
            assert resp.status == 200, await resp.text()
            [ran] = await resp.json()
        assert ran["created"] == 50 and ran["status"] == "ok"
        async with http.get(f"{url}/api/v1/syncs") as resp:
            [sync] = await resp.json()
        assert sync["id"] == "shop_customers" and sync["status"][0]["records"] == 50
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(10):  # bounded: 50 records, 20 a page
            params = {"model": "customer", "connection": "acme", "limit": "20"}
            if cursor:
                params["cursor"] = cursor
            async with http.get(f"{url}/api/v1/records", params=params) as resp:
                page = await resp.json()
            seen += [r["id"] for r in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 50
        name = shop(sandbox).customers["cus_0003"]["email"]
        async with http.get(f"{url}/api/v1/records",
                            params={"model": "customer", "q": name}) as resp:
            found = (await resp.json())["data"]
        assert [r["id"] for r in found] == ["cus_0003"]
        async with http.get(f"{url}/api/v1/records",
                            params={"model": "customer", "cursor": "nonsense"}) as resp:
            assert resp.status == 400
        async with http.get(f"{url}/api/v1/records/customer/acme/cus_9999") as resp:
            assert resp.status == 404


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_the_cli_lists_runs_and_shows_syncs_and_their_records(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    from tests.support.cli import Cli

    cli = Cli(tmp_path)
    added = await cli("connection", "add", "shop", "--name", "acme", "--set",
                      f"sandbox_url={sandbox.url}", "--set-env", "api_key=SHOP_KEY",
                      env={"SHOP_KEY": canary})
    assert added.code == 0, added
    listed = await cli("sync", "list", "--examples", "--json")
    assert {"shop_customers", "shop_orders"} <= {s["id"] for s in listed.json()}
    example_text = await cli("sync", "example", "shop_customers")
    (tmp_path / "syncs").mkdir()
    (tmp_path / "syncs" / "customers.yaml").write_text(example_text.out)
    assert (await cli("sync", "check")).code == 0
    ran = await cli("sync", "run", "shop_customers")
    assert ran.code == 0 and "50 created" in ran.flat_out, ran
    status = await cli("sync", "status", "--json")
    assert status.json()[0]["records"] == 50
    records = await cli("records", "list", "--model", "customer", "--query",
                        shop(sandbox).customers["cus_0009"]["email"], "--json")
    assert [r["id"] for r in records.json()] == ["cus_0009"], records
    unknown = await cli("sync", "run", "nope")
    assert unknown.code == 1 and "unknown sync" in unknown.flat_err


async def test_a_sandbox_refund_webhook_updates_the_synced_order_through_the_inbox(
        tmp_path: Path, sandbox: Sandbox, canary: str, store_url: str) -> None:
    """The real path: the sandbox shop signs an order.refunded webhook like Shopify, the
    receiver verifies it into the inbox, the inbox hands it to the sync."""
    import aiohttp

    from patchwire.sandbox import SANDBOX_CREDENTIALS
    from patchwire.server import create_app
    from patchwire.webhooks._sources import WebhookSources
    from tests.support.servers import serving
    from tests.support.settings import local_settings

    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme",
                                   {"sandbox_url": sandbox.url, "api_key": canary})
        await setup.add_connection("helpdesk", "support", {  # for the refund flow
            "sandbox_url": sandbox.url, **SANDBOX_CREDENTIALS["helpdesk"]})
        await WebhookSources(setup).add("shop", sandbox.webhook_scheme("shop"),
                                        [sandbox.webhook_secrets["shop"]])
        paid = await setup.call("shop.list_orders", {"status": "paid", "limit": 1})
    order_id = str(paid["data"][0]["id"])
    # polled once at start (a new sync polls at once), then not before next year: only the
    # webhook can bring the refund in during the test
    spec = example("shop_orders", schedule={"cron": "0 0 1 1 *"}, reconcile=None)
    # the shipped flows opted in (`patchwire init --examples`): one listens to refunds
    from patchwire.flows import FlowRegistry

    app = create_app(Patchwire(settings), engine=True, syncs=SyncRegistry([spec]),
                     flows=FlowRegistry.load(builtins=True))
    async with serving(app) as url, aiohttp.ClientSession() as http:
        async def record() -> dict[str, Any] | None:
            async with http.get(f"{url}/api/v1/records/order/acme/{order_id}") as resp:
                return await resp.json() if resp.status == 200 else None  # type: ignore[no-any-return]

        async with asyncio.timeout(20):
            while True:  # the initial poll
                if await record() is not None:
                    break
                await asyncio.sleep(0.05)
        sandbox.set_webhook_url(f"{url}/hooks/shop")
        async with Patchwire(settings) as caller:
            await caller.call("shop.update_order_status",
                              {"order_id": order_id, "status": "refunded"})
        async with asyncio.timeout(20):
            while True:
                current = await record()
                assert current is not None
                if current["data"]["status"] == "refunded":
                    break
                await asyncio.sleep(0.05)
        # the same event started the shipped flow whose webhook trigger matches it
        async with asyncio.timeout(20):
            while True:
                async with http.get(f"{url}/api/v1/runs",
                                    params={"flow": "refund_to_ticket_comment"}) as resp:
                    runs = await resp.json()
                if runs and runs[0]["status"] in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.05)
    assert current["changed_by"] == "webhook" and current["version"] == 2
    assert "reason" not in current["data"]
    assert len(runs) == 1 and runs[0]["trigger"] == "webhook"
    assert runs[0]["status"] == "succeeded", runs[0]["error"]
    assert runs[0]["input"] == {"order_id": order_id}
