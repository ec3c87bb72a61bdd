"""End users' tools served on loopback: a store with an operator's connection and two end
users' shop connections, their tokens, and the app serving them (REST, ``/mcp`` and the
``/connect`` pages its connect links lead to, its public URL its own address)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from patchwire import Patchwire
from patchwire.config import Settings
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store.end_users import EndUserTokenRepository
from tests.support.servers import serving
from tests.support.settings import free_port, local_settings

#: bound on every HTTP request of these tests
TIMEOUT_S = 30.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Served:
    """The app on loopback: ``pw`` is the Patchwire it serves (opened by its lifespan)."""

    url: str
    http: aiohttp.ClientSession
    pw: Patchwire
    settings: Settings
    sandbox: Sandbox
    canary: str
    #: end user -> their token
    tokens: dict[str, str]

    def at(self, path: str) -> str:
        return self.url + path

    async def connect_session(self, link: str) -> dict[str, Any]:
        """What ``GET /api/v1/connect-sessions/{token}`` says of the connect link ``link``."""
        token = link.rsplit("/", 1)[1]
        async with self.http.get(self.at(f"/api/v1/connect-sessions/{token}")) as resp:
            assert resp.status == 200, await resp.text()
            found: dict[str, Any] = await resp.json()
        return found

    async def call(self, name: str, arguments: dict[str, Any], token: str | None = None,
                   ) -> dict[str, Any]:
        """``POST /api/v1/tools/{name}/call`` (as ``token``'s end user, else the operator)."""
        async with self.http.post(self.at(f"/api/v1/tools/{name}/call"),
                                  json={"arguments": arguments},
                                  headers=bearer(token) if token else None) as resp:
            assert resp.status == 200, await resp.text()
            result: dict[str, Any] = await resp.json()
        return result


def shop_registry(sandbox: Sandbox) -> ConnectorRegistry:
    """The built-in connectors, the shop's ``sandbox_url`` defaulting to the running
    sandbox (the connect form asks only for what has no default: the API key)."""
    builtin = ConnectorRegistry.load(())
    shop = builtin.get("shop")
    url = shop.settings["sandbox_url"].model_copy(update={"default": sandbox.url})
    specs: list[ConnectorSpec] = [
        shop.model_copy(update={"settings": {**shop.settings, "sandbox_url": url}}),
        *(spec for spec in builtin if spec.name != "shop")]
    return ConnectorRegistry(specs)


async def shop_connections(settings: Settings, sandbox: Sandbox, canary: str) -> None:
    """The operator's ``acme``, u1's ``u1-shop`` and u2's ``u2-shop``."""
    shop = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme", shop)
        for user in ("u1", "u2"):
            await setup.add_connection("shop", f"{user}-shop", shop, end_user=user)


@asynccontextmanager
async def served(store_url: str, home: Path, sandbox: Sandbox, canary: str, *,
                 end_users: Sequence[str] = ("u1", "u2"), **settings: Any,
                 ) -> AsyncIterator[Served]:
    """``create_app`` over a store with :func:`shop_connections` and a token for each of
    ``end_users``; its connect links lead to its own ``/connect`` pages."""
    port = free_port()
    config = local_settings(home, database_url=store_url,
                            public_url=f"http://127.0.0.1:{port}", **settings)
    await shop_connections(config, sandbox, canary)
    tokens: dict[str, str] = {}
    async with Patchwire(config) as setup:
        repo = EndUserTokenRepository(setup.store)
        for user in end_users:
            tokens[user] = (await repo.create(user, ttl=timedelta(hours=1)))[1]
    pw = Patchwire(config, connectors=shop_registry(sandbox))
    async with (
        serving(create_app(pw), port) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
    ):
        yield Served(url, http, pw, config, sandbox, canary, tokens)


@asynccontextmanager
async def serving_two_end_users(store_url: str, tmp_path: Path, sandbox: Sandbox,
                                canary: str) -> AsyncIterator[Any]:
    """``create_app(Patchwire(settings))`` with an operator's connection ``acme`` and two
    end users' shop connections (``u1``: ``u1-shop``; ``u2``: ``u2-shop``), all on the
    sandbox shop with the canary key; yields the served :class:`~tests.support.api.Api`."""
    from tests.support.api import Api

    settings = local_settings(tmp_path / "home", database_url=store_url)
    values = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme", values)
        for user in ("u1", "u2"):
            await setup.add_connection("shop", f"{user}-shop", values, end_user=user)
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Api(url, http, sandbox, canary, settings)
