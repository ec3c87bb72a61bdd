"""The ``Engine`` protocol: what the API, the CLI, the inbox, tools and the runtime use of
a flow engine, met by the embedded engine (``_engine.py``) and the Temporal one
(``_temporal.py``) alike, neither subclassing the other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, Self, runtime_checkable

from patchwire.flows._run_store import RunStore
from patchwire.flows._runs import RunRecord, StepRecord
from patchwire.flows.spec import FlowSpec
from patchwire.ports import HasCalls, HasSettings, HasStore

__all__ = ["Engine", "Executor", "FlowHost", "RemoteEngine"]


class FlowHost(HasCalls, HasStore, Protocol):
    """What an engine is given: the call path for its steps' calls and the store its runs
    live in (the ``Runtime`` or the ``Patchwire`` facade provide both)."""


class ConfiguredFlowHost(FlowHost, HasSettings, Protocol):
    """A host whose settings choose the engine (``create_engine``)."""


@runtime_checkable
class Engine(Protocol):
    """A flow engine: starts runs and answers for them. ``start()`` it to run flows (and
    for a remote engine, to reach where they run); not started, it reads and changes run
    rows, and the runs it starts are queued for an engine that runs them."""

    #: who holds the leases of the runs it executes
    @property
    def owner(self) -> str: ...

    #: runs execute elsewhere (Temporal workers): start() connects, even where this
    #: process runs no flows itself
    @property
    def remote(self) -> bool: ...

    @property
    def poll_interval(self) -> float: ...

    #: the engine's clock (epoch seconds)
    @property
    def clock(self) -> Callable[[], float]: ...

    #: its runs in the store (what both engines share: lookups, listings, versions)
    @property
    def runs(self) -> RunStore: ...

    async def start(self) -> Self: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def flows(self) -> list[FlowSpec]: ...

    def flow(self, flow_id: str) -> FlowSpec: ...

    def use_flows(self, flows: Mapping[str, FlowSpec] | Any) -> None: ...

    async def start_run(self, flow_id: str, input: Any = None, *, trigger: str = "manual",
                        idempotency_key: str | None = None, parent_run_id: str | None = None,
                        parent_step: str | None = None, end_user: str | None = None) -> str:
        """Start a run; its id. ``end_user``: the run acts for that end user — every call
        step goes through their connections only (their default one when the step names
        none), and its sub-flow runs act for them too. None: an operator's run."""
        ...

    async def run(self, flow_id: str, input: Any = None, *, max_wait: float | None = None,
                  **options: Any) -> RunRecord: ...

    async def wait(self, run_id: str, *, max_wait: float | None = None,
                   until_waiting: bool = True) -> RunRecord: ...

    async def get_run(self, run_id: str) -> RunRecord: ...

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        since: float | None = None, until: float | None = None,
                        before: str | None = None, limit: int = 100,
                        end_user: str | None = None) -> list[RunRecord]: ...

    async def steps(self, run_id: str) -> list[StepRecord]: ...

    async def cancel(self, run_id: str, *, reason: str = "cancelled") -> RunRecord: ...

    async def retry(self, run_id: str) -> RunRecord: ...

    async def retry_failed(self, *, flow_id: str | None = None,
                           limit: int = 1000) -> list[str]: ...

    async def purge(self, *, older_than: float | None = None,
                    now: float | None = None) -> int: ...

    async def tick(self) -> int: ...

    async def fire_schedules(self, now: float) -> list[str]: ...


class Executor(Protocol):
    """Where a remote engine's runs execute in this process (a Temporal worker)."""

    async def run(self) -> None: ...

    async def shutdown(self) -> None: ...


@runtime_checkable
class RemoteEngine(Engine, Protocol):
    """An engine whose runs execute in workers it can make (``patchwire worker``)."""

    def executor(self, *, concurrency: int) -> Executor: ...
