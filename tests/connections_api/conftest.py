"""The connections API on loopback (SQLite and PostgreSQL): an operator's connection
``acme`` and two end users' shop connections (``u1``: ``u1-shop``; ``u2``: ``u2-shop``),
all with the test's canary as their key, against the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.store.keys import KeyRepository
from tests.support.api import Api
from tests.support.servers import serving
from tests.support.settings import local_settings


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Api]:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme",
                                   {"sandbox_url": sandbox.url, "api_key": canary})
        for user in ("u1", "u2"):
            await setup.add_connection("shop", f"{user}-shop",
                                       {"sandbox_url": sandbox.url, "api_key": canary},
                                       end_user=user)
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Api(url, http, sandbox, canary, settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def end_user_token(api: Api, end_user: str) -> str:
    async with api.http.post(api.at(f"/api/v1/end-users/{end_user}/tokens")) as resp:
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
    return token


async def operator_key(api: Api, *scopes: str) -> str:
    async with await Store.open(api.settings.effective_database_url) as store:
        _, key = await KeyRepository(store).create("-".join(scopes), list(scopes))
    return key


async def send(api: Api, method: str, path: str, *, token: str | None = None,
               **kwargs: Any) -> tuple[int, Any, bytes]:
    """(status, JSON body or None, raw body) of one request to the API."""
    headers = bearer(token) if token else {}
    async with api.http.request(method, api.at(path), headers=headers, **kwargs) as resp:
        raw = await resp.read()
        body = await resp.json(content_type=None) if raw else None
        return resp.status, body, raw
