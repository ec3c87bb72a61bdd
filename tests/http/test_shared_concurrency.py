"""Concurrency caps shared through the store: with ``shared_concurrency`` a connector's
``concurrency: N`` holds for every process using the store together, not for each.

The sandbox counts requests in flight on its side (from arrival, before its latency, to
the end of the handler); Patchwire instances with their own stores (and, in one test, real
processes) call it at once. Waiting for a slot is driven by a fake sleep on a fake clock
where a figure is asserted, so no test waits on real time for anything but requests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from sqlalchemy import text

from patchwire import Patchwire
from patchwire.config import Settings, load_settings
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import CallTimeoutError, ConfigError, StoreError
from patchwire.http import HttpCore
from patchwire.http._guard import SharedSlots
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.sandbox._chaos import ChaosCounters, ChaosSettings
from patchwire.sandbox._shop import ShopApi
from patchwire.store import Store
from patchwire.store._slots import SlotTable
from tests.support.clocks import FakeClock
from tests.support.servers import serve
from tests.support.settings import LOOPBACK, local_settings
from tests.support.upstream import Upstream, connector_yaml

#: bound on anything a test waits for (calls finishing, a request arriving)
WAIT_S = 30.0
#: bound on a worker process starting (imports, opening and migrating the store)
READY_S = 60.0
ROOT = Path(__file__).resolve().parents[2]

CAPPED = """
name: capped
base_url: "{sandbox_url}/shop"
settings:
  sandbox_url: {}
  api_key: {secret: true}
auth: {type: api_key, in: header, name: X-API-Key, value: "{api_key}"}
timeouts: {connect: 5, read: 20, total: 20}
retry: {attempts: 1}
concurrency: 2
actions:
  get_order:
    request: {path: /orders/42}
"""


def registry() -> ConnectorRegistry:
    return ConnectorRegistry([load_connector_text(CAPPED, "capped.yaml")])


@dataclass
class InFlight:
    """Requests for an order the sandbox is handling now, and the most at any moment."""

    now: int = 0
    most: int = 0
    seen: int = 0

    def enter(self) -> None:
        self.now += 1
        self.seen += 1
        self.most = max(self.most, self.now)

    def leave(self) -> None:
        self.now -= 1


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, InFlight]]:
    """The sandbox with latency on the shop (so calls overlap), counting orders in flight."""
    box = Sandbox(seed=11)
    flight = InFlight()
    chaos = box.state.chaos
    disrupt = chaos.disrupt

    # the latency is applied before the handler runs: count from the request's arrival
    async def arriving(request: web.Request, settings: ChaosSettings,
                       stats: ChaosCounters) -> web.StreamResponse | None:
        if request.path.startswith("/shop/orders/"):
            flight.enter()
        return await disrupt(request, settings, stats)

    shop = cast(ShopApi, box.state.apis["shop"])
    get_order = shop.get_order

    async def leaving(request: web.Request) -> web.StreamResponse:
        try:
            return await get_order(request)
        finally:
            flight.leave()

    chaos.disrupt = arriving  # type: ignore[method-assign]
    # routes are bound when the app is built (at start), from the instance's attribute
    shop.get_order = leaving  # type: ignore[method-assign]
    box.set_chaos("shop", latency_ms=40, jitter_ms=40)
    async with box:
        yield box, flight


async def add_shop(pw: Patchwire, box: Sandbox) -> None:
    await pw.add_connection("capped", "shop", {"sandbox_url": box.url,
                                               **SANDBOX_CREDENTIALS["shop"]})


async def slot_holders(store: Store, connector: str) -> dict[int, str | None]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            text("SELECT slot, holder FROM concurrency_slots WHERE connector = :c"),
            {"c": connector})).all()
    return {int(slot): holder for slot, holder in rows}


# -- the cap across processes -----------------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-process"])
async def test_two_instances_keep_a_cap_of_two_together_only_when_slots_are_shared(
    store_url: str, sandbox: tuple[Sandbox, InFlight], tmp_path: Path, shared: bool,
) -> None:
    box, flight = sandbox
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              shared_concurrency=shared)
    async with Patchwire(settings, connectors=registry()) as one, \
            Patchwire(settings, connectors=registry()) as two:
        await add_shop(one, box)
        calls = [pw.call("capped.get_order", connection="shop")
                 for pw in (one, two) for _ in range(6)]
        await asyncio.wait_for(asyncio.gather(*calls), WAIT_S)
        if shared:
            assert set((await slot_holders(one.store, "capped")).values()) == {None}
    assert flight.seen == 12 and flight.now == 0
    if shared:  # the two together hold the cap, and use it
        assert flight.most == 2
    else:  # each has its own
        assert 2 < flight.most <= 4


_WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from patchwire import Patchwire, Settings
    from patchwire.connectors import ConnectorRegistry, load_connector_text

    async def main(home: str, url: str, connector: str) -> None:
        # engine "temporal" with shared_concurrency unset: shared by default
        settings = Settings(home=Path(home), database_url=url, connector_paths=(),
                            allow_networks=("127.0.0.0/8",), engine="temporal")
        registry = ConnectorRegistry([load_connector_text(connector, "capped.yaml")])
        async with Patchwire(settings, connectors=registry) as pw:
            print("ready", flush=True)
            sys.stdin.readline()
            results = await asyncio.gather(
                *(pw.call("capped.get_order", connection="shop") for _ in range(8)))
        print(json.dumps(len(results)), flush=True)

    asyncio.run(main(*sys.argv[1:4]))
""")


@pytest.mark.slow  # two worker processes
async def test_two_worker_processes_on_the_temporal_engine_never_exceed_the_cap_together(
    store_url: str, sandbox: tuple[Sandbox, InFlight], tmp_path: Path,
) -> None:
    box, flight = sandbox
    home = tmp_path / "home"
    async with Patchwire(local_settings(home, database_url=store_url),
                         connectors=registry()) as pw:
        await add_shop(pw, box)
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WORKER, str(home), store_url, CAPPED, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), READY_S)
            assert line.strip() == b"ready"
        for p in procs:  # both start calling at once
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outputs = [await asyncio.wait_for(p.communicate(), WAIT_S) for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    assert [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs] == [8, 8]
    assert all(p.returncode == 0 for p in procs)
    assert flight.seen == 16
    assert flight.most == 2


async def test_concurrent_takes_from_two_stores_hand_out_each_slot_once(
    store_url: str,
) -> None:
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        tables = [SlotTable(one), SlotTable(two)]
        taken = await asyncio.wait_for(asyncio.gather(*(
            tables[i % 2].take_slot("shop", 3, f"h{i}", 1000.0, 1100.0) for i in range(20))),
            WAIT_S)
        held = await slot_holders(one, "shop")
        for table in tables:
            await table.close()
    assert sorted(s for s in taken if s is not None) == [0, 1, 2]
    assert sorted(h for h in held.values() if h) == sorted(
        f"h{i}" for i, s in enumerate(taken) if s is not None)


async def test_a_slot_whose_holder_died_is_taken_over_once_it_expires(store_url: str) -> None:
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        dead, alive = SlotTable(one), SlotTable(two)
        assert await dead.take_slot("shop", 2, "dead.0", 1000.0, 1040.0) == 0
        assert await dead.take_slot("shop", 2, "dead.1", 1000.0, 1050.0) == 1
        assert await alive.take_slot("shop", 2, "alive.0", 1039.9, 1080.0) is None
        assert await alive.take_slot("shop", 2, "alive.0", 1040.0, 1080.0) == 0
        # the dead holder's late release leaves the slot to the one that took it over
        await dead.release_slot("shop", 0, "dead.0")
        assert (await slot_holders(one, "shop"))[0] == "alive.0"
        assert await alive.take_slot("shop", 2, "alive.1", 1041.0, 1081.0) is None
        await alive.release_slot("shop", 0, "alive.0")
        assert await alive.take_slot("shop", 2, "alive.1", 1041.0, 1081.0) == 0
        for table in (dead, alive):
            await table.close()


async def test_a_lowered_cap_leaves_the_slots_above_it_unused(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        slots = SlotTable(store)
        assert [await slots.take_slot("shop", 3, f"h{i}", 1000.0, 1100.0)
                for i in range(3)] == [0, 1, 2]
        await slots.release_slot("shop", 2, "h2")
        assert await slots.take_slot("shop", 2, "h3", 1000.0, 1100.0) is None
        await slots.release_slot("shop", 0, "h0")
        assert await slots.take_slot("shop", 2, "h3", 1000.0, 1100.0) == 0
        await slots.close()


# -- the call path ----------------------------------------------------------------------------

@asynccontextmanager
async def capped_up(tmp_path: Path, app: web.Application, store_url: str, *,
                    http: HttpCore | None = None, extra: str = "concurrency: 2",
                    shared: bool = True) -> AsyncIterator[Patchwire]:
    """A Patchwire sharing its caps through ``store_url``, with connector ``up`` on ``app``
    (total timeout 5 s, three attempts)."""
    async with serve(app) as url:
        reg = ConnectorRegistry([load_connector_text(connector_yaml(extra), "up.yaml")])
        settings = local_settings(tmp_path / "home", database_url=store_url,
                                  shared_concurrency=shared)
        async with Patchwire(settings, connectors=reg, http=http) as pw:
            await pw.add_connection("up", "c1", {"url": url})
            yield pw


@asynccontextmanager
async def dead_holder(store_url: str, *, until: float) -> AsyncIterator[SlotTable]:
    """Another process that took both slots of ``up`` and died (they expire at ``until``)."""
    async with await Store.open(store_url) as store:
        slots = SlotTable(store)
        assert await slots.take_slot("up", 2, "dead.0", 1000.0, until) == 0
        assert await slots.take_slot("up", 2, "dead.1", 1000.0, until) == 1
        try:
            yield slots
        finally:
            await slots.close()


def fake_time(after: Callable[[int], Awaitable[None]] | None = None
              ) -> tuple[FakeClock, list[float], Callable[[float], Awaitable[None]]]:
    """A fake clock and a sleep that advances it, logging each delay; ``after(n)`` runs
    after the n-th sleep."""
    clock = FakeClock()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock.advance(seconds)
        if after is not None:
            await after(len(delays))

    return clock, delays, sleep


async def test_a_call_finding_every_slot_held_backs_off_and_times_out_without_a_request(
    store_url: str, tmp_path: Path,
) -> None:
    clock, delays, sleep = fake_time()
    upstream = Upstream()
    http = HttpCore(clock=clock, sleep=sleep, allow_networks=LOOPBACK)
    async with dead_holder(store_url, until=time.time() + 600), \
            capped_up(tmp_path, upstream.app(), store_url, http=http) as pw:
        with pytest.raises(CallTimeoutError, match="no concurrency slot of up") as info:
            await asyncio.wait_for(pw.call("up.get"), WAIT_S)
        (record,) = await pw.recent_calls()
    assert "all 2 are held" in str(info.value) and "no request was sent" in str(info.value)
    assert upstream.requests == []
    # capped exponential backoff, bounded by the total timeout (5 s)
    assert delays[:7] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.1])
    assert max(delays) == pytest.approx(0.1) and sum(delays) == pytest.approx(5.0)
    assert record.error_class == "timeout"
    assert record.rate_limit_wait_ms == pytest.approx(5000.0)


async def test_a_waiting_call_goes_once_another_process_releases_and_its_wait_is_recorded(
    store_url: str, tmp_path: Path,
) -> None:
    async with dead_holder(store_url, until=time.time() + 600) as other:

        async def release_on_third(n: int) -> None:
            if n == 3:
                await other.release_slot("up", 1, "dead.1")

        clock, delays, sleep = fake_time(release_on_third)
        http = HttpCore(clock=clock, sleep=sleep, allow_networks=LOOPBACK)
        async with capped_up(tmp_path, Upstream().app(), store_url, http=http) as pw:
            await asyncio.wait_for(pw.call("up.get"), WAIT_S)
            (record,) = await pw.recent_calls()
            holders = await slot_holders(pw.store, "up")
    assert len(delays) == 3
    assert record.status == "ok"
    assert record.rate_limit_wait_ms == pytest.approx((0.005 + 0.01 + 0.02) * 1000)
    assert holders == {0: "dead.0", 1: None}  # ours went back once the call was done


async def test_a_call_takes_over_a_slot_of_a_crashed_holder_once_it_expires(
    store_url: str, tmp_path: Path,
) -> None:
    http = HttpCore(allow_networks=LOOPBACK)
    async with dead_holder(store_url, until=2000.0), \
            capped_up(tmp_path, Upstream().app(), store_url, http=http) as pw:
        assert http.slots is not None
        http.slots.wall = FakeClock(2000.0)  # the holder died; its slots expired at 2000
        await asyncio.wait_for(pw.call("up.get"), WAIT_S)
        (record,) = await pw.recent_calls()
        holders = await slot_holders(pw.store, "up")
    assert record.status == "ok" and record.rate_limit_wait_ms == 0.0
    assert holders == {0: None, 1: "dead.1"}  # taken over, used and given back


async def test_a_cancelled_call_gives_its_slot_and_the_local_cap_back(
    store_url: str, tmp_path: Path,
) -> None:
    arrived, gate = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/thing", held)
    http = HttpCore(allow_networks=LOOPBACK)
    try:
        async with capped_up(tmp_path, app, store_url, http=http) as pw:
            call = asyncio.ensure_future(pw.call("up.get"))
            await asyncio.wait_for(arrived.wait(), WAIT_S)
            holder = (await slot_holders(pw.store, "up"))[0]
            assert http.slots is not None and holder is not None
            assert holder.startswith(http.slots.holder)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(call, WAIT_S)
            # given back before the cancelled call finished unwinding
            assert await slot_holders(pw.store, "up") == {0: None, 1: None}
            semaphore = http.guard(pw.connectors.get("up")).semaphore
            assert semaphore is not None and not semaphore.locked()
            # and the cap is whole again: two calls go at once
            gate.set()
            await asyncio.wait_for(asyncio.gather(pw.call("up.get"), pw.call("up.get")),
                                   WAIT_S)
    finally:
        gate.set()


async def test_a_call_cancelled_while_polling_for_a_slot_leaves_none_taken(
    store_url: str, tmp_path: Path,
) -> None:
    polling = asyncio.Event()
    stuck = asyncio.Event()  # never set: the poll stays in its sleep until cancelled

    async def sleep(seconds: float) -> None:
        polling.set()
        await asyncio.wait_for(stuck.wait(), WAIT_S)

    http = HttpCore(sleep=sleep, allow_networks=LOOPBACK)
    async with dead_holder(store_url, until=time.time() + 600), \
            capped_up(tmp_path, Upstream().app(), store_url, http=http) as pw:
        call = asyncio.ensure_future(pw.call("up.get"))
        await asyncio.wait_for(polling.wait(), WAIT_S)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, WAIT_S)
        assert await slot_holders(pw.store, "up") == {0: "dead.0", 1: "dead.1"}
        semaphore = http.guard(pw.connectors.get("up")).semaphore
        assert semaphore is not None and not semaphore.locked()


class GatedSource:
    """A slot source whose takes wait for the test; records releases."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.asked = asyncio.Event()
        self.released: list[tuple[str, int, str]] = []
        self.released_one = asyncio.Event()
        self.holders: list[str] = []

    async def take_slot(self, connector: str, cap: int, holder: str, now: float,
                        expires_at: float) -> int | None:
        self.holders.append(holder)
        self.asked.set()
        return await self.answer

    async def release_slot(self, connector: str, slot: int, holder: str) -> None:
        self.released.append((connector, slot, holder))
        self.released_one.set()


async def test_a_slot_taken_after_its_caller_was_cancelled_is_given_back() -> None:
    source = GatedSource()
    slots = SharedSlots(source, holder="proc")
    taking = asyncio.ensure_future(slots.try_take("shop", 2, 30.0))
    await asyncio.wait_for(source.asked.wait(), WAIT_S)
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    source.answer.set_result(1)  # the store took it all the same
    await asyncio.wait_for(source.released_one.wait(), WAIT_S)
    assert source.released == [("shop", 1, source.holders[0])]
    assert source.holders[0].startswith("proc.")


class FailingRelease(GatedSource):
    async def release_slot(self, connector: str, slot: int, holder: str) -> None:
        raise StoreError("the store is down")


async def test_a_release_the_store_refuses_does_not_fail_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FailingRelease()
    source.answer.set_result(0)
    slots = SharedSlots(source)
    held = await slots.try_take("shop", 2, 30.0)
    assert held is not None
    await slots.release(held)
    assert "frees itself at its expiry" in caplog.text


@pytest.mark.parametrize(("extra", "shared"), [("", True), ("concurrency: 2", False)],
                         ids=["uncapped", "not-shared"])
async def test_calls_without_a_cap_or_without_sharing_never_touch_the_slots(
    store_url: str, tmp_path: Path, extra: str, shared: bool,
) -> None:
    http = HttpCore(allow_networks=LOOPBACK)
    async with capped_up(tmp_path, Upstream().app(), store_url, http=http, extra=extra,
                         shared=shared) as pw:
        await asyncio.wait_for(pw.call("up.get"), WAIT_S)
        assert await slot_holders(pw.store, "up") == {}
        assert (http.slots is not None) == shared


# -- settings ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "env", "expected"), [
    ({}, {}, False),
    ({"engine": "temporal"}, {}, True),
    ({"engine": "temporal"}, {"PATCHWIRE_SHARED_CONCURRENCY": "0"}, False),
    ({}, {"PATCHWIRE_SHARED_CONCURRENCY": "1"}, True),
    ({}, {"PATCHWIRE_SHARED_CONCURRENCY": "true", "PATCHWIRE_ENGINE": "temporal"}, True),
    ({"shared_concurrency": False, "engine": "temporal"}, {}, False),
])
def test_caps_are_shared_by_default_on_the_temporal_engine_unless_the_setting_says(
    tmp_path: Path, values: dict[str, Any], env: dict[str, str], expected: bool,
) -> None:
    settings = load_settings(environ=env, toml_path=tmp_path / "none.toml", **values)
    assert settings.effective_shared_concurrency is expected


def test_shared_concurrency_comes_from_patchwire_toml_and_rejects_non_booleans(
    tmp_path: Path,
) -> None:
    toml = tmp_path / "patchwire.toml"
    toml.write_text('[patchwire]\nengine = "temporal"\nshared_concurrency = false\n')
    assert load_settings(environ={}, toml_path=toml).effective_shared_concurrency is False
    assert Settings(engine="temporal").effective_shared_concurrency is True
    assert Settings(engine="temporal").with_(engine="embedded").effective_shared_concurrency \
        is False
    with pytest.raises(ConfigError, match="shared_concurrency must be true or false"):
        load_settings(environ={"PATCHWIRE_SHARED_CONCURRENCY": "sometimes"},
                      toml_path=tmp_path / "none.toml")
