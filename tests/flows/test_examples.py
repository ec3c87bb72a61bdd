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

from patchwire import Patchwire, Settings
from patchwire.flows import FlowEngine, FlowRegistry
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.server import create_app
from tests.support.cli import Cli
from tests.support.servers import serving
from tests.support.settings import local_settings

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


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_to_ticket_runs_from_the_command_line(cli_with_examples: Cli,
                                                         sandbox: Sandbox) -> None:
    cli = cli_with_examples
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
    examples = FlowRegistry.load(builtins=True)  # opted in, as `init --examples` does
    async with (serving(create_app(Patchwire(local_settings(home)), engine=True,
                                   flows=examples)) as url,
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
    registry = FlowRegistry.load((), builtins=True)
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


# -- examples are opt-in --------------------------------------------------------------------

EXAMPLE_FLOWS = {"chat_to_ticket", "overdue_invoice_reminders", "refund_to_ticket_comment"}
EXAMPLE_SYNCS = {"shop_customers", "shop_orders"}


async def _offered(settings: Settings) -> tuple[set[str], set[str], set[str]]:
    """The flows, tools and syncs a server over ``settings`` offers (as `patchwire serve`
    builds it: its engine runs flows and schedules)."""
    async with (serving(create_app(Patchwire(settings), engine=True)) as url,
                aiohttp.ClientSession() as http):
        answers = []
        for path in ("/api/v1/flows", "/api/v1/tools", "/api/v1/syncs"):
            async with http.get(url + path) as resp:
                assert resp.status == 200, await resp.text()
                answers.append({item.get("id") or item["name"] for item in await resp.json()})
    flows, tools, syncs = answers
    return flows, tools, syncs


async def _schedule_slots(settings: Settings, at: datetime) -> list[str]:
    """The runs the schedules of the flows a server over ``settings`` loads start from the
    day before ``at`` to ``at`` (a fake clock; the engine the server builds, unstarted)."""
    registry = FlowRegistry.load(settings.flow_paths)
    clock = [at.timestamp() - 86_400]
    async with Patchwire(settings) as pw:
        engine = FlowEngine(pw, registry.as_mapping(), clock=lambda: clock[0],
                            poll_interval=3600, claims=False)
        async with engine:
            await engine.fire_schedules(clock[0])
            clock[0] = at.timestamp()
            return await engine.fire_schedules(clock[0])


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_a_fresh_server_offers_no_example_flow_or_tool_and_schedules_nothing(
        cli: Cli) -> None:
    initialised = await cli("init")
    assert initialised.code == 0, initialised
    settings = local_settings(cli.home, flow_paths=(cli.workdir / "flows",),
                              sync_paths=(cli.workdir / "syncs",))

    # the schedules first: the server's own engine notes today's slots in the store
    slots = await _schedule_slots(settings, datetime(2026, 11, 24, 2, 0, 30,
                                                     tzinfo=ZoneInfo("Europe/Paris")))
    flows, tools, syncs = await _offered(settings)

    assert flows == set() and syncs == set()
    assert "open_support_ticket" not in tools
    assert slots == []
    assert sorted(p.name for p in (cli.workdir / "flows").iterdir()) == []
    assert "init --examples" in initialised.flat_out


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_init_examples_copies_them_into_the_project_and_the_server_then_offers_them(
        cli: Cli) -> None:
    first = await cli("init", "--examples")
    assert first.code == 0, first
    flows_dir, syncs_dir = cli.workdir / "flows", cli.workdir / "syncs"
    assert {p.stem for p in flows_dir.glob("*.yaml")} == EXAMPLE_FLOWS
    assert {p.stem for p in syncs_dir.glob("*.yaml")} == EXAMPLE_SYNCS
    settings = local_settings(cli.home, flow_paths=(flows_dir,), sync_paths=(syncs_dir,))

    # the schedules first: the server's own engine notes today's slots in the store
    slots = await _schedule_slots(settings, datetime(2026, 11, 24, 2, 0, 30,
                                                     tzinfo=ZoneInfo("Europe/Paris")))
    flows, tools, syncs = await _offered(settings)

    assert flows == EXAMPLE_FLOWS and syncs == EXAMPLE_SYNCS
    assert "open_support_ticket" in tools
    assert len(slots) == 1  # the nightly reminders, now the user's own flow
    # the copies are the user's: running it again keeps an edited one
    edited = flows_dir / "chat_to_ticket.yaml"
    edited.write_text(edited.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    again = await cli("init", "--examples")
    assert again.code == 0, again
    assert edited.read_text(encoding="utf-8").endswith("# mine\n")
    assert f"kept {edited.relative_to(cli.workdir)} (exists)" in again.flat_out
