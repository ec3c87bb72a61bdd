"""The catalog over REST (``/api/v1/catalog``): listing, search, one connector's facts, and
adding one to the deployment, which writes its file and puts it in force at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.server import create_app
from tests.support.servers import serving
from tests.support.settings import local_settings


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    connectors: Path

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        async with self.http.request(method, f"{self.url}/api/v1{path}", **kw) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    connectors = tmp_path / "connectors"
    settings = local_settings(tmp_path / "home", connector_paths=(connectors,))
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        yield Api(url, http, connectors)


async def test_the_catalog_lists_searches_and_shows_connectors_with_their_sources(
        api: Api) -> None:
    rows = await api.call("GET", "/catalog", 200)
    stripe = next(r for r in rows if r["name"] == "stripe")
    assert stripe["enabled"] is False and stripe["docs_url"].startswith("https://")
    assert {"source", "licence", "verified_at", "auth", "actions"} <= set(stripe)

    hits = await api.call("GET", "/catalog", 200, params={"q": "stripe refund"})
    assert hits[0]["name"] == "stripe" and hits[0]["score"] > 0

    shown = await api.call("GET", "/catalog/stripe", 200)
    assert shown["auth_facts"] == {"type": "bearer"}
    assert {a["name"] for a in shown["actions"]} == set(stripe["actions"])


async def test_adding_a_catalog_connector_puts_it_in_force_without_a_restart(api: Api) -> None:
    assert "stripe" not in {c["name"] for c in await api.call("GET", "/connectors", 200)}

    added = await api.call("POST", "/catalog/stripe/add", 200)

    assert added["enabled"] is True
    assert added["changes"]["connectors"]["added"] == ["stripe"]
    assert (api.connectors / "stripe.yaml").is_file()
    assert "stripe" in {c["name"] for c in await api.call("GET", "/connectors", 200)}
    assert (await api.call("GET", "/catalog/stripe", 200))["enabled"] is True

    again = await api.call("POST", "/catalog/stripe/add", 409)
    assert again["type"].endswith("/connector_exists") and "--force" in again["detail"]
    await api.call("POST", "/catalog/stripe/add", 200, params={"force": "true"})


async def test_a_name_outside_the_catalog_is_a_404_and_nothing_is_written(api: Api) -> None:
    for name in ("strpe", "..", "stripe%2F..%2F..%2Fx", "%2e%2e"):
        async with api.http.post(f"{api.url}/api/v1/catalog/{name}/add") as resp:
            assert resp.status == 404, (name, await resp.text())
            assert resp.content_type == "application/problem+json"
    assert not api.connectors.exists() or list(api.connectors.iterdir()) == []


async def test_a_cross_site_page_cannot_add_a_connector(api: Api) -> None:
    async with api.http.post(f"{api.url}/api/v1/catalog/stripe/add",
                             headers={"Origin": "http://evil.example",
                                      "Sec-Fetch-Site": "cross-site"}) as resp:
        assert resp.status == 403, await resp.text()
    assert not (api.connectors / "stripe.yaml").exists()


async def test_an_overlong_search_is_refused_as_a_typed_problem(api: Api) -> None:
    problem = await api.call("GET", "/catalog", 422, params={"q": "x" * 5000})
    assert "q" in str(problem)
