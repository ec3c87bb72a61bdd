"""The process the ingest crash test kills: the API (receiver and inbox processor) on a
given store, home and port.

    python -m tests.support.ingest_server --home DIR --database-url URL --port N

Each inbox event of source ``crash`` starts a run of ``CRASH_FLOW`` (recorded as queued:
no engine runs it here, so the test counts starts, not executions). Prints ``ready`` once
it serves; runs until killed (SIGKILL, by the test) or stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import uvicorn

from patchwire import Patchwire
from patchwire.flows import FlowEngine, FlowRegistry, FlowSpec
from patchwire.server import create_app
from patchwire.webhooks._inbox import Inbox
from tests.support.settings import local_settings

SOURCE = "crash"
FLOW_ID = "count_event"
CRASH_FLOW: dict[str, Any] = {
    "id": FLOW_ID,
    "version": 1,
    "trigger": {"manual": False, "webhook": {"source": SOURCE, "input": "{'n': data.n}"}},
    "input": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    "steps": [{"id": "seen", "transform": "$input.n"}],
}


async def serve(home: Path, database_url: str, port: int) -> None:
    pw = Patchwire(local_settings(home, database_url=database_url))
    registry = FlowRegistry([FlowSpec.model_validate(CRASH_FLOW)])
    # an engine that is never started: the runs the inbox starts are recorded as queued
    engine = FlowEngine(pw, registry.as_mapping(), schedules=False)
    app = create_app(pw, flows=registry, inbox=Inbox(pw, engine))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:  # bounded by the test's timeout on the "ready" line
        if task.done():
            await task
            return
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.home, args.database_url, args.port))
