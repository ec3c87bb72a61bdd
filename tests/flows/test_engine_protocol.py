"""The Engine protocol: the embedded and the Temporal engine both meet it, neither
subclassing the other; the factory builds the one the settings ask for; a one-off
command's engine claims only its own runs (an option, not an overridden private method)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from patchwire import ConfigError, Runtime
from patchwire.flows import (
    Engine,
    FlowEngine,
    FlowSpec,
    RemoteEngine,
    TemporalEngine,
    TemporalOptions,
    create_engine,
)
from tests.support.settings import local_settings

BOUND = 20.0

PARENT = """
id: parent
steps:
  - id: child
    flow: child
    input: "{}"
"""
CHILD = """
id: child
steps:
  - id: done
    transform: "'ok'"
"""


def flows() -> dict[str, FlowSpec]:
    specs = [FlowSpec.model_validate(yaml.safe_load(t)) for t in (PARENT, CHILD)]
    return {s.id: s for s in specs}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(local_settings(tmp_path)) as opened:
        yield opened


def test_both_engines_meet_the_protocol_and_neither_subclasses_the_other(
        runtime: Runtime) -> None:
    embedded = FlowEngine(runtime, flows())
    temporal = TemporalEngine(runtime, flows(), options=TemporalOptions(address="127.0.0.1:1"))

    assert isinstance(embedded, Engine) and isinstance(temporal, Engine)
    assert isinstance(temporal, RemoteEngine) and not isinstance(embedded, RemoteEngine)
    assert not issubclass(TemporalEngine, FlowEngine)
    assert not issubclass(FlowEngine, TemporalEngine)
    assert (embedded.remote, temporal.remote) == (False, True)


async def test_the_temporal_engine_reads_where_temporal_is_from_the_settings(
        tmp_path: Path) -> None:
    settings = local_settings(tmp_path, engine="temporal", temporal_address="10.0.0.9:7233",
                              temporal_task_queue="orders")
    async with Runtime(settings) as runtime:
        engine = create_engine(runtime, flows())

    assert isinstance(engine, TemporalEngine)
    assert (engine.options.address, engine.options.task_queue) == ("10.0.0.9:7233", "orders")


async def test_the_factory_builds_the_embedded_engine_by_default_and_refuses_others(
        tmp_path: Path) -> None:
    async with Runtime(local_settings(tmp_path)) as runtime:
        assert type(create_engine(runtime, flows(), schedules=False)) is FlowEngine
    async with Runtime(local_settings(tmp_path, engine="quantum")) as odd:
        with pytest.raises(ConfigError, match="got 'quantum'"):
            create_engine(odd, flows())


async def test_an_engine_told_which_runs_are_its_own_claims_only_those_and_their_sub_flows(
        runtime: Runtime) -> None:
    # queued by engines that are not started: for any engine to run
    queuer = FlowEngine(runtime, flows())
    mine = {await queuer.start_run("parent")}
    other = await queuer.start_run("child")

    async with FlowEngine(runtime, flows(), schedules=False, poll_interval=0.05,
                          claim_only=mine) as foreground:
        [parent] = mine
        done = await foreground.wait(parent, max_wait=BOUND, until_waiting=False)
        assert await foreground.tick() == 0  # nothing else is due for it

    assert done.status == "succeeded"
    assert (await queuer.get_run(other)).status == "queued"
    children = [r for r in await queuer.list_runs(flow_id="child") if r.id != other]
    assert [c.status for c in children] == ["succeeded"]  # its sub-flow ran here
