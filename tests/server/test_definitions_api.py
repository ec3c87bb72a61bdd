"""Reloading definitions through the API (``POST /api/v1/definitions/reload``): new files
put in force, files that do not load refused with every problem and the old definitions
kept, runs in flight untouched, admin only. The app runs its engine, as `patchwire serve`
does, on SQLite."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.access import AccessPolicy
from patchwire.config import Settings
from patchwire.server import create_app
from patchwire.store.keys import KeyRepository
from tests.support.servers import serving
from tests.support.settings import local_settings

#: bound on a run reaching a status on the app's engine
RUN_TIMEOUT_S = 15.0

HELLO = """
    id: hello
    steps:
      - id: greet
        transform: '"hello " & $input.name'
    output: $steps.greet
"""
# a run of it waits for a person; the reply names the version that ran
ASK = """
    id: ask
    version: {version}
    steps:
      - id: ok
        approve: "'go?'"
      - id: said
        transform: '"version {version}"'
    output: $steps.said
"""


@dataclass
class Defs:
    url: str
    http: aiohttp.ClientSession
    flows: Path
    settings: Settings

    def write(self, name: str, text: str) -> Path:
        path = self.flows / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    async def reload(self, status: int) -> dict[str, Any]:
        async with self.http.post(f"{self.url}/api/v1/definitions/reload") as resp:
            assert resp.status == status, await resp.text()
            if status != 200:
                assert resp.content_type == "application/problem+json"
            return dict(await resp.json())

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def flow_ids(self) -> set[str]:
        return {f["id"] for f in await self.get("/flows")}


@pytest.fixture
async def defs(tmp_path: Path) -> AsyncIterator[Defs]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hello.yaml").write_text(textwrap.dedent(HELLO), encoding="utf-8")
    settings = local_settings(tmp_path / "home", flow_paths=(flows,),
                              sync_paths=(tmp_path / "syncs",))
    async with (
        serving(create_app(Patchwire(settings), engine=True)) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
    ):
        yield Defs(url, http, flows, settings)


async def until_status(defs: Defs, run_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        while True:  # bounded by the timeout: poll the run
            run = await defs.get(f"/runs/{run_id}")
            if run["status"] == status:
                return dict(run)
            await asyncio.sleep(0.02)


async def test_a_reload_puts_a_new_flow_in_force_and_says_what_changed(defs: Defs) -> None:
    assert await defs.flow_ids() == {"hello"}
    defs.write("second.yaml", HELLO.replace("id: hello", "id: second"))
    defs.write("hello.yaml", HELLO.replace('"hello "', '"hi "'))

    body = await defs.reload(200)

    assert body["changed"] is True
    assert body["changes"]["flows"] == {"added": ["second"], "removed": [], "changed": ["hello"]}
    assert body["changes"]["connectors"] == {"added": [], "removed": [], "changed": []}
    assert await defs.flow_ids() == {"hello", "second"}
    async with defs.http.post(f"{defs.url}/api/v1/flows/second/runs",
                              json={"input": {"name": "ana"}, "wait": True}) as resp:
        run = await resp.json()
    assert resp.status == 201 and run["output"] == "hello ana", run
    # nothing changed since: a reload says so
    again = await defs.reload(200)
    assert again["changed"] is False and again["summary"] == "nothing changed"


async def test_a_reload_of_files_that_do_not_load_is_a_422_listing_each_and_changes_nothing(
        defs: Defs) -> None:
    defs.write("second.yaml", HELLO.replace("id: hello", "id: second"))  # good, not kept
    broken = defs.write("broken.yaml", "id: broken\nsteps:\n  - id: x\n    transfrom: '1'\n")
    unknown = defs.write("unknown.yaml", "id: unknown\nsteps:\n  - id: x\n"
                                         "    call: shop.no_such_action\n")

    problem = await defs.reload(422)

    assert problem["type"].endswith("/spec_error")
    assert "the definitions in force are unchanged" in problem["detail"]
    where = [p["where"] for p in problem["problems"]]
    assert len(where) == 2, where
    assert where[0].startswith(f"{broken}:4 at steps[0].transfrom: unknown step kind")
    assert where[1].startswith(f"{unknown}:4 at steps[0].call: connector 'shop' has no action")
    assert [(p["file"], p["line"]) for p in problem["problems"]] == [
        (str(broken), 4), (str(unknown), 4)]
    # the flows in force are the old ones: the good new file waits for a clean reload
    assert await defs.flow_ids() == {"hello"}
    async with defs.http.post(f"{defs.url}/api/v1/flows/second/runs", json={}) as resp:
        assert resp.status == 404, await resp.text()


async def test_a_run_waiting_across_a_reload_completes_with_the_version_it_started_with(
        defs: Defs) -> None:
    defs.write("ask.yaml", ASK.format(version=1))
    await defs.reload(200)
    async with defs.http.post(f"{defs.url}/api/v1/flows/ask/runs", json={}) as resp:
        assert resp.status == 202, await resp.text()
        started = await resp.json()
    await until_status(defs, started["id"], "waiting")

    defs.write("ask.yaml", ASK.format(version=2))
    changed = await defs.reload(200)
    assert changed["changes"]["flows"]["changed"] == ["ask"]
    [approval] = [a for a in await defs.get("/approvals")
                  if a["arguments"]["run_id"] == started["id"]]
    async with defs.http.post(f"{defs.url}/api/v1/approvals/{approval['id']}/approve",
                              json={"by": "tester"}) as resp:
        assert resp.status == 200, await resp.text()

    done = await until_status(defs, started["id"], "succeeded")
    assert done["output"] == "version 1" and done["version"] == 1
    # a run started after the reload is of the new version
    async with defs.http.post(f"{defs.url}/api/v1/flows/ask/runs", json={}) as resp:
        later = await resp.json()
    assert later["version"] == 2


async def test_reloading_needs_the_admin_scope_and_reading_the_read_scope(
        tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "home", flow_paths=(tmp_path / "flows",))
    async with Patchwire(settings) as setup:
        keys = KeyRepository(setup.store)
        _, reader = await keys.create("dashboards", ["read", "run"])
        _, admin = await keys.create("ops", ["admin"])
    app = create_app(Patchwire(settings), access=AccessPolicy(require_keys=True))
    async with serving(app) as url, aiohttp.ClientSession() as http:
        def auth(key: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        async with http.post(f"{url}/api/v1/definitions/reload",
                             headers=auth(reader)) as resp:
            assert resp.status == 403, await resp.text()
        async with http.get(f"{url}/api/v1/definitions", headers=auth(reader)) as resp:
            assert resp.status == 200, await resp.text()
            current = await resp.json()
        async with http.post(f"{url}/api/v1/definitions/reload",
                             headers=auth(admin)) as resp:
            assert resp.status == 200, await resp.text()
    assert {c["name"] for c in current["connectors"]} == {
        "calendar", "helpdesk", "payments", "shop"}
    assert current["flows"] == [] and current["syncs"] == []
