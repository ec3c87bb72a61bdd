"""Flow conformance: every step kind, error handling and the shipped example flows behave
the same on both engines — the embedded one and Temporal (a dev server on 127.0.0.1, a
worker in this process).

Runs go through the real call path against the sandbox on loopback, in real time: waits
and approval timeouts are fractions of a second, every wait for a run is bounded.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from patchwire import Patchwire
from patchwire.config import load_settings
from patchwire.errors import ConfigError, RunStateError
from patchwire.flows import FlowEngine, FlowRegistry, RunRecord
from patchwire.flows.spec import FlowSpec
from patchwire.http import instant_retries
from patchwire.sandbox import Sandbox
from patchwire.store.tools import ToolRepository
from tests.support.flows import ON_ERROR, PARENT
from tests.support.flows import ORDER_FLOW as ORDER
from tests.support.sandboxes import connected
from tests.support.temporal import running_engine

BOUND = 30.0  # no run in these tests takes this long


def flow(text_: str) -> FlowSpec:
    return FlowSpec.model_validate(yaml.safe_load(text_))


@pytest.fixture(autouse=True)
def instant_backoff() -> Iterator[None]:
    with instant_retries():
        yield


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Patchwire]:
    async with connected(tmp_path / "home", sandbox, "shop_test_key_123") as opened:
        yield opened


#: the Temporal variant needs its dev server: slow, out of the quick loop
@pytest.fixture(params=["embedded", pytest.param(
    "temporal", marks=[pytest.mark.temporal, pytest.mark.slow])])
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_for(engine_kind: str, request: pytest.FixtureRequest,
               pw: Patchwire) -> Any:
    """``engine_for(flows)``: a started engine of the kind under test over ``flows``."""
    address = (request.getfixturevalue("temporal_address") if engine_kind == "temporal"
               else None)

    def make(flows: Mapping[str, FlowSpec], **options: Any,
             ) -> contextlib.AbstractAsyncContextManager[FlowEngine]:
        return running_engine(engine_kind, pw, flows, address, **options)

    return make


async def finished(engine: FlowEngine, run_id: str) -> RunRecord:
    return await engine.wait(run_id, max_wait=BOUND, until_waiting=False)


async def count_calls(pw: Patchwire, action: str) -> int:
    await pw.flush()
    return await pw.store.count_calls(action=action)


async def test_calls_and_transforms_give_the_output_and_record_each_step(
        engine_for: Any) -> None:
    async with engine_for({"order_summary": flow(ORDER)}) as eng:
        run = await finished(eng, await eng.start_run("order_summary", {"order_id": "42"}))
        steps = {s.key: s for s in await eng.steps(run.id)}
        listed = [r.id for r in await eng.list_runs(flow_id="order_summary")]
    assert run.status == "succeeded", run.error
    assert run.output["order"] == "42" and "@" in run.output["email"]
    assert list(steps) == ["order", "summary", "customer"]
    assert steps["order"].input == {"arguments": {"order_id": "42"}}
    assert steps["summary"].output["id"] == "42"
    assert listed == [run.id]  # the same runs API on both engines


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
      right: [{id: r, call: shop.get_order, args: {order_id: "'42'"}}]
  - id: skipped
    when: "$steps.n > 100"
    transform: "'never'"
output: "{'size': $steps.size, 'kind': $steps.kind, 'squares': $steps.squares, 'right': $steps.both.right.id}"
"""


async def test_if_switch_foreach_parallel_and_when_behave_alike(engine_for: Any) -> None:
    async with engine_for({"branches": flow(BRANCHES)}) as eng:
        big = await finished(eng, await eng.start_run("branches", {"n": 3}))
        small = await finished(eng, await eng.start_run("branches", {"n": 1}))
        keys = {s.key for s in await eng.steps(big.id)}
    assert big.status == "succeeded", big.error
    assert big.output == {"size": "big", "kind": "BIG", "right": "42", "squares": [
        {"i": 0, "sq": 1}, {"i": 1, "sq": 4}, {"i": 2, "sq": 9}]}
    assert small.output["size"] == "small" and small.output["kind"] == "small..."
    assert {"size.then.big", "squares[2].labelled", "both.right.r"} <= keys
    assert "skipped" not in keys


async def test_on_error_continues_falls_back_or_compensates_then_fails(
        engine_for: Any) -> None:
    async with engine_for({"on_error": flow(ON_ERROR)}) as eng:
        run = await finished(eng, await eng.start_run("on_error"))
        steps = {s.key: s for s in await eng.steps(run.id)}
    assert steps["tolerant"].status == "continued"
    assert (steps["rescued"].status, steps["rescued"].output) == (
        "fallback", "plan b after second")
    assert steps["undone.compensate.cleanup"].output == "cleaned"
    assert run.status == "failed" and run.error == {
        "code": "flow_failed", "message": "third", "step": "undone"}


FLAKY = """
id: flaky
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "'42'"}
    retry: {attempts: 3, backoff: 10ms, max_backoff: 20ms}
  - id: slow
    call: helpdesk.list_tickets
    args: {}
    timeout: 100ms
    on_error:
      fallback: [{id: timed_out, transform: "$error.code"}]
"""


async def test_transient_failures_use_the_steps_retries_and_timeouts_cut_a_step(
        engine_for: Any, sandbox: Sandbox, pw: Patchwire) -> None:
    sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(503,), seed=1)
    async with engine_for({"flaky": flow(FLAKY)}) as eng:
        failed = await finished(eng, await eng.start_run("flaky"))
        (step,) = [s for s in await eng.steps(failed.id) if s.key == "order"]
        sandbox.set_chaos("shop", error_rate=0.0)
        sandbox.set_chaos("helpdesk", latency_ms=2000)
        healed = await finished(eng, await eng.start_run("flaky"))
    assert failed.status == "failed"
    assert failed.error["code"] in ("upstream_error", "circuit_open")
    assert step.attempts == 3
    assert healed.status == "succeeded", healed.error
    assert healed.output == "timeout"


WAITING = """
id: waiting
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "'42'"}
  - id: pause
    wait: 300ms
  - id: after
    transform: "$steps.order.id"
"""


async def test_a_wait_suspends_the_run_and_it_resumes_without_repeating_steps(
        engine_for: Any, pw: Patchwire) -> None:
    async with engine_for({"waiting": flow(WAITING)}) as eng:
        run_id = await eng.start_run("waiting")
        first = await eng.wait(run_id, max_wait=BOUND, until_waiting=True)
        done = await finished(eng, run_id)
    assert first.status in ("waiting", "succeeded")
    assert done.status == "succeeded" and done.output == "42"
    assert await count_calls(pw, "shop.get_order") == 1


APPROVAL = """
id: approval
steps:
  - id: ask
    approve: "'Refund order ' & $input.order"
    timeout_after: 1h
  - id: after
    transform: "$steps.ask"
"""
SHORT_APPROVAL = """
id: short_approval
steps:
  - id: ask
    approve: "'Quick?'"
    timeout_after: 300ms
"""


async def pending_approvals(pw: Patchwire, eng: FlowEngine, *run_ids: str) -> dict[str, Any]:
    """Once the runs wait (their approvals are filed first), the pending approvals."""
    for run_id in run_ids:
        assert (await eng.wait(run_id, max_wait=BOUND, until_waiting=True)).status == "waiting"
    return {a.arguments["run_id"]: a for a in await ToolRepository(pw.store).list_approvals()
            if a.status == "pending"}


async def test_approvals_wait_for_a_person_deny_or_time_out(engine_for: Any,
                                                             pw: Patchwire) -> None:
    repo = ToolRepository(pw.store)
    flows = {"approval": flow(APPROVAL), "short_approval": flow(SHORT_APPROVAL)}
    async with engine_for(flows) as eng:
        yes = await eng.start_run("approval", {"order": "42"})
        no = await eng.start_run("approval", {"order": "43"})
        pending = await pending_approvals(pw, eng, yes, no)
        assert pending[yes].arguments["message"] == "Refund order 42"
        await repo.decide_approval(pending[yes].id, approved=True, decided_by="ana")
        await repo.decide_approval(pending[no].id, approved=False, decided_by="bo",
                                   reason="not eligible")
        yes_done, no_done = await finished(eng, yes), await finished(eng, no)
        late = await finished(eng, await eng.start_run("short_approval"))
    assert yes_done.status == "succeeded"
    assert yes_done.output == {"approved": True, "by": "ana", "reason": None}
    assert no_done.status == "failed" and "not eligible" in no_done.error["message"]
    assert late.status == "failed" and late.error["code"] == "approval_timeout"


CHILD = """
id: child
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "'42'"}
  - id: result
    transform: "$input.n + 1"
output: "{'result': $steps.result}"
"""


async def test_a_sub_flow_is_its_own_run_and_its_output_feeds_the_parent(
        engine_for: Any) -> None:
    async with engine_for({"parent": flow(PARENT), "child": flow(CHILD)}) as eng:
        run = await finished(eng, await eng.start_run("parent", {"n": 4}))
        children = await eng.list_runs(flow_id="child")
    assert run.status == "succeeded", run.error
    assert run.output == 10
    assert [c.parent_run_id for c in children] == [run.id]
    assert children[0].status == "succeeded"


LONG_WAIT = """
id: long_wait
steps:
  - {id: pause, wait: 1h}
"""


async def test_cancel_stops_a_waiting_run_and_refuses_a_finished_one(
        engine_for: Any) -> None:
    async with engine_for({"long_wait": flow(LONG_WAIT), "on_error": flow(ON_ERROR)}) as eng:
        run_id = await eng.start_run("long_wait")
        await eng.wait(run_id, max_wait=BOUND, until_waiting=True)
        cancelled = await eng.cancel(run_id, reason="changed my mind")
        ended = await finished(eng, await eng.start_run("on_error"))
        with pytest.raises(RunStateError):
            await eng.cancel(ended.id)
        again = await eng.get_run(run_id)
    assert cancelled.status == "cancelled"
    assert again.status == "cancelled" and again.error["message"] == "changed my mind"


FAILING = """
id: failing
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "$input.order_id"}
  - id: missing
    call: shop.get_order
    args: {order_id: "$input.missing_id"}
  - id: after
    transform: "'reached'"
"""


async def test_a_failed_run_retries_from_its_failed_step(engine_for: Any, sandbox: Sandbox,
                                                         pw: Patchwire) -> None:
    async with engine_for({"failing": flow(FAILING)}) as eng:
        run = await finished(eng, await eng.start_run(
            "failing", {"order_id": "42", "missing_id": "999999"}))
        assert run.status == "failed" and run.error["step"] == "missing"
        assert [r.id for r in await eng.list_runs(status="failed")] == [run.id]
        orders = sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
        orders["999999"] = {**orders["42"], "id": "999999"}
        retried = await eng.retry(run.id)
        done = await finished(eng, run.id)
    assert retried.attempt == 2
    assert done.status == "succeeded" and done.output == "reached"
    # the first step did not run again: one more get_order call, the retried step's
    assert await count_calls(pw, "shop.get_order") == 3


EMITTING = """
id: emitting
steps:
  - {id: note, emit: ticket.noted, data: "{'n': $input.n}"}
  - {id: boom, fail: "'no'", when: "$input.n > 1"}
"""


async def test_emit_steps_and_run_ends_write_events_for_subscribers(engine_for: Any,
                                                                    pw: Patchwire) -> None:
    async with engine_for({"emitting": flow(EMITTING)}) as eng:
        ok = await finished(eng, await eng.start_run("emitting", {"n": 1}))
        bad = await finished(eng, await eng.start_run("emitting", {"n": 2}))
    async with pw.store.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT type, run_id FROM events WHERE source <> 'connection' "
            "ORDER BY created_at"))).all()  # the setup's connection.created aside
    assert sorted((t, r) for t, r in rows) == sorted([
        ("ticket.noted", ok.id), ("run.succeeded", ok.id), ("ticket.noted", bad.id),
        ("run.failed", bad.id)])


async def test_one_idempotency_key_starts_one_run(engine_for: Any) -> None:
    async with engine_for({"order_summary": flow(ORDER)}) as eng:
        first = await eng.start_run("order_summary", {"order_id": "42"}, idempotency_key="k1")
        second = await eng.start_run("order_summary", {"order_id": "42"},
                                     idempotency_key="k1")
        await finished(eng, first)
        runs = await eng.list_runs(flow_id="order_summary")
    assert first == second and len(runs) == 1


async def test_the_shipped_example_flows_succeed(engine_for: Any, sandbox: Sandbox,
                                                 pw: Patchwire) -> None:
    registry = FlowRegistry.load((), builtins=True)
    customers = sandbox.state.apis["shop"].customers  # type: ignore[attr-defined]
    customer = next(iter(customers.values()))
    order_id = next(iter(sandbox.state.apis["shop"].orders))  # type: ignore[attr-defined]
    inputs = {
        "chat_to_ticket": {"email": customer["email"], "message": "My parcel is late"},
        "refund_to_ticket_comment": {"order_id": str(order_id), "reason": "damaged"},
        "overdue_invoice_reminders": {"overdue_days": 7},
    }
    async with engine_for(registry.as_mapping()) as eng:
        runs = {name: await finished(eng, await eng.start_run(name, value))
                for name, value in inputs.items()}
    for name, run in runs.items():
        assert run.status == "succeeded", (name, run.error)
    assert isinstance(runs["chat_to_ticket"].output["ticket_id"], int)


async def test_runs_started_through_the_api_show_in_the_runs_api_and_dashboard(
        engine_for: Any, pw: Patchwire) -> None:
    import aiohttp

    from patchwire.server import create_app
    from tests.support.servers import serving

    async with engine_for({"order_summary": flow(ORDER)}) as eng:
        app = create_app(pw, manage_lifecycle=False, engine=eng,
                         flows=FlowRegistry([flow(ORDER)]))
        async with serving(app) as url, aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/v1/flows/order_summary/runs", json={
                    "input": {"order_id": "42"}, "wait": True, "timeout": BOUND}) as resp:
                started = await resp.json()
            assert resp.status == 201, started
            async with http.get(f"{url}/api/v1/runs/{started['id']}") as resp:
                detail = await resp.json()
            async with http.get(f"{url}/api/v1/runs?flow=order_summary") as resp:
                listed = await resp.json()
            async with http.get(f"{url}/runs/{started['id']}") as resp:
                page = await resp.text()
    assert started["status"] == "succeeded" and started["output"]["order"] == "42"
    assert [s["key"] for s in detail["steps"]] == ["order", "summary", "customer"]
    assert [r["id"] for r in listed] == [started["id"]]
    assert resp.status == 200 and started["id"] in page and "customer" in page


@pytest.mark.parametrize(("environ", "complaint"), [
    ({"PATCHWIRE_ENGINE": "kubernetes"}, "engine must be 'embedded' or 'temporal'"),
    ({"PATCHWIRE_TEMPORAL_ACTIVITY_TIMEOUT": "soon"}, "temporal_activity_timeout"),
    ({"PATCHWIRE_TEMPORAL_ACTIVITY_TIMEOUT": "-5"}, "positive number of seconds"),
    ({"PATCHWIRE_TEMPORAL_ACTIVITY_TIMEOUT": "inf"}, "positive number of seconds"),
])
def test_engine_settings_that_cannot_work_are_refused_naming_the_setting(
        environ: dict[str, str], complaint: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_settings(environ=environ, toml_path=tmp_path / "none.toml")


def test_the_temporal_settings_reach_the_engine_options(tmp_path: Path) -> None:
    from patchwire.flows import TemporalOptions

    settings = load_settings(environ={
        "PATCHWIRE_ENGINE": "Temporal", "PATCHWIRE_TEMPORAL_ADDRESS": "10.0.0.5:7233",
        "PATCHWIRE_TEMPORAL_NAMESPACE": "prod", "PATCHWIRE_TEMPORAL_TASK_QUEUE": "flows",
        "PATCHWIRE_TEMPORAL_ACTIVITY_TIMEOUT": "45"}, toml_path=tmp_path / "none.toml")
    assert settings.engine == "temporal"
    assert TemporalOptions.from_settings(settings) == TemporalOptions(
        address="10.0.0.5:7233", namespace="prod", task_queue="flows", activity_timeout=45.0)
    assert TemporalOptions() == TemporalOptions.from_settings(
        load_settings(environ={}, toml_path=tmp_path / "none.toml"))


CAPPED = """
id: capped
concurrency: 1
steps:
  - {id: order, call: shop.get_order, args: {order_id: "'42'"}}
"""


async def test_a_flows_concurrency_cap_runs_its_runs_one_at_a_time(
        engine_for: Any, sandbox: Sandbox) -> None:
    sandbox.set_chaos("shop", latency_ms=40)  # runs long enough to overlap if let
    async with engine_for({"capped": flow(CAPPED)}) as eng:
        ids = [await eng.start_run("capped", {"n": n}) for n in range(4)]
        runs = [await finished(eng, run_id) for run_id in ids]
        calls = [next(s for s in await eng.steps(run.id) if s.key == "order")
                 for run in runs]
    assert [r.status for r in runs] == ["succeeded"] * 4, [r.error for r in runs]
    spans = sorted((s.started_at, s.finished_at or 0.0) for s in calls)
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert started >= ended, spans  # never two of its calls in flight together
