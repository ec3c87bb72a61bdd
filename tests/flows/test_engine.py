"""The embedded engine: every step kind, durability, approvals, schedules, versions.

Runs go through the real call path against the sandbox on loopback; time is a fake clock
the tests move, and the engine's backoff sleeps are instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchwire import Patchwire
from patchwire.errors import FlowInputError, RunStateError
from patchwire.flows import FlowEngine
from patchwire.flows.spec import FlowSpec
from patchwire.http import instant_retries
from patchwire.sandbox import Sandbox
from patchwire.store.tools import ToolRepository
from tests.support.flows import ON_ERROR, ORDER_FLOW, PARENT
from tests.support.sandboxes import connected

BOUND = 20.0  # no wait in these tests takes this long


class Clock:
    """Wall-clock stand-in: moved by the tests, and a millisecond on per reading, so events
    keep their order."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def flow(text: str) -> FlowSpec:
    return FlowSpec.model_validate(yaml.safe_load(text))


@pytest.fixture(autouse=True)
def instant_backoff() -> Iterator[None]:
    """The call path's own retries back off instantly (the switch made for tests)."""
    with instant_retries():
        yield


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox, store_url: str) -> AsyncIterator[Patchwire]:
    async with connected(tmp_path / "home", sandbox, "shop_test_key_123", store_url) as opened:
        yield opened


def engine(pw: Patchwire, flows: Mapping[str, FlowSpec], clock: Clock, **kw: Any) -> FlowEngine:
    return FlowEngine(pw, dict(flows), clock=clock, sleep=no_sleep, poll_interval=3600, **kw)


async def count_calls(pw: Patchwire, action: str) -> int:
    await pw.flush()
    return await pw.store.count_calls(action=action)


async def test_a_run_calls_transforms_and_records_every_steps_output(pw: Patchwire) -> None:
    async with engine(pw, {"order_summary": flow(ORDER_FLOW)}, Clock()) as eng:
        run = await eng.run("order_summary", {"order_id": "42"}, max_wait=BOUND)
        steps = await eng.steps(run.id)
    assert run.status == "succeeded", run.error
    assert run.output["order"] == "42" and "@" in run.output["email"]
    assert [(s.key, s.kind, s.status) for s in steps] == [
        ("order", "call", "succeeded"), ("summary", "transform", "succeeded"),
        ("customer", "call", "succeeded")]
    assert steps[1].output["id"] == "42"
    # every upstream request of the run is in the call log under the run
    assert await count_calls(pw, "shop.get_order") == 1


async def test_input_that_breaks_the_schema_is_refused_before_a_run_exists(
        pw: Patchwire) -> None:
    async with engine(pw, {"order_summary": flow(ORDER_FLOW)}, Clock()) as eng:
        with pytest.raises(FlowInputError) as caught:
            await eng.start_run("order_summary", {"order_id": 42})
        assert await eng.list_runs() == []
    assert [p.path for p in caught.value.problems] == ["$.order_id"]


BRANCHES = """
id: branches
steps:
  - id: n
    transform: "$input.n"
  - id: size
    if: "$steps.n > 2"
    then: [{id: big, transform: "'big'"}]
    else: [{id: small, transform: "'small'"}]
  - id: kind
    switch: "$steps.size"
    cases:
      big: [{id: shout, transform: "'BIG'"}]
    default: [{id: whisper, transform: "'small...'"}]
  - id: squares
    foreach: "[1..$steps.n]"
    concurrency: 2
    do:
      - {id: sq, transform: "$item * $item"}
      - {id: labelled, transform: "{'i': $index, 'sq': $steps.sq}"}
  - id: both
    parallel:
      left: [{id: l, transform: "'L'"}]
      right: [{id: r, transform: "'R'"}]
  - id: skipped
    when: "$steps.n > 100"
    transform: "'never'"
output: "{'size': $steps.size, 'kind': $steps.kind, 'squares': $steps.squares, 'both': $steps.both, 'skipped': $steps.skipped}"
"""


async def test_branches_loops_and_parallel_steps_give_their_outputs(pw: Patchwire) -> None:
    async with engine(pw, {"branches": flow(BRANCHES)}, Clock()) as eng:
        big = await eng.run("branches", {"n": 3}, max_wait=BOUND)
        small = await eng.run("branches", {"n": 1}, max_wait=BOUND)
        keys = [s.key for s in await eng.steps(big.id)]
    assert big.output == {"size": "big", "kind": "BIG",
                          "squares": [{"i": 0, "sq": 1}, {"i": 1, "sq": 4}, {"i": 2, "sq": 9}],
                          "both": {"left": "L", "right": "R"}}
    assert small.output["size"] == "small" and small.output["kind"] == "small..."
    assert {"size.then.big", "squares[2].sq", "squares[2].labelled", "both.left.l"} <= set(keys)
    assert "skipped" not in keys


FAILING = """
id: failing
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "$input.order_id"}
  - id: missing
    call: shop.get_order
    args: {order_id: "$input.missing_id"}
    retry: {attempts: 3, backoff: 10s}
  - id: after
    transform: "'reached'"
"""


async def test_a_failed_run_is_a_dead_letter_and_retries_from_its_failed_step(
        pw: Patchwire, sandbox: Sandbox) -> None:
    async with engine(pw, {"failing": flow(FAILING)}, Clock()) as eng:
        run = await eng.run("failing", {"order_id": "42", "missing_id": "999999"},
                            max_wait=BOUND)
        assert run.status == "failed" and run.dead_letter
        assert run.error["step"] == "missing" and run.error["code"] == "not_found"
        assert [r.id for r in await eng.list_runs(status="failed")] == [run.id]
        failed_step = next(s for s in await eng.steps(run.id) if s.key == "missing")
        # not_found is not transient: the step's own retries do not repeat it
        assert (failed_step.status, failed_step.attempts) == ("failed", 1)
        assert await count_calls(pw, "shop.get_order") == 2

        # the cause goes away (the order now exists): retry from the failed step
        orders = sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
        orders["999999"] = {**orders["42"], "id": "999999"}
        retried = await eng.retry(run.id)
        assert retried.status == "queued" and retried.attempt == 2
        await eng.tick()
        done = await eng.wait(run.id, max_wait=BOUND)
    assert done.status == "succeeded" and done.output == "reached"
    # the first step did not run again: one more get_order call, the retried step's
    assert await count_calls(pw, "shop.get_order") == 3
    with pytest.raises(RunStateError):
        await eng.retry(run.id)


async def test_transient_failures_are_retried_with_the_steps_policy(
        pw: Patchwire, sandbox: Sandbox) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    spec = flow("""
id: flaky
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "'42'"}
    retry: {attempts: 4, backoff: 2s, max_backoff: 3s}
""")
    sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(503,), seed=1)
    eng = FlowEngine(pw, {"flaky": spec}, clock=Clock(), sleep=sleep, poll_interval=3600)
    async with eng:
        run = await eng.run("flaky", max_wait=BOUND)
    assert run.status == "failed" and run.error["code"] in ("upstream_error", "circuit_open")
    (step,) = await eng.steps(run.id)
    assert step.attempts == 4 and len(slept) == 3
    assert all(0 <= s <= 3 for s in slept)


async def test_on_error_continues_falls_back_or_compensates_then_fails(pw: Patchwire) -> None:
    async with engine(pw, {"on_error": flow(ON_ERROR)}, Clock()) as eng:
        run = await eng.run("on_error", max_wait=BOUND)
        steps = {s.key: s for s in await eng.steps(run.id)}
    assert steps["tolerant"].status == "continued" and steps["tolerant"].output is None
    assert steps["rescued"].status == "fallback"
    assert steps["rescued"].output == "plan b after second"
    assert steps["undone.compensate.cleanup"].output == "cleaned"
    assert run.status == "failed" and run.error == {
        "code": "flow_failed", "message": "third", "step": "undone"}


WAITING = """
id: waiting
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "'42'"}
  - id: pause
    wait: 1h
  - id: after
    transform: "$steps.order.id"
"""


async def test_a_wait_releases_the_run_and_it_resumes_without_repeating_steps(
        pw: Patchwire) -> None:
    clock = Clock()
    async with engine(pw, {"waiting": flow(WAITING)}, clock) as eng:
        run = await eng.run("waiting", max_wait=BOUND)
        assert run.status == "waiting" and run.wake_at is not None
        assert 3599 < run.wake_at - clock.now <= 3600
        assert await eng.tick() == 0  # not due yet
        clock.now += 3600
        # This tick claims it, unless the engine's own loop, kicked when the run released
        # itself, ticked after the clock moved and took it first: either way it resumes.
        assert await eng.tick() in (0, 1)
        done = await eng.wait(run.id, max_wait=BOUND)
    assert done.status == "succeeded" and done.output == "42"
    assert await count_calls(pw, "shop.get_order") == 1


APPROVAL = """
id: approval
steps:
  - id: ask
    approve: "'Refund order ' & $input.order"
    timeout_after: 2h
  - id: after
    transform: "$steps.ask"
"""


async def test_an_approval_step_waits_for_a_person_and_records_who_decided(
        pw: Patchwire) -> None:
    clock = Clock()
    repo = ToolRepository(pw.store)
    async with engine(pw, {"approval": flow(APPROVAL)}, clock) as eng:
        yes = await eng.run("approval", {"order": "42"}, max_wait=BOUND)
        no = await eng.run("approval", {"order": "43"}, max_wait=BOUND)
        assert (yes.status, no.status) == ("waiting", "waiting")
        pending = {a.arguments["run_id"]: a for a in await repo.list_approvals()}
        assert pending[yes.id].arguments["message"] == "Refund order 42"
        assert pending[yes.id].kind == "flow" and pending[yes.id].subject == "approval.ask"
        await repo.decide_approval(pending[yes.id].id, approved=True, decided_by="ana")
        await repo.decide_approval(pending[no.id].id, approved=False, decided_by="bo",
                                   reason="not eligible")
        assert await eng.tick() == 2  # deciding woke both runs
        yes_done = await eng.wait(yes.id, max_wait=BOUND)
        no_done = await eng.wait(no.id, max_wait=BOUND)
        late = await eng.run("approval", {"order": "44"}, max_wait=BOUND)
        clock.now += 2 * 3600 + 1
        await eng.tick()
        late_done = await eng.wait(late.id, max_wait=BOUND)
    assert yes_done.status == "succeeded"
    assert yes_done.output == {"approved": True, "by": "ana", "reason": None}
    assert no_done.status == "failed" and no_done.error["code"] == "denied"
    assert "not eligible" in no_done.error["message"]
    assert late_done.status == "failed" and late_done.error["code"] == "approval_timeout"


CHILD = """
id: child
steps:
  - id: result
    transform: "$input.n + 1"
output: "{'result': $steps.result}"
"""


async def test_a_sub_flow_runs_as_its_own_run_and_its_output_feeds_the_parent(
        pw: Patchwire) -> None:
    async with engine(pw, {"parent": flow(PARENT), "child": flow(CHILD)}, Clock()) as eng:
        run_id = await eng.start_run("parent", {"n": 4})
        for _ in range(10):  # parent waits, child runs, child wakes parent: bounded ticks
            record = await eng.wait(run_id, max_wait=BOUND)
            if record.status == "succeeded":
                break
            await eng.tick()
        children = await eng.list_runs(flow_id="child")
    assert record.status == "succeeded" and record.output == 10
    assert [c.parent_run_id for c in children] == [run_id]


async def test_cancel_stops_a_waiting_run_and_refuses_a_finished_one(pw: Patchwire) -> None:
    async with engine(pw, {"waiting": flow(WAITING)}, Clock()) as eng:
        run = await eng.run("waiting", max_wait=BOUND)
        cancelled = await eng.cancel(run.id)
        assert cancelled.status == "cancelled"
        with pytest.raises(RunStateError):
            await eng.cancel(run.id)


async def test_a_crashed_engines_run_resumes_elsewhere_without_repeating_finished_steps(
        pw: Patchwire, sandbox: Sandbox) -> None:
    spec = flow("""
id: charge
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "'42'"}
  - id: charge
    call: payments.create_charge
    args: {amount: 1000, currency: "'usd'", customer: "'cus_0001'"}
  - id: done
    transform: "$steps.charge.id"
""")
    charges = sandbox.state.apis["payments"].charges  # type: ignore[attr-defined]
    before = len(charges)
    clock = Clock()
    crashed = engine(pw, {"charge": spec}, clock, lease=30.0)
    await crashed.start()
    # The engine "dies" after the charge was made upstream but before its checkpoint was
    # committed: the charge step was in flight.
    in_flight = asyncio.Event()
    enqueue = crashed.journal.enqueue

    def dying_enqueue(runs: Any = (), steps: Any = (), events: Any = ()) -> Any:
        if any(step[1] == "charge" for step in steps):
            in_flight.set()  # never committed: the process is gone before that
            return asyncio.get_running_loop().create_future()
        return enqueue(runs, steps, events)

    crashed.journal.enqueue = dying_enqueue  # type: ignore[method-assign]
    run_id = await crashed.start_run("charge")
    await asyncio.wait_for(in_flight.wait(), BOUND)
    assert len(charges) == before + 1
    assert crashed._loop_task is not None
    crashed._loop_task.cancel()
    for task in list(crashed._tasks.values()):
        task.cancel()  # no release, no final write: as after SIGKILL
    await asyncio.sleep(0)

    successor = engine(pw, {"charge": spec}, clock, owner="elsewhere:1:x")
    async with successor:
        assert await successor.tick() == 0  # the lease still holds
        clock.now += 31
        assert await successor.tick() == 1
        done = await successor.wait(run_id, max_wait=BOUND)
    assert done.status == "succeeded", done.error
    assert await count_calls(pw, "shop.get_order") == 1  # the finished step was not repeated
    assert await count_calls(pw, "payments.create_charge") == 2  # the in-flight one was, once
    # with the same idempotency key both times: one charge upstream
    assert len(charges) == before + 1 and done.output in charges


SCHEDULED = """
id: scheduled
trigger:
  schedule: {cron: "*/5 * * * *", timezone: Europe/Paris, missed: once}
steps:
  - {id: noop, transform: "$run.id"}
"""


async def test_a_schedule_fires_once_per_slot_across_restarts(pw: Patchwire) -> None:
    clock = Clock(1_800_000_000.0)  # a multiple of 300: on a slot
    flows = {"scheduled": flow(SCHEDULED)}
    async with engine(pw, flows, clock) as first:
        assert await first.fire_schedules(clock.now) == []  # a new schedule starts now
        clock.now += 300
        fired = await first.fire_schedules(clock.now)
        assert len(fired) == 1
    async with engine(pw, flows, clock) as restarted:
        assert await restarted.fire_schedules(clock.now) == []  # same slot: not again
        clock.now += 3600  # down for an hour: missed=once fires the latest slot once
        assert len(await restarted.fire_schedules(clock.now)) == 1
        runs = await restarted.list_runs(flow_id="scheduled")
    assert len(runs) == 2 and {r.trigger for r in runs} == {"schedule"}


async def test_a_run_keeps_the_flow_version_it_started_with(pw: Patchwire) -> None:
    clock = Clock()
    v1 = flow(WAITING)
    v2 = flow(WAITING.replace('transform: "$steps.order.id"', "transform: \"'v2'\"")
              .replace("id: waiting", "id: waiting\nversion: 2"))
    flows: dict[str, FlowSpec] = {"waiting": v1}
    async with engine(pw, flows, clock) as eng:
        old = await eng.run("waiting", max_wait=BOUND)
        flows["waiting"] = v2
    async with engine(pw, {"waiting": v2}, clock) as eng:
        new = await eng.run("waiting", max_wait=BOUND)
        clock.now += 3600
        await eng.tick()
        old_done = await eng.wait(old.id, max_wait=BOUND)
        new_done = await eng.wait(new.id, max_wait=BOUND)
    assert (old_done.flow_version, old_done.output) == (1, "42")
    assert (new_done.flow_version, new_done.output) == (2, "v2")


async def test_one_idempotency_key_starts_one_run(pw: Patchwire) -> None:
    async with engine(pw, {"branches": flow(BRANCHES)}, Clock()) as eng:
        first = await eng.start_run("branches", {"n": 1}, idempotency_key="evt_1")
        again = await eng.start_run("branches", {"n": 1}, idempotency_key="evt_1")
    assert first == again


async def test_old_finished_runs_are_purged_by_retention(pw: Patchwire) -> None:
    clock = Clock()
    spec = flow(BRANCHES.replace("id: branches", "id: branches\nretention: 1d"))
    async with engine(pw, {"branches": spec}, clock) as eng:
        old = await eng.run("branches", {"n": 1}, max_wait=BOUND)
        clock.now += 2 * 86400
        new = await eng.run("branches", {"n": 1}, max_wait=BOUND)
        assert await eng.purge() == 1
        assert [r.id for r in await eng.list_runs()] == [new.id]
        assert await eng.steps(old.id) == []


async def test_a_flow_concurrency_cap_holds_runs_back_until_a_slot_frees(
        pw: Patchwire) -> None:
    spec = flow(WAITING.replace("id: waiting", "id: waiting\nconcurrency: 1"))
    clock = Clock()
    async with engine(pw, {"waiting": spec}, clock) as eng:
        ids = [await eng.start_run("waiting") for _ in range(3)]
        records = [await eng.wait(i, max_wait=BOUND) for i in ids]
    # each run reached its wait (releasing its slot) before the next could start
    assert [r.status for r in records] == ["waiting"] * 3


async def test_a_flow_with_a_tool_trigger_is_a_tool_that_runs_it(pw: Patchwire) -> None:
    from patchwire.tools import ToolInvoker

    tool_flow = flow(ORDER_FLOW.replace(
        "id: order_summary", "id: order_summary\ntrigger: {tool: {name: summarize_order}}"))
    async with engine(pw, {"order_summary": tool_flow, "waiting": flow(WAITING.replace(
            "id: waiting", "id: waiting\ntrigger: {tool: true}"))}, Clock()) as eng:
        invoker = ToolInvoker(pw, engine=eng)
        catalog = await invoker.catalog()
        assert catalog.get("summarize_order").kind == "flow"
        assert catalog.get("summarize_order").input_schema["required"] == ["order_id"]
        ran = await invoker.invoke("summarize_order", {"order_id": "42"})
        wrong = await invoker.invoke("summarize_order", {"order_id": 42})
        waits = await invoker.invoke("flow_waiting", {})
    assert ran.status == "ok" and ran.data["order"] == "42"
    assert wrong.status == "invalid_arguments" and "order_id" in wrong.text
    assert waits.status == "ok" and waits.data["status"] == "waiting"


async def test_runs_that_end_and_emit_steps_write_events_for_subscribers(
        pw: Patchwire) -> None:
    from sqlalchemy import text

    spec = flow("""
id: emitting
steps:
  - {id: note, emit: ticket.noted, data: "{'n': $input.n}"}
  - {id: boom, fail: "'no'", when: "$input.n > 1"}
""")
    async with engine(pw, {"emitting": spec}, Clock()) as eng:
        ok = await eng.run("emitting", {"n": 1}, max_wait=BOUND)
        bad = await eng.run("emitting", {"n": 2}, max_wait=BOUND)
    async with pw.store.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT type, source, run_id FROM events WHERE source <> 'connection' "
            "ORDER BY created_at"))).all()  # the setup's connection.created aside
    assert [(t, s) for t, s, _ in rows] == [
        ("ticket.noted", "flow"), ("run.succeeded", "run"), ("ticket.noted", "flow"),
        ("run.failed", "run")]
    assert [r for _, _, r in rows] == [ok.id, ok.id, bad.id, bad.id]
