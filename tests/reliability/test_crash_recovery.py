"""Crash recovery: 1,000 runs in flight, the engine process SIGKILLed five times.

The sandbox runs in this process (with latency, so calls are in flight when the engine
dies) and counts effects: charges (payments honours ``Idempotency-Key``, which the engine
derives from run and step) and tickets (helpdesk has no idempotency key). The engine runs
in a subprocess (``engine_worker.py``) on the same store. The test queues 1,000 runs of
``charge -> pause (wait) -> note (transform) -> ticket``, starts the worker, and five times
waits until a (seeded) random number of further checkpoints is committed, SIGKILLs the
worker, notes from the store which step each unfinished run had in flight, and starts a
new worker (which reclaims the dead one's runs at once: its pid is gone). Then:

- every run succeeded, with every step checkpointed;
- exactly one charge per run (a replayed charge step sends the same key), and a run's
  charge request was sent more than once only if its charge step was in flight at a kill;
- every run opened at least one ticket, and more than one only if its ticket step was in
  flight at a kill (at most once more per such kill).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, func, select

from patchwire import Patchwire
from patchwire.flows import FlowEngine
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.sandbox._helpdesk import HelpdeskApi
from patchwire.sandbox._payments import PaymentsApi
from patchwire.store.models import FlowRunRow, FlowStepRow
from tests.support.engine_worker import FLOW_ID, STEP_ORDER, crash_flow
from tests.support.sandboxes import counting_sandbox
from tests.support.settings import local_settings

#: slow (1,000 runs through five engine kills): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

RUNS = 1000
KILLS = 5
SEED = 20_240_605
#: the engine runs every run at once: all 1,000 are in flight together
MAX_CONCURRENCY = 1000
#: bounds: a worker starting, progress before a kill, all runs finishing
READY_TIMEOUT_S = 30.0
PROGRESS_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 120.0
POLL_S = 0.02
ROOT = Path(__file__).resolve().parents[2]

_RUNS = cast(Table, FlowRunRow.__table__)
_STEPS = cast(Table, FlowStepRow.__table__)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, Counter[str]]]:
    async with counting_sandbox(seed=7, jitter_ms=120) as running:
        yield running


class Worker:
    """One engine process."""

    def __init__(self, proc: asyncio.subprocess.Process, owner: str) -> None:
        self.proc = proc
        self.owner = owner

    @classmethod
    async def start(cls, home: Path, database_url: str, log: Path) -> Worker:
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.engine_worker", "--home", str(home),
                "--database-url", database_url, "--max-concurrency", str(MAX_CONCURRENCY),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=err,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"the engine worker did not start; see {log}") from None
        text = line.decode().strip()
        assert text.startswith("engine ready "), f"{text!r}; see {log}"
        return cls(proc, text.split(" ", 2)[2])

    async def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        await self.proc.wait()  # reaped: its pid is gone, so its runs are free at once

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                await self.kill()


async def checkpoints(pw: Patchwire) -> int:
    async with pw.store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(_STEPS)) or 0)


async def finished(pw: Patchwire) -> Counter[str]:
    async with pw.store.engine.connect() as conn:
        rows = (await conn.execute(select(_RUNS.c.status, func.count())
                                   .group_by(_RUNS.c.status))).all()
    return Counter({status: n for status, n in rows})


async def in_flight(pw: Patchwire) -> dict[str, str]:
    """For each run the store says was running: the first step it had not checkpointed as
    done (the one in flight when its engine died)."""
    async with pw.store.engine.connect() as conn:
        running = [r[0] for r in (await conn.execute(
            select(_RUNS.c.id).where(_RUNS.c.status == "running"))).all()]
        done = (await conn.execute(select(_STEPS.c.run_id, _STEPS.c.key).where(
            _STEPS.c.status == "succeeded"))).all()
    completed: dict[str, set[str]] = {}
    for run_id, key in done:
        completed.setdefault(run_id, set()).add(key)
    flying = {}
    for run_id in running:
        pending = [k for k in STEP_ORDER if k not in completed.get(run_id, set())]
        if pending:
            flying[run_id] = pending[0]
    return flying


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], bound_s: float,
                     worker: Worker | None = None) -> None:
    deadline = time.monotonic() + bound_s
    while not await check():
        if worker is not None and worker.proc.returncode is not None:
            raise AssertionError(f"the engine worker exited ({worker.proc.returncode}) "
                                 f"while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def test_runs_survive_sigkill(database_url: str, sandbox: tuple[Sandbox, Counter[str]],
                                    tmp_path: Path) -> None:
    box, charge_requests = sandbox
    rng = random.Random(SEED)
    home = tmp_path / "home"
    log = tmp_path / "worker.log"
    began = time.monotonic()
    async with Patchwire(local_settings(home, database_url=database_url)) as pw:
        for api in ("payments", "helpdesk"):
            await pw.add_connection(api, api, {"sandbox_url": box.url,
                                               **SANDBOX_CREDENTIALS[api]})
        # an engine that is not started only queues runs; the workers run them
        queuer = FlowEngine(pw, {FLOW_ID: crash_flow()}, schedules=False)
        run_ids = [await queuer.start_run(FLOW_ID, {"n": n}) for n in range(RUNS)]
        assert (await finished(pw))["queued"] == RUNS

        total = RUNS * len(STEP_ORDER)
        # kill points: numbers of committed checkpoints, random over the whole workload
        points = sorted(rng.sample(range(total // 20, total * 9 // 10), KILLS))
        flying_at_kill: list[dict[str, str]] = []
        worker = await Worker.start(home, database_url, log)
        try:
            for point in points:
                async def reached(point: int = point) -> bool:
                    return await checkpoints(pw) >= point

                await wait_until(f"{point} checkpoints", reached, PROGRESS_TIMEOUT_S, worker)
                await worker.kill()
                flying_at_kill.append(await in_flight(pw))
                worker = await Worker.start(home, database_url, log)

            async def all_done() -> bool:
                states = await finished(pw)
                return states["succeeded"] + states["failed"] + states["cancelled"] == RUNS

            await wait_until("every run to finish", all_done, FINISH_TIMEOUT_S, worker)
        finally:
            await worker.stop()

        states = await finished(pw)
        assert states == Counter({"succeeded": RUNS}), (states, log.read_text()[-3000:])
        async with pw.store.engine.connect() as conn:
            step_states = Counter((await conn.execute(select(_STEPS.c.key, _STEPS.c.status)))
                                  .all())
        assert step_states == Counter({(k, "succeeded"): RUNS for k in STEP_ORDER})
    elapsed = time.monotonic() - began

    flown: dict[str, Counter[str]] = {"charge": Counter(), "ticket": Counter()}
    for kill in flying_at_kill:
        for run_id, step in kill.items():
            if step in flown:
                flown[step][run_id] += 1

    # charges: exactly one per run, whatever was in flight
    charges = Counter(c["description"].removeprefix("crash run ")
                      for c in cast(PaymentsApi, box.state.apis["payments"]).charges.values()
                      if (c["description"] or "").startswith("crash run "))
    assert set(charges) == set(run_ids)
    assert set(charges.values()) == {1}, "a charge was duplicated despite its idempotency key"
    # charge requests: once per run, again only for a charge step in flight at a kill
    requests = {run_id: charge_requests[f"{run_id}:charge"] for run_id in run_ids}
    assert sum(charge_requests.values()) == sum(requests.values()), "charges without our key"
    for run_id, sent in requests.items():
        assert 1 <= sent <= 1 + flown["charge"][run_id], (run_id, sent)

    # tickets (no idempotency key): at least one per run, more only after a kill in flight
    tickets = Counter(t["subject"].removeprefix("crash run ")
                      for t in cast(HelpdeskApi, box.state.apis["helpdesk"]).tickets.values()
                      if t["subject"].startswith("crash run "))
    assert set(tickets) == set(run_ids)
    for run_id, opened in tickets.items():
        assert opened <= 1 + flown["ticket"][run_id], (run_id, opened)
    duplicates = sum(tickets.values()) - RUNS
    assert duplicates <= KILLS * MAX_CONCURRENCY

    replays = sum(requests.values()) - RUNS
    print(f"\ncrash test ({database_url.split(':')[0]}): {RUNS} runs, {KILLS} SIGKILLs at "
          f"{points} checkpoints; in flight at each kill: "
          f"{[len(k) for k in flying_at_kill]} runs "
          f"(charge {[sum(1 for s in k.values() if s == 'charge') for k in flying_at_kill]}, "
          f"ticket {[sum(1 for s in k.values() if s == 'ticket') for k in flying_at_kill]}); "
          f"charge requests replayed {replays}, duplicate charges 0, duplicate tickets "
          f"{duplicates}; {elapsed:.1f} s")
    # the kills must have caught work in flight, or this proved nothing
    assert sum(len(k) for k in flying_at_kill) > 0
