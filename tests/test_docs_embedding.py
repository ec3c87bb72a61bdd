"""docs/embedding.md cannot rot: its FastAPI chatbot backend (the ``app.py`` block) is
written out, imported and served on loopback, and answers a model's tool calls against
the sandbox as the page says."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

from patchwire import Patchwire
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from tests.support.servers import serving
from tests.support.settings import local_settings

DOC = Path(__file__).parent.parent / "docs" / "embedding.md"
BLOCK = re.compile(r'^```python title="app.py"\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL)
#: bound on each request of the test
REQUEST_TIMEOUT_S = 30


def backend_module(tmp_path: Path) -> ModuleType:
    match = BLOCK.search(DOC.read_text())
    assert match is not None, "docs/embedding.md has no app.py block"
    path = tmp_path / "app.py"
    path.write_text(match["body"])
    spec = importlib.util.spec_from_file_location("embedding_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_pages_backend_offers_tools_and_runs_a_models_tool_calls(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    settings = local_settings(tmp_path / "home")
    async with Patchwire(settings) as pw:  # what `patchwire connection add` does
        await pw.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                 **SANDBOX_CREDENTIALS["shop"],
                                                 "api_key": canary})
        await pw.add_connection("payments", "billing", {
            "sandbox_url": sandbox.url, **SANDBOX_CREDENTIALS["payments"]})
    app = backend_module(tmp_path).create_backend(settings)

    async with (serving(app) as url, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as http):
        async with http.get(f"{url}/tools", params={"format": "openai"}) as resp:
            assert resp.status == 200, await resp.text()
            tools: list[dict[str, Any]] = await resp.json()

        async def call(name: str, arguments: dict[str, Any]) -> tuple[int, Any]:
            async with http.post(f"{url}/tool-calls", json={
                    "name": name, "arguments": arguments, "session_id": "chat-1"}) as resp:
                return resp.status, await resp.json()

        found = await call("shop_get_order", {"order_id": "42"})
        invalid = await call("shop_get_order", {})
        charge = await call("payments_create_charge",
                            {"amount": 1200, "currency": "usd", "customer": "cus_0001"})
        unknown = await call("shop_get_ordr", {"order_id": "42"})

    names = {tool["function"]["name"] for tool in tools if tool.get("type") == "function"}
    assert {"shop_get_order", "payments_create_charge"} <= names
    assert found[0] == 200 and found[1]["status"] == "ok"
    assert found[1]["data"]["id"] == "42"
    assert invalid[0] == 200 and invalid[1]["status"] == "invalid_arguments"
    assert "order_id" in invalid[1]["text"]
    assert charge[0] == 200 and charge[1]["status"] == "pending_approval"
    assert charge[1]["approval_id"] in charge[1]["text"]
    assert unknown[0] == 404
    assert canary not in str([tools, found, invalid, charge, unknown])
