"""The runtime: the parts of one process, and the start and stop of its background
workers, which `serve`'s lifespan and `patchwire worker` both leave to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from patchwire import EngineUnavailable, Patchwire, PatchwireError, Runtime
from patchwire.flows import FlowEngine, FlowSpec, TemporalEngine, TemporalOptions
from patchwire.runtime import ExecutorWorker, TokenRefresh, background_workers
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.server import create_app
from tests.support.settings import local_settings

#: no wait in these tests takes this long
BOUND = 20.0


class Recorder:
    """A worker that writes its starts and stops to a shared log (and can refuse to
    start)."""

    def __init__(self, name: str, log: list[str], *, fails: bool = False) -> None:
        self.name = name
        self.log = log
        self.fails = fails

    async def start(self) -> Recorder:
        if self.fails:
            raise EngineUnavailable(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")
        return self

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(local_settings(tmp_path)) as opened:
        yield opened


async def test_workers_start_in_order_and_stop_in_reverse_each_once(runtime: Runtime) -> None:
    log: list[str] = []
    workers = [Recorder(n, log) for n in ("engine", "inbox", "syncs")]

    async with runtime.running(workers):
        assert log == ["start engine", "start inbox", "start syncs"]
    await runtime.close()  # nothing left to stop

    assert log == ["start engine", "start inbox", "start syncs",
                   "stop syncs", "stop inbox", "stop engine"]


async def test_closing_the_runtime_stops_the_workers_still_running_once(
        tmp_path: Path) -> None:
    log: list[str] = []
    runtime = await Runtime(local_settings(tmp_path)).open()
    running = runtime.running([Recorder("engine", log), Recorder("inbox", log)])
    await running.__aenter__()

    await runtime.close()
    await running.__aexit__(None, None, None)

    assert log == ["start engine", "start inbox", "stop inbox", "stop engine"]


async def test_a_worker_failing_to_start_stops_the_ones_started_and_raises(
        runtime: Runtime) -> None:
    log: list[str] = []
    workers = [Recorder("refresh", log), Recorder("engine", log),
               Recorder("inbox", log, fails=True), Recorder("syncs", log)]

    with pytest.raises(EngineUnavailable, match="inbox cannot start"):
        async with runtime.running(workers):
            pytest.fail("the block must not run")

    assert log == ["start refresh", "start engine", "stop engine", "stop refresh"]


async def test_a_worker_failing_to_stop_does_not_keep_the_others_running(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []

    class Stuck(Recorder):
        async def stop(self) -> None:
            raise RuntimeError("stuck")

    async with runtime.running([Recorder("engine", log), Stuck("inbox", log)]):
        pass

    assert log == ["start engine", "start inbox", "stop engine"]
    assert "stopping Stuck failed" in caplog.text


async def test_until_stopped_returns_when_told_to_stop(runtime: Runtime) -> None:
    stop = asyncio.Event()
    async with runtime.running([Recorder("engine", [])]):
        waiting = asyncio.ensure_future(runtime.until_stopped(stop))
        await asyncio.sleep(0)
        assert not waiting.done()
        stop.set()
        await asyncio.wait_for(waiting, BOUND)


async def test_until_stopped_raises_the_failure_of_a_worker_that_ended_on_its_own(
        runtime: Runtime) -> None:
    class DyingExecutor:
        shut_down = False

        async def run(self) -> None:
            raise EngineUnavailable("the Temporal worker lost its server")

        async def shutdown(self) -> None:
            self.shut_down = True

    executor = DyingExecutor()
    with pytest.raises(EngineUnavailable, match="lost its server"):
        async with runtime.running([ExecutorWorker(lambda: executor)]):
            await asyncio.wait_for(runtime.until_stopped(asyncio.Event()), BOUND)
    assert not executor.shut_down  # it had ended already


async def test_the_parts_are_refused_until_the_runtime_is_open(tmp_path: Path) -> None:
    runtime = Runtime(local_settings(tmp_path))

    with pytest.raises(PatchwireError, match="not open"):
        _ = runtime.store
    with pytest.raises(PatchwireError, match="not open"):
        _ = runtime.calls
    async with runtime:
        assert runtime.is_open and runtime.calls is runtime.calls
    assert not runtime.is_open


async def test_the_facade_sits_on_the_runtime_it_is_given(tmp_path: Path) -> None:
    runtime = Runtime(local_settings(tmp_path))

    async with Patchwire(runtime=runtime) as pw:
        assert pw.runtime is runtime and runtime.is_open
        assert pw.store is runtime.store and pw.calls is runtime.calls
        assert pw.settings is runtime.settings
    assert not runtime.is_open


UP = """
id: up
steps:
  - id: order
    call: shop.get_order
    args: {order_id: '"42"'}
output: "$steps.order.id"
"""


async def test_an_engine_runs_on_the_runtime_without_the_facade(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    flow = FlowSpec.model_validate(yaml.safe_load(UP))
    async with Patchwire(local_settings(tmp_path)) as setup:
        await setup.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                    **SANDBOX_CREDENTIALS["shop"],
                                                    "api_key": canary})
    async with Runtime(local_settings(tmp_path)) as runtime:
        engine = FlowEngine(runtime, {"up": flow}, poll_interval=3600)
        async with runtime.running([engine]):
            done = await engine.run("up", max_wait=BOUND)

    assert done.status == "succeeded" and done.output == "42"


async def test_the_background_work_starts_in_one_order_for_serve_and_worker(
        runtime: Runtime) -> None:
    engine = FlowEngine(runtime, {})
    refresh = TokenRefresh(runtime.refresh_due)
    remote = TemporalEngine(runtime, {}, options=TemporalOptions(address="127.0.0.1:1"))

    workers = background_workers(runtime, refresh=refresh, engine=engine,
                                 executor_concurrency=4, deliveries=True)
    on_temporal = background_workers(runtime, engine=remote, executor_concurrency=4)

    # the embedded engine executes its runs itself: no executor; a remote engine's is
    # built when started, after the engine connected
    assert [type(w).__name__ for w in workers] == ["TokenRefresh", "FlowEngine", "Deliveries"]
    assert [type(w).__name__ for w in on_temporal] == ["TemporalEngine", "ExecutorWorker"]


async def test_a_server_whose_engine_cannot_start_stops_what_its_lifespan_started(
        tmp_path: Path) -> None:
    pw = Patchwire(local_settings(tmp_path))
    engine = FlowEngine(pw.runtime, {})

    async def refuse() -> FlowEngine:
        raise EngineUnavailable("the store is gone")

    engine.start = refuse  # type: ignore[method-assign]
    app = create_app(pw, engine=engine, background_refresh=3600)

    with pytest.raises(EngineUnavailable, match="the store is gone"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not serve")

    refresh = pw.start_background_refresh()  # a new one: the lifespan's was stopped
    assert not pw.runtime.is_open  # the lifespan closed what it opened
    refresh.cancel()


@pytest.mark.slow  # the Temporal dev server
@pytest.mark.temporal
async def test_a_worker_on_temporal_runs_a_flow_with_the_executor_it_built_once_connected(
        tmp_path: Path, temporal_address: str) -> None:
    flow = FlowSpec.model_validate(yaml.safe_load(LOCAL))
    options = TemporalOptions(address=temporal_address, task_queue=f"rt-{tmp_path.name}")
    async with Runtime(local_settings(tmp_path)) as runtime:
        engine = TemporalEngine(runtime, {"local": flow}, options=options, poll_interval=0.05)
        workers = background_workers(runtime, engine=engine, executor_concurrency=4)
        async with runtime.running(workers):
            done = await engine.run("local", max_wait=BOUND)
            finished = await engine.wait(done.id, max_wait=BOUND, until_waiting=False)

    assert finished.status == "succeeded" and finished.output == "done"


LOCAL = """
id: local
steps:
  - id: only
    transform: "'done'"
output: "$steps.only"
"""
