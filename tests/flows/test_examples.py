"""The shipped example flows run from the CLI, the API and their schedule, against the
sandbox (the same flows `make demo` runs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.flows import FlowRegistry
from patchwire.flows._engine import FlowEngine
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.server import create_app
from tests.cli.clirun import Cli
from tests.helpers import local_settings
from tests.server.live import serving

BOUND = 30.0


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


async def connect(home: Path, sandbox: Sandbox) -> None:
    async with Patchwire(local_settings(home)) as pw:
        for api in ("shop", "helpdesk"):
            await pw.add_connection(api, f"demo-{api}",
                                    {"sandbox_url": sandbox.url, **SANDBOX_CREDENTIALS[api]})


async def a_customer(sandbox: Sandbox) -> dict[str, str]:
    customers = sandbox.state.apis["shop"].customers  # type: ignore[attr-defined]
    return dict(next(iter(customers.values())))


async def test_chat_to_ticket_runs_from_the_command_line(cli: Cli, sandbox: Sandbox) -> None:
    await connect(cli.home, sandbox)
    customer = await a_customer(sandbox)
    flow_input = json.dumps({"email": customer["email"], "message": "My parcel is late"})
    result = await cli("flow", "run", "chat_to_ticket", "--input", flow_input, "--wait")
    assert result.code == 0, result
    output = json.loads(result.out[result.out.index("{"):])
    assert isinstance(output["ticket_id"], int)
    tickets = sandbox.state.apis["helpdesk"].tickets  # type: ignore[attr-defined]
    assert tickets[output["ticket_id"]]["requester_email"] == customer["email"]


async def test_refund_to_ticket_comment_runs_from_the_api(tmp_path: Path,
                                                           sandbox: Sandbox) -> None:
    home = tmp_path / "home"
    await connect(home, sandbox)
    orders = sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    order_id = next(iter(orders))
    payload = {"input": {"order_id": str(order_id), "reason": "damaged"}, "wait": True,
               "timeout": BOUND}
    async with (serving(create_app(Patchwire(local_settings(home)), engine=True)) as url,
                aiohttp.ClientSession() as http,
                http.post(f"{url}/api/v1/flows/refund_to_ticket_comment/runs",
                          json=payload) as resp):
        body = await resp.json()
    assert resp.status == 201, body
    assert body["status"] == "succeeded" and body["output"]["order_id"] == str(order_id)


async def test_the_nightly_reminders_fire_on_their_schedule(tmp_path: Path,
                                                            sandbox: Sandbox) -> None:
    home = tmp_path / "home"
    await connect(home, sandbox)
    registry = FlowRegistry.load(())
    flow = registry.get("overdue_invoice_reminders")
    schedule = flow.trigger.schedule[0]
    tz = ZoneInfo(schedule.timezone)
    clock = [datetime(2026, 11, 23, 12, 0, tzinfo=tz).timestamp()]
    async with Patchwire(local_settings(home)) as pw:
        engine = FlowEngine(pw, registry.as_mapping(), clock=lambda: clock[0],
                            poll_interval=3600)
        async with engine:
            assert await engine.fire_schedules(clock[0]) == []  # the schedule starts now
            clock[0] = datetime(2026, 11, 24, 2, 0, 30, tzinfo=tz).timestamp()
            (run_id,) = await engine.fire_schedules(clock[0])
            run = await engine.wait(run_id, max_wait=BOUND)
            again = await engine.fire_schedules(clock[0] + 60)
    assert run.status == "succeeded", run.error
    assert run.trigger == "schedule" and again == []
    assert set(run.output) >= {"overdue", "reminded"}
