from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import pytest
import yaml

from patchwire.sandbox import API_NAMES, Sandbox, auth_headers


@pytest.mark.parametrize("api", API_NAMES)
async def test_openapi_documents_are_served_as_3_1_yaml_and_json(
    sandbox: Sandbox, http: aiohttp.ClientSession, api: str
) -> None:
    async with http.get(sandbox.api_url(api) + "/openapi.yaml") as resp:
        assert resp.status == 200
        doc = yaml.safe_load(await resp.text())
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": sandbox.api_url(api)}]
    assert doc["components"]["securitySchemes"]
    operation_ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operation_ids) == len(set(operation_ids)) > 0
    async with http.get(sandbox.api_url(api) + "/openapi.json") as resp:
        assert await resp.json() == doc


async def test_every_documented_operation_exists_on_the_server(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    for api in API_NAMES:
        async with http.get(sandbox.api_url(api) + "/openapi.yaml") as resp:
            doc = yaml.safe_load(await resp.text())
        for path, item in doc["paths"].items():
            for method in item:
                if method == "parameters":
                    continue
                concrete = path.replace("{order_id}", "42").replace("{customer_id}", "cus_0001")
                concrete = (
                    concrete.replace("{ticket_id}", "1")
                    .replace("{appointment_id}", "apt_0001")
                    .replace("{charge_id}", "ch_x")
                )
                async with http.request(
                    method.upper(), sandbox.api_url(api) + concrete, headers=auth_headers(api)
                ) as resp:
                    assert resp.status != 405, (api, method, path)
                    if resp.status == 404:
                        body = await resp.json()
                        assert body["error"]["message"] != "no such route", (api, method, path)


@pytest.mark.slow  # python -m patchwire.sandbox in a subprocess
async def test_python_m_sandbox_prints_its_url_and_stops_on_sigint() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "patchwire.sandbox",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/shop/products", headers=auth_headers("shop")) as resp,
        ):
            assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
