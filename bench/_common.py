"""What the benchmarks share: the sandbox in a process of its own, and free ports."""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import urllib.request

from patchwire.sandbox import ChaosSettings

__all__ = ["BENCH_RATE_LIMIT_PER_MINUTE", "START_TIMEOUT_S", "bench_chaos", "free_port",
           "start_listening", "start_sandbox"]

#: how long a helper process (the sandbox, a Temporal dev server) may take to come up
START_TIMEOUT_S = 30.0

#: The sandbox's per-credential limit during a benchmark. Its default (100,000/min) is a
#: real API's kind of limit, and a benchmark's loops pass it within a minute (raw and
#: Patchwire calls share the credential): the 429s abort the raw loop and measure the
#: pause, not the call path. This one (~170,000 requests/s) is far beyond what one sandbox
#: process serves, so it never binds, whatever the machine.
BENCH_RATE_LIMIT_PER_MINUTE = 10_000_000


def start_sandbox(rate_limit_per_minute: int = BENCH_RATE_LIMIT_PER_MINUTE,
                  ) -> tuple[subprocess.Popen[str], str]:
    """``python -m patchwire.sandbox`` on a free port, so its CPU is not the benchmark's,
    with its rate limit set for the benchmark's load; says so on stderr once the sandbox
    confirms it."""
    proc, url = start_listening([sys.executable, "-m", "patchwire.sandbox", "--port", "0",
                                 "--rate-limit", str(rate_limit_per_minute)], "sandbox")
    try:
        with urllib.request.urlopen(f"{url}/_sandbox/chaos", timeout=START_TIMEOUT_S) as resp:
            applied = int(json.load(resp)["global"]["rate_limit_per_minute"])
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    if applied != rate_limit_per_minute:
        proc.kill()
        proc.wait(timeout=10)
        raise SystemExit(f"the sandbox runs with a rate limit of {applied:,}/min, "
                         f"not the {rate_limit_per_minute:,}/min asked for")
    announce_rate_limit(applied)
    return proc, url


def bench_chaos(rate_limit_per_minute: int = BENCH_RATE_LIMIT_PER_MINUTE) -> ChaosSettings:
    """Settings for a ``Sandbox`` in the benchmark's own process: well-behaved, with the
    rate limit set for the load (announced on stderr)."""
    announce_rate_limit(rate_limit_per_minute)
    return ChaosSettings(rate_limit_per_minute=rate_limit_per_minute)


def announce_rate_limit(per_minute: int) -> None:
    # stderr: stdout ends with the one JSON line of figures that scripts parse
    print(f"sandbox: rate limit {per_minute:,}/min per credential for this load",
          file=sys.stderr, flush=True)


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
