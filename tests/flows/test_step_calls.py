"""A flow step's call goes through the one call path with the step's idempotency key, so
a step re-run after a crash is applied once by an upstream that honours the key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from patchwire import Patchwire
from patchwire.flows import FlowEngine
from patchwire.flows.spec import FlowSpec
from tests.support.upstream import patchwire_serving

BOUND = 20.0  # no wait in these tests takes this long

CONNECTOR = """
name: ledger
base_url: "{url}"
settings: {url: {}}
auth: {type: none}
retry: {attempts: 1, idempotency_header: Idempotency-Key}
actions:
  add_entry:
    input: {type: object, properties: {amount: {type: integer}}, required: [amount]}
    request: {method: POST, path: /entries, body: {amount: "{amount}"}}
"""

FLOW = """
id: book
input: {type: object, properties: {amount: {type: integer}}, required: [amount]}
steps:
  - id: charge
    call: ledger.add_entry
    args: {amount: $input.amount}
output: $steps.charge
"""


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, list[web.Request]]]:
    seen: list[web.Request] = []

    async def add(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"added": (await request.json())["amount"]}, status=201)

    app = web.Application()
    app.router.add_post("/entries", add)
    async with patchwire_serving(tmp_path, app, CONNECTOR) as pw:
        yield pw, seen


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def test_a_flow_steps_call_sends_the_runs_step_key_as_its_idempotency_key(
        ledger: tuple[Patchwire, list[web.Request]]) -> None:
    pw, seen = ledger
    flows = {"book": FlowSpec.model_validate(yaml.safe_load(FLOW))}
    async with FlowEngine(pw, flows, sleep=no_sleep, poll_interval=3600) as engine:
        run = await engine.run("book", {"amount": 5}, max_wait=BOUND)
    assert run.status == "succeeded", run.error
    assert run.output == {"added": 5}
    (request,) = seen
    assert request.headers["Idempotency-Key"] == f"{run.id}:charge"
