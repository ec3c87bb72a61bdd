"""The process the crash test kills: Patchwire and a FlowEngine on a given store and home.

    python -m tests.support.engine_worker --home DIR --database-url URL

It runs the crash flow (``CRASH_FLOW``) until it is killed (SIGKILL, by the test) or
stopped (SIGTERM/SIGINT: the engine stops cleanly). It prints ``engine ready <owner>``
once the engine runs. Runs are started by the test, as queued rows in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from patchwire import Patchwire
from patchwire.flows import FlowEngine, FlowSpec
from tests.support.settings import local_settings

FLOW_ID = "crash_test"
#: charge (idempotency key applies), a short wait (the run is released and claimed again),
#: a transform, a ticket (no idempotency key: a replay opens another one)
CRASH_FLOW: dict[str, Any] = {
    "id": FLOW_ID,
    "version": 1,
    "input": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    "steps": [
        {"id": "charge", "call": "payments.create_charge", "connection": "payments",
         "args": {"amount": "1000 + $input.n", "currency": "'usd'",
                  "customer": "'cus_crash'", "description": "'crash run ' & $run.id"}},
        {"id": "pause", "wait": "300ms"},
        {"id": "note", "transform": '{"subject": "crash run " & $run.id, '
                                    '"description": "charged " & $steps.charge.id}'},
        {"id": "ticket", "call": "helpdesk.create_ticket", "connection": "helpdesk",
         "args": {"subject": "$steps.note.subject", "description": "$steps.note.description",
                  "requester_email": "'crash@example.com'"}},
    ],
    "output": '{"charge": $steps.charge.id, "ticket": $steps.ticket.id}',
}
STEP_ORDER = ("charge", "pause", "note", "ticket")


def crash_flow() -> FlowSpec:
    return FlowSpec.model_validate(CRASH_FLOW)


async def serve(home: Path, database_url: str, max_concurrency: int, lease: float,
                poll_interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Patchwire(local_settings(home, database_url=database_url)) as pw:
        engine = FlowEngine(pw, {FLOW_ID: crash_flow()}, lease=lease,
                            max_concurrency=max_concurrency, poll_interval=poll_interval,
                            schedules=False)
        await engine.start()
        try:
            print(f"engine ready {engine.owner}", flush=True)
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await engine.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.engine_worker")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--max-concurrency", type=int, default=1000)
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.home, args.database_url, args.max_concurrency, args.lease,
                      args.poll_interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
