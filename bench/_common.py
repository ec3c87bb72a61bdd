"""What the benchmarks share: the sandbox in a process of its own, and free ports."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys

__all__ = ["START_TIMEOUT_S", "free_port", "start_listening", "start_sandbox"]

#: how long a helper process (the sandbox, a Temporal dev server) may take to come up
START_TIMEOUT_S = 30.0


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    """``python -m patchwire.sandbox`` on a free port, so its CPU is not the benchmark's."""
    return start_listening([sys.executable, "-m", "patchwire.sandbox", "--port", "0"],
                           "sandbox")


def start_listening(argv: list[str], what: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``argv`` and wait (bounded) for the ``"<what> listening on <url>"`` line it
    prints once it listens; returns the process and the URL."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith(f"{what} listening on "):
        proc.kill()
        proc.wait(timeout=10)
        raise SystemExit(f"{what} did not start within {START_TIMEOUT_S:g} s: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
