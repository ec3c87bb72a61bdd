"""The flows routes of the REST API: the flow catalog, starting runs (waiting or not), run
listing with a cursor, retry from the failed step, cancel, and problems for wrong requests.
The app runs its engine (``create_app(engine=True)``, as `patchwire serve` does), on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import FlowEngine, Patchwire
from patchwire.config import Settings
from patchwire.flows import FlowRegistry
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.api import PROBLEM_BASE, problem_of
from tests.support.flows import flow_settings
from tests.support.sandboxes import add_order
from tests.support.servers import serving

#: bound on a retried run finishing on the app's engine
RUN_TIMEOUT_S = 10.0


@dataclass
class FlowApi:
    url: str
    http: aiohttp.ClientSession
    sandbox: Sandbox
    settings: Settings

    def at(self, path: str) -> str:
        return self.url + "/api/v1" + path

    async def start(self, flow: str, status: int, **body: Any) -> dict[str, Any]:
        async with self.http.post(self.at(f"/flows/{flow}/runs"), json=body) as resp:
            assert resp.status == status, await resp.text()
            return dict(await resp.json())

    async def get(self, path: str, **params: Any) -> Any:
        async with self.http.get(self.at(path), params=params) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest.fixture
async def flow_api(tmp_path: Path, sandbox: Sandbox, canary: str) -> AsyncIterator[FlowApi]:
    settings = await flow_settings(tmp_path, sandbox, canary)
    async with (
        serving(create_app(Patchwire(settings), engine=True)) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
    ):
        yield FlowApi(url, http, sandbox, settings)


async def until_status(api: FlowApi, run_id: str, status: str) -> dict[str, Any]:
    """Poll the run until it has ``status`` (bounded)."""
    async with asyncio.timeout(RUN_TIMEOUT_S):
        while True:
            run = await api.get(f"/runs/{run_id}")
            if run["status"] == status:
                return dict(run)
            await asyncio.sleep(0.02)


async def test_the_catalog_lists_each_flow_with_its_triggers_and_input_schema(
        flow_api: FlowApi) -> None:
    flows = {f["id"]: f for f in await flow_api.get("/flows")}
    assert {"order_status", "two_orders", "chat_to_ticket"} <= set(flows)
    mine = flows["order_status"]
    assert (mine["version"], mine["title"]) == (1, "The status of one order")
    assert mine["input_schema"]["required"] == ["order_id"]
    assert mine["triggers"]["manual"] is True
    assert flows["nightly"]["triggers"]["schedule"][0]["cron"] == "0 3 * * *"
    assert flows["chat_to_ticket"]["triggers"]["tool"]["name"] == "open_support_ticket"

    one = await flow_api.get("/flows/order_status")
    assert [s["id"] for s in one["definition"]["steps"]] == ["order"]
    assert one["source"].endswith("order_status.yaml")
    async with flow_api.http.get(flow_api.at("/flows/nope")) as resp:
        missing = await problem_of(resp, 404)
    assert missing["type"] == PROBLEM_BASE + "unknown_flow"


async def test_a_run_waited_for_answers_201_with_its_output_and_steps(
        flow_api: FlowApi) -> None:
    async with flow_api.http.post(flow_api.at("/flows/order_status/runs"),
                                  json={"input": {"order_id": "42"}, "wait": True}) as resp:
        assert resp.status == 201, await resp.text()
        run = await resp.json()
        location = resp.headers["Location"]
    assert location == f"/api/v1/runs/{run['id']}"
    assert run["status"] == "succeeded" and run["trigger"] == "api"
    assert run["output"]["order"] == "42"
    assert [(s["key"], s["status"]) for s in run["steps"]] == [("order", "succeeded")]
    again = await flow_api.get(f"/runs/{run['id']}")
    assert again["output"] == run["output"] and again["steps"][0]["output"]["id"] == "42"
    assert [r["id"] for r in await flow_api.get("/runs", flow="order_status")] == [run["id"]]


async def test_invalid_input_is_a_422_problem_listing_every_path_and_starts_nothing(
        flow_api: FlowApi) -> None:
    async with flow_api.http.post(flow_api.at("/flows/order_status/runs"),
                                  json={"input": {"order_id": 7, "x": 1}}) as resp:
        invalid = await problem_of(resp, 422)
    assert invalid["type"] == PROBLEM_BASE + "invalid_flow_input"
    assert {p["path"] for p in invalid["problems"]} == {"$", "$.order_id"}
    async with flow_api.http.post(flow_api.at("/flows/order_status/runs"),
                                  json={"wait": True, "timeout": 0}) as resp:
        bad_request = await problem_of(resp, 422)
    assert bad_request["problems"][0]["path"] == "$.timeout"
    async with flow_api.http.post(flow_api.at("/flows/nightly/runs"), json={}) as resp:
        not_manual = await problem_of(resp, 409)
    assert "trigger.manual is false" in not_manual["detail"]
    assert await flow_api.get("/runs") == []


async def test_a_failed_run_is_a_dead_letter_and_retry_resumes_at_the_failed_step(
        flow_api: FlowApi) -> None:
    failed = await flow_api.start("two_orders", 201, input={"order_id": "9002"}, wait=True)
    assert failed["status"] == "failed" and failed["dead_letter"]
    assert failed["error"]["step"] == "missing" and failed["error"]["code"] == "not_found"
    assert [s["id"] for s in await flow_api.get("/runs", dead="true")] == [failed["id"]]

    add_order(flow_api.sandbox, "9002")
    before = flow_api.sandbox.stats.requests["shop"]
    async with flow_api.http.post(flow_api.at(f"/runs/{failed['id']}/retry")) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["attempt"] == 2
    done = await until_status(flow_api, failed["id"], "succeeded")
    assert done["output"] == ["42", "9002"]
    assert flow_api.sandbox.stats.requests["shop"] == before + 1  # the known step not again
    assert await flow_api.get("/runs", dead="true") == []

    async with flow_api.http.post(flow_api.at(f"/runs/{failed['id']}/retry")) as resp:
        twice = await problem_of(resp, 409)
    assert twice["type"] == PROBLEM_BASE + "run_state"


async def test_retry_failed_retries_the_dead_letters_of_one_flow(flow_api: FlowApi) -> None:
    refused = [await flow_api.start("refuse", 201, input={"who": w}, wait=True)
               for w in ("a", "b")]
    other = await flow_api.start("two_orders", 201, input={"order_id": "404404"}, wait=True)
    async with flow_api.http.post(flow_api.at("/runs/retry-failed"),
                                  params={"flow": "refuse"}) as resp:
        assert resp.status == 200, await resp.text()
        retried = (await resp.json())["retried"]
    assert sorted(retried) == sorted(r["id"] for r in refused)
    for run in refused:  # a fail step fails again, on its second attempt
        again = await until_status(flow_api, run["id"], "failed")
        assert again["attempt"] == 2
    assert (await flow_api.get(f"/runs/{other['id']}"))["attempt"] == 1


async def test_a_waiting_run_is_accepted_with_202_and_can_be_cancelled_once(
        flow_api: FlowApi) -> None:
    waiting = await flow_api.start("pause", 202, wait=True)
    assert waiting["status"] == "waiting" and waiting["wake_at"]
    async with flow_api.http.post(flow_api.at(f"/runs/{waiting['id']}/cancel")) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["status"] == "cancelled"
    async with flow_api.http.post(flow_api.at(f"/runs/{waiting['id']}/cancel")) as resp:
        twice = await problem_of(resp, 409)
    assert "only queued, running or waiting runs" in twice["detail"]
    for method, path in (("GET", "/runs/nope"), ("POST", "/runs/nope/retry"),
                         ("POST", "/runs/nope/cancel")):
        async with flow_api.http.request(method, flow_api.at(path)) as resp:
            unknown = await problem_of(resp, 404)
        assert unknown["type"] == PROBLEM_BASE + "unknown_run"

    started = await flow_api.start("pause", 202)  # not waited for: running or waiting
    assert started["status"] in ("running", "waiting")


async def test_run_listing_filters_and_pages_with_a_before_cursor(flow_api: FlowApi) -> None:
    ids = [(await flow_api.start("refuse", 201, wait=True))["id"] for _ in range(3)]
    async with flow_api.http.get(flow_api.at("/runs"), params={"limit": "2"}) as resp:
        first = [r["id"] for r in await resp.json()]
        link = resp.headers["Link"]
    assert first == ids[::-1][:2]
    assert link.endswith('; rel="next"') and f"before={first[-1]}" in link
    async with flow_api.http.get(flow_api.url + link[1:link.index(">")]) as resp:
        assert [r["id"] for r in await resp.json()] == ids[:1]
        assert "Link" not in resp.headers
    assert await flow_api.get("/runs", since="2999-01-01T00:00:00Z") == []
    assert len(await flow_api.get("/runs", until="2999-01-01T00:00:00", status="failed")) == 3
    async with flow_api.http.get(flow_api.at("/runs"), params={"status": "lost"}) as resp:
        await problem_of(resp, 422)


async def test_an_app_without_an_engine_queues_runs_for_a_worker(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    settings = await flow_settings(tmp_path, sandbox, canary)
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
        http.post(f"{url}/api/v1/flows/order_status/runs",
                  json={"input": {"order_id": "42"}}) as resp,
    ):
        assert resp.status == 202, await resp.text()
        queued = await resp.json()
    assert queued["status"] == "queued"

    flows = FlowRegistry.load(settings.flow_paths).as_mapping()
    async with Patchwire(settings) as pw, FlowEngine(pw, flows, schedules=False) as worker:
        done = await worker.wait(queued["id"], max_wait=RUN_TIMEOUT_S)
    assert done.status == "succeeded" and done.output["order"] == "42"
