"""Runs started for an end user act for them: every call step goes through that end user's
connections only (a step naming another's fails as for a missing one, before any request),
their sub-flows and approvals are theirs, and the end user survives a crash and a replay.
Over REST an end-user token starts runs for its end user and sees, retries and cancels
those alone; another's run answers 404 like a missing one. On both engines (Temporal: slow)
and both stores."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from patchwire import Patchwire
from patchwire.errors import FlowInputError
from patchwire.flows import FlowEngine, RunRecord
from patchwire.flows.spec import FlowSpec
from patchwire.http import instant_retries
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store.tools import ToolRepository
from tests.support.api import Api, problem_of
from tests.support.cli import Cli
from tests.support.servers import serving
from tests.support.settings import local_settings
from tests.support.temporal import running_engine

BOUND = 30.0  # no run in these tests takes this long

FLOWS = {
    # no connection named: the end user's own (their only or default one)
    "my_order": """
        id: my_order
        steps:
          - id: order
            call: shop.get_order
            args: {order_id: "'42'"}
        output: "$steps.order.id"
    """,
    "named_order": """
        id: named_order
        input:
          type: object
          properties: {connection: {type: string}}
          required: [connection]
        steps:
          - id: order
            call: shop.get_order
            connection: "=$input.connection"
            args: {order_id: "'42'"}
        output: "$steps.order.id"
    """,
    "orders_twice": """
        id: orders_twice
        steps:
          - id: first
            call: shop.get_order
            args: {order_id: "'42'"}
          - id: second
            call: shop.get_order
            args: {order_id: "'42'"}
        output: "[$steps.first.id, $steps.second.id]"
    """,
    "parent": """
        id: parent
        steps:
          - id: child
            flow: my_order
          - id: done
            transform: "$steps.child"
    """,
    "ask": """
        id: ask
        steps:
          - id: confirm
            approve: "'Refund order 42?'"
            timeout_after: 2h
    """,
    "nap": """
        id: nap
        steps:
          - id: sleep
            wait: 1h
    """,
    "nightly": """
        id: nightly
        trigger:
          manual: false
          schedule: {cron: "0 3 * * *"}
        steps:
          - {id: noop, transform: "1"}
    """,
}


def specs(*names: str) -> dict[str, FlowSpec]:
    return {n: FlowSpec.model_validate(yaml.safe_load(textwrap.dedent(FLOWS[n])))
            for n in names}


@pytest.fixture(autouse=True)
def instant_backoff() -> Iterator[None]:
    with instant_retries():
        yield


async def add_connections(pw: Patchwire, sandbox: Sandbox, canary: str) -> None:
    """The operator's ``acme`` and one shop connection for each of ``u1`` and ``u2``."""
    values = {"sandbox_url": sandbox.url, "api_key": canary}
    await pw.add_connection("shop", "acme", values)
    for user in ("u1", "u2"):
        await pw.add_connection("shop", f"{user}-shop", values, end_user=user)


@pytest.fixture
async def pw(tmp_path: Path, store_url: str, sandbox: Sandbox,
             canary: str) -> AsyncIterator[Patchwire]:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as opened:
        await add_connections(opened, sandbox, canary)
        yield opened


#: the Temporal variant needs its dev server: slow, out of the quick loop
@pytest.fixture(params=["embedded", pytest.param(
    "temporal", marks=[pytest.mark.temporal, pytest.mark.slow])])
def engine_for(request: pytest.FixtureRequest, pw: Patchwire) -> Any:
    """``engine_for(flows)``: a started engine of the kind under test over ``flows``."""
    kind = str(request.param)
    address = request.getfixturevalue("temporal_address") if kind == "temporal" else None

    def make(flows: Mapping[str, FlowSpec],
             ) -> contextlib.AbstractAsyncContextManager[FlowEngine]:
        return running_engine(kind, pw, flows, address)

    return make


async def finished(engine: FlowEngine, run_id: str) -> RunRecord:
    return await engine.wait(run_id, max_wait=BOUND, until_waiting=False)


async def connections_called(pw: Patchwire) -> list[str | None]:
    """The connection of every call in the call log, oldest first."""
    return [c.connection for c in reversed(await pw.recent_calls())]


async def test_an_end_users_run_and_its_sub_flow_call_through_that_end_users_connection(
        engine_for: Any, pw: Patchwire) -> None:
    async with engine_for(specs("my_order", "parent")) as eng:
        run = await finished(eng, await eng.start_run("my_order", end_user="u1"))
        parent = await finished(eng, await eng.start_run("parent", end_user="u2"))
        [child] = await eng.list_runs(flow_id="my_order", end_user="u2")
        mine = {r.id for r in await eng.list_runs(end_user="u1")}
        theirs = {r.id for r in await eng.list_runs(end_user="u2")}
        everyone = {r.id for r in await eng.list_runs()}
    assert run.status == "succeeded", run.error
    assert (run.end_user, run.to_dict()["end_user"]) == ("u1", "u1")
    assert parent.status == "succeeded", parent.error
    assert (child.parent_run_id, child.end_user) == (parent.id, "u2")
    # each run reached the shop through its end user's connection, never acme or another's
    assert await connections_called(pw) == ["u1-shop", "u2-shop"]
    assert mine == {run.id} and theirs == {parent.id, child.id}
    assert everyone == mine | theirs  # the operator sees every run


async def test_a_step_naming_another_end_users_connection_fails_as_for_a_missing_one(
        engine_for: Any, pw: Patchwire, sandbox: Sandbox) -> None:
    async with engine_for(specs("named_order")) as eng:
        other = await finished(eng, await eng.start_run(
            "named_order", {"connection": "u2-shop"}, end_user="u1"))
        missing = await finished(eng, await eng.start_run(
            "named_order", {"connection": "no-such"}, end_user="u1"))
        sent = sandbox.stats.requests["shop"]
        # the operator's run may name any connection
        operator = await finished(eng, await eng.start_run(
            "named_order", {"connection": "u2-shop"}))
    assert (other.status, other.end_user) == ("failed", "u1")
    assert other.error["code"] == "unknown_connection"
    assert other.error["message"] == "no connection named 'u2-shop'"
    # word for word what a connection that does not exist gives: nothing tells them apart
    assert missing.error["message"] == other.error["message"].replace("u2-shop", "no-such")
    assert sent == 0  # neither reached the upstream
    assert operator.status == "succeeded", operator.error
    assert await connections_called(pw) == ["u2-shop"]


async def test_the_approval_of_an_end_users_run_is_that_end_users(
        engine_for: Any, pw: Patchwire) -> None:
    repo = ToolRepository(pw.store)
    async with engine_for(specs("ask")) as eng:
        run_id = await eng.start_run("ask", end_user="u1")
        waiting = await eng.wait(run_id, max_wait=BOUND)
        operators = await eng.start_run("ask")
        await eng.wait(operators, max_wait=BOUND)
        assert waiting.status == "waiting"
        [approval] = await repo.list_approvals(end_user="u1")
        assert approval.arguments["run_id"] == run_id and approval.end_user == "u1"
        assert await repo.list_approvals(end_user="u2") == []
        assert {a.end_user for a in await repo.list_approvals()} == {"u1", None}
        await repo.decide_approval(approval.id, approved=True, decided_by="end_user:u1")
        await eng.tick()
        done = await finished(eng, run_id)
    assert done.status == "succeeded", done.error
    assert done.output == {"approved": True, "by": "end_user:u1", "reason": None}


class Clock:
    """Wall-clock stand-in the test moves; a millisecond on per reading."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def embedded(pw: Patchwire, clock: Clock, **options: Any) -> FlowEngine:
    return FlowEngine(pw, specs("orders_twice", "my_order", "named_order"), clock=clock,
                      sleep=no_sleep, poll_interval=3600, **options)


async def test_a_run_resumed_after_a_crash_still_acts_for_its_end_user(pw: Patchwire) -> None:
    clock = Clock()
    crashed = embedded(pw, clock, lease=30.0)
    await crashed.start()
    # the engine dies with the second call made but its checkpoint not yet committed
    in_flight = asyncio.Event()
    enqueue = crashed.journal.enqueue

    def dying_enqueue(runs: Any = (), steps: Any = (), events: Any = ()) -> Any:
        if any(step[1] == "second" for step in steps):
            in_flight.set()
            return asyncio.get_running_loop().create_future()  # never committed
        return enqueue(runs, steps, events)

    crashed.journal.enqueue = dying_enqueue  # type: ignore[method-assign]
    run_id = await crashed.start_run("orders_twice", end_user="u1")
    await asyncio.wait_for(in_flight.wait(), BOUND)
    assert crashed._loop_task is not None
    crashed._loop_task.cancel()
    for task in list(crashed._tasks.values()):
        task.cancel()  # no release, no final write: as after SIGKILL
    await asyncio.sleep(0)

    successor = embedded(pw, clock, owner="elsewhere:1:x")
    async with successor:
        assert await successor.tick() == 0  # the lease still holds
        clock.now += 31
        assert await successor.tick() == 1
        done = await successor.wait(run_id, max_wait=BOUND)
    assert done.status == "succeeded", done.error
    assert done.end_user == "u1"
    # the first call, then the second twice (in flight at the crash, made again once):
    # every one through u1's connection
    assert await connections_called(pw) == ["u1-shop"] * 3


async def test_a_retried_run_keeps_its_end_user(pw: Patchwire) -> None:
    async with embedded(pw, Clock()) as eng:
        run_id = await eng.start_run("named_order", {"connection": "u2-shop"}, end_user="u1")
        failed = await eng.wait(run_id, max_wait=BOUND)
        await eng.retry(run_id)
        await eng.tick()
        again = await eng.wait(run_id, max_wait=BOUND)
    assert failed.status == again.status == "failed"
    assert again.attempt == 2 and again.end_user == "u1"
    assert again.error["message"] == "no connection named 'u2-shop'"
    assert await connections_called(pw) == []


async def test_an_idempotency_key_is_each_end_users_own(pw: Patchwire) -> None:
    async with embedded(pw, Clock()) as eng:
        first = await eng.start_run("my_order", idempotency_key="k1", end_user="u1")
        again = await eng.start_run("my_order", idempotency_key="k1", end_user="u1")
        # the same key from someone else starts their own run, not a hand-over of u1's
        others = await eng.start_run("my_order", idempotency_key="k1", end_user="u2")
        operators = await eng.start_run("my_order", idempotency_key="k1")
        records = {i: await eng.get_run(i) for i in (first, others, operators)}
    assert again == first
    assert len({first, others, operators}) == 3
    assert [r.end_user for r in records.values()] == ["u1", "u2", None]


@pytest.mark.parametrize("bad", ["", " u1", "u\x001", "x" * 201])
async def test_a_malformed_end_user_is_refused_before_a_run_exists(
        pw: Patchwire, bad: str) -> None:
    async with embedded(pw, Clock()) as eng:
        with pytest.raises(FlowInputError, match="the end user of a run of flow my_order"):
            await eng.start_run("my_order", end_user=bad)
        assert await eng.list_runs() == []


# -- over REST ------------------------------------------------------------------------------


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Api]:
    """The app running its engine over FLOWS, with acme, u1-shop and u2-shop."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, text in FLOWS.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              flow_paths=(folder,))
    async with Patchwire(settings) as setup:
        await add_connections(setup, sandbox, canary)
    async with (
        serving(create_app(Patchwire(settings), engine=True)) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as http,
    ):
        yield Api(url, http, sandbox, canary, settings)


async def token_of(api: Api, end_user: str) -> dict[str, str]:
    """Headers carrying a new end-user token of ``end_user``."""
    async with api.http.post(api.at(f"/api/v1/end-users/{end_user}/tokens")) as resp:
        assert resp.status == 201, await resp.text()
        token = (await resp.json())["token"]
    return {"Authorization": f"Bearer {token}"}


async def call(api: Api, method: str, path: str, status: int,
               headers: dict[str, str] | None = None, **kw: Any) -> Any:
    async with api.http.request(method, api.at("/api/v1" + path), headers=headers,
                                **kw) as resp:
        if status >= 400:
            return await problem_of(resp, status)
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_an_end_user_token_starts_runs_that_act_for_its_end_user(api: Api) -> None:
    u1 = await token_of(api, "u1")
    run = await call(api, "POST", "/flows/my_order/runs", 201, u1, json={"wait": True})
    assert (run["status"], run["end_user"], run["output"]) == ("succeeded", "u1", "42")
    # naming someone else is refused, not quietly replaced
    refused = await call(api, "POST", "/flows/my_order/runs", 422, u1,
                         json={"end_user": "u2"})
    assert refused["type"].endswith("/invalid_flow_input")
    assert "its own end user" in refused["detail"]
    # an operator starts a run for any end user
    theirs = await call(api, "POST", "/flows/my_order/runs", 201,
                        json={"wait": True, "end_user": "u2"})
    assert (theirs["status"], theirs["end_user"]) == ("succeeded", "u2")
    logged = await call(api, "GET", "/calls", 200)  # the call log, newest first
    assert [c["connection"] for c in reversed(logged)] == ["u1-shop", "u2-shop"]


async def test_an_end_user_token_sees_retries_and_cancels_its_own_runs_only(
        api: Api) -> None:
    u1, u2 = await token_of(api, "u1"), await token_of(api, "u2")
    failed = await call(api, "POST", "/flows/named_order/runs", 201, u1,
                        json={"wait": True, "input": {"connection": "u2-shop"}})
    napping = await call(api, "POST", "/flows/nap/runs", 202, u1, json={"wait": True})
    own = await call(api, "POST", "/flows/my_order/runs", 201, u2, json={"wait": True})
    assert failed["status"] == "failed" and napping["status"] == "waiting"

    nothing = await call(api, "GET", "/runs/no-such-run", 404, u2)
    for run in (failed, napping):
        for method, path in [("GET", f"/runs/{run['id']}"),
                             ("POST", f"/runs/{run['id']}/retry"),
                             ("POST", f"/runs/{run['id']}/cancel")]:
            body = await call(api, method, path, 404, u2)
            # as for a run that does not exist, and nothing of u1's in it
            assert body["detail"] == nothing["detail"].replace("no-such-run", run["id"])
            assert "u1" not in str(body)
    listed = await call(api, "GET", "/runs", 200, u2)
    assert [r["id"] for r in listed] == [own["id"]]
    assert await call(api, "GET", "/runs", 200, u2, params={"end_user": "u1"}) == []
    await call(api, "GET", "/runs", 404, u2, params={"before": failed["id"]})

    # u1 sees, retries and cancels its own
    shown = await call(api, "GET", f"/runs/{failed['id']}", 200, u1)
    assert shown["end_user"] == "u1" and [s["key"] for s in shown["steps"]] == ["order"]
    retried = await call(api, "POST", f"/runs/{failed['id']}/retry", 200, u1)
    assert retried["attempt"] == 2 and retried["end_user"] == "u1"
    cancelled = await call(api, "POST", f"/runs/{napping['id']}/cancel", 200, u1)
    assert cancelled["status"] == "cancelled"
    mine = {r["id"] for r in await call(api, "GET", "/runs", 200, u1)}
    assert mine == {failed["id"], napping["id"]}

    # the operator sees every run, and filters by end user
    everyone = {r["id"] for r in await call(api, "GET", "/runs", 200)}
    assert everyone == mine | {own["id"]}
    only_u2 = await call(api, "GET", "/runs", 200, params={"end_user": "u2"})
    assert [r["id"] for r in only_u2] == [own["id"]]


async def test_an_end_user_reads_the_flows_it_may_start_without_their_definitions(
        api: Api) -> None:
    u1 = await token_of(api, "u1")
    listed = {f["id"]: f for f in await call(api, "GET", "/flows", 200, u1)}
    assert "nightly" not in listed and {"my_order", "named_order"} <= set(listed)
    one = await call(api, "GET", "/flows/named_order", 200, u1)
    assert one["input_schema"]["required"] == ["connection"]
    assert "definition" not in one and "source" not in one
    await call(api, "GET", "/flows/nightly", 404, u1)
    await call(api, "POST", "/flows/nightly/runs", 404, u1, json={})
    # the operator still reads everything
    full = await call(api, "GET", "/flows/nightly", 200)
    assert full["definition"]["id"] == "nightly" and full["source"]
    # retrying every dead letter stays the operator's
    await call(api, "POST", "/runs/retry-failed", 404, u1)


# -- from the command line ------------------------------------------------------------------


@pytest.mark.slow  # the patchwire command in subprocesses
async def test_flows_run_and_runs_list_take_an_end_user(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    cli = Cli(tmp_path)
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "my_order.yaml").write_text(textwrap.dedent(FLOWS["my_order"]),
                                          encoding="utf-8")
    for name, user in (("acme", None), ("u1-shop", "u1"), ("u2-shop", "u2")):
        added = await cli("connection", "add", "shop", "--name", name,
                          *(["--end-user", user] if user else []),
                          "--set", f"sandbox_url={sandbox.url}",
                          "--set-env", "api_key=SHOP_KEY", env={"SHOP_KEY": canary})
        assert added.code == 0, added
    done = await cli("flow", "run", "my_order", "--end-user", "u2", "--wait", "--json")
    assert done.code == 0, done
    assert (done.json()["end_user"], done.json()["status"]) == ("u2", "succeeded")
    bad = await cli("flow", "run", "my_order", "--end-user", " u2", "--wait")
    assert bad.code == 1 and "end_user" in bad.flat_err, bad
    theirs = await cli("runs", "list", "--end-user", "u2", "--json")
    assert [r["id"] for r in theirs.json()] == [done.json()["id"]]
    assert (await cli("runs", "list", "--end-user", "u1", "--json")).json() == []
    table = await cli("runs", "list")
    assert "end user" in table.flat_out and "u2" in table.flat_out
    logged = await cli("calls", "--json")
    assert [c["connection"] for c in logged.json()] == ["u2-shop"], logged
