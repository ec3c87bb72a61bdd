"""Temporal engine: a worker SIGKILLed mid-run; another worker finishes every run, and no
step that was complete is run again.

Two `patchwire worker --engine temporal` processes (the real CLI) share a task queue on a
Temporal dev server and one store. The test starts runs of ``charge -> pause (wait) ->
note (transform) -> ticket`` (the embedded crash test's flow), waits until a third of the
steps are checkpointed in the store, SIGKILLs one worker, and counts effects in the
sandbox (in this process): charge requests per Idempotency-Key and tickets per run.

A step the store shows complete was complete in Temporal's history (checkpoints travel
with later activities), so its effect must not repeat after the kill. Each run charges
exactly once (a charge step retried on the other worker sends the same key).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import yaml
from sqlalchemy import Table, func, select

from patchwire import Patchwire
from patchwire.flows import TemporalEngine, TemporalOptions
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.sandbox._helpdesk import HelpdeskApi
from patchwire.sandbox._payments import PaymentsApi
from patchwire.store.models import FlowRunRow, FlowStepRow
from tests.support.engine_worker import CRASH_FLOW, FLOW_ID, STEP_ORDER, crash_flow
from tests.support.sandboxes import counting_sandbox
from tests.support.settings import LOOPBACK, local_settings

#: slow (a Temporal dev server and a killed worker): out of the quick loop, `pytest -m "not slow"`
pytestmark = [pytest.mark.temporal, pytest.mark.slow]

RUNS = 60
READY_TIMEOUT_S = 60.0
PROGRESS_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 120.0
POLL_S = 0.05
#: a killed worker's activity is given to the other one after this
ACTIVITY_TIMEOUT_S = 3.0

_RUNS = cast(Table, FlowRunRow.__table__)
_STEPS = cast(Table, FlowStepRow.__table__)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, Counter[str]]]:
    async with counting_sandbox(seed=11, jitter_ms=80) as running:
        yield running


async def start_worker(home: Path, flows: Path, database_url: str, address: str,
                       queue: str, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PATCHWIRE_HOME": str(home), "PATCHWIRE_DATABASE_URL": database_url,
           "PATCHWIRE_FLOW_PATHS": str(flows), "PATCHWIRE_CONNECTOR_PATHS": "",
           "PATCHWIRE_SYNC_PATHS": str(home / "no-syncs"),
           "PATCHWIRE_ALLOW_NETWORKS": ",".join(LOOPBACK), "PATCHWIRE_ENGINE": "temporal",
           "PATCHWIRE_TEMPORAL_ADDRESS": address, "PATCHWIRE_TEMPORAL_TASK_QUEUE": queue,
           "PATCHWIRE_TEMPORAL_ACTIVITY_TIMEOUT": str(ACTIVITY_TIMEOUT_S),
           "PATCHWIRE_LOG_LEVEL": "INFO"}
    binary = str(Path(sys.executable).parent / "patchwire")
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            binary, "worker", stdout=out, stderr=asyncio.subprocess.PIPE, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            raise AssertionError("the worker did not start")
        try:
            line = await asyncio.wait_for(proc.stderr.readline(), remaining)
        except TimeoutError:
            continue
        if not line:
            raise AssertionError(f"the worker exited ({await proc.wait()})")
        if b"started (temporal engine)" in line:
            break
    # keep its stderr drained into the log
    async def drain() -> None:
        assert proc.stderr is not None
        with log.open("ab") as out:
            while line := await proc.stderr.readline():
                out.write(line)

    asyncio.get_running_loop().create_task(drain())
    return proc


async def complete_steps(pw: Patchwire) -> dict[str, set[str]]:
    async with pw.store.engine.connect() as conn:
        rows = (await conn.execute(select(_STEPS.c.run_id, _STEPS.c.key).where(
            _STEPS.c.status == "succeeded"))).all()
    done: dict[str, set[str]] = {}
    for run_id, key in rows:
        done.setdefault(run_id, set()).add(key)
    return done


async def statuses(pw: Patchwire) -> Counter[str]:
    async with pw.store.engine.connect() as conn:
        rows = (await conn.execute(select(_RUNS.c.status, func.count())
                                   .group_by(_RUNS.c.status))).all()
    return Counter({status: n for status, n in rows})


async def stuck(engine: TemporalEngine, pw: Patchwire) -> list[str]:
    """What Temporal says of runs still unfinished in the store (for the failure message)."""
    async with pw.store.engine.connect() as conn:
        ids = [r[0] for r in (await conn.execute(select(_RUNS.c.id).where(
            _RUNS.c.status != "succeeded"))).all()]
    told = []
    for run_id in ids[:3]:
        handle = engine.client.get_workflow_handle(run_id)
        described = await handle.describe()
        events = [e.event_type for e in (await handle.fetch_history()).events][-6:]
        pending = [(a.activity_type.name, a.state, a.attempt, a.last_failure.message,
                    a.last_worker_identity, a.scheduled_time.ToJsonString(),
                    a.last_started_time.ToJsonString(), a.next_attempt_schedule_time.ToJsonString())
                   for a in described.raw_description.pending_activities]
        told.append(f"{run_id}: {described.status} {events} {pending} now={time.time()}")
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    for kind in (TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW):
        got = await engine.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=engine.options.task_queue),
            task_queue_type=kind))
        told.append(f"pollers {kind}: {[p.identity for p in got.pollers]}")
    return told


def tickets_by_run(box: Sandbox) -> Counter[str]:
    helpdesk = cast(HelpdeskApi, box.state.apis["helpdesk"])
    return Counter(t["subject"].removeprefix("crash run ")
                   for t in helpdesk.tickets.values()
                   if str(t.get("subject", "")).startswith("crash run "))


async def test_a_killed_workers_runs_finish_on_another_without_repeating_complete_steps(
        temporal_address: str, sandbox: tuple[Sandbox, Counter[str]],
        tmp_path: Path) -> None:
    box, charge_requests = sandbox
    home, flows = tmp_path / "home", tmp_path / "flows"
    flows.mkdir()
    (flows / f"{FLOW_ID}.yaml").write_text(yaml.safe_dump(CRASH_FLOW))
    database_url = f"sqlite+aiosqlite:///{home / 'patchwire.db'}"
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    async with Patchwire(local_settings(home, database_url=database_url)) as pw:
        for api in ("payments", "helpdesk"):
            await pw.add_connection(api, api, {"sandbox_url": box.url,
                                               **SANDBOX_CREDENTIALS[api]})
        workers = [await start_worker(home, flows, database_url, temporal_address, queue,
                                      tmp_path / f"worker{i}.log") for i in range(2)]
        # the starter: runs go to Temporal, the workers execute them
        starter = TemporalEngine(pw, {FLOW_ID: crash_flow()}, schedules=False,
                                 poll_interval=0.1, options=TemporalOptions(
                                     address=temporal_address, task_queue=queue,
                                     activity_timeout=ACTIVITY_TIMEOUT_S))
        await starter.start()
        try:
            run_ids = [await starter.start_run(FLOW_ID, {"n": n}) for n in range(RUNS)]
            deadline = time.monotonic() + PROGRESS_TIMEOUT_S
            while sum(map(len, (await complete_steps(pw)).values())) < RUNS:
                assert time.monotonic() < deadline, "no progress before the kill"
                await asyncio.sleep(POLL_S)
            workers[0].send_signal(signal.SIGKILL)
            await workers[0].wait()
            # what the store showed complete at the kill, and the effects so far
            complete_at_kill = await complete_steps(pw)
            charges_at_kill = Counter(charge_requests)
            tickets_at_kill = tickets_by_run(box)
            deadline = time.monotonic() + FINISH_TIMEOUT_S
            while (await statuses(pw))["succeeded"] < RUNS:
                if time.monotonic() > deadline:
                    raise AssertionError(f"unfinished: {await statuses(pw)}; "
                                         f"{await stuck(starter, pw)}")
                assert workers[1].returncode is None, "the surviving worker exited"
                await asyncio.sleep(POLL_S)
            final = await complete_steps(pw)
            ended = await statuses(pw)
        finally:
            await starter.stop()
            for proc in workers:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), 30)
                    except TimeoutError:
                        proc.kill()
    tickets = tickets_by_run(box)
    charges = cast(PaymentsApi, box.state.apis["payments"]).charges
    charges_per_run = Counter(c.get("description", "").removeprefix("crash run ")
                              for c in charges.values())
    assert ended == Counter({"succeeded": RUNS})
    for run_id in run_ids:
        assert final[run_id] >= {"charge", "note", "ticket"}, run_id
        assert charges_per_run[run_id] == 1, run_id  # idempotency key across workers
        assert tickets[run_id] >= 1, run_id
        done = complete_at_kill.get(run_id, set())
        if "charge" in done:  # complete: never sent again
            assert charge_requests[f"{run_id}:charge"] == charges_at_kill[f"{run_id}:charge"]
        if "ticket" in done:
            assert tickets[run_id] == tickets_at_kill[run_id], run_id
    assert sum(1 for r in run_ids if STEP_ORDER[-1] in complete_at_kill.get(r, set())) < RUNS
