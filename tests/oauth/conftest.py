"""Fixtures for the OAuth2 tests: a sandbox with its /oauth server on a fake clock, a
vault, and an ``oauthy`` connector whose tokens come from that server."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from patchwire.auth import TokenKeeper, TokenSet, Vault, connection_aad
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.http import HttpCore
from patchwire.sandbox import Sandbox
from patchwire.store import ConnectionRecord, Store
from tests.helpers import LOOPBACK

CLIENT_ID = "patchwire-sandbox"
CLIENT_SECRET = "sandbox-client-secret"


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def oauth_connector(flow: str = "authorization_code", name: str = "oauthy") -> ConnectorSpec:
    auth: dict[str, Any] = {"type": "oauth2", "flow": flow,
                            "token_url": "{sandbox_url}/oauth/token", "scopes": ["profile", "email"]}
    if flow == "authorization_code":
        auth["authorize_url"] = "{sandbox_url}/oauth/authorize"
    return ConnectorSpec.model_validate({
        "name": name,
        "base_url": "{sandbox_url}/oauth",
        "settings": {
            "sandbox_url": {},
            "client_id": {},
            "client_secret": {"secret": True, "required": False},
        },
        "auth": auth,
        "retry": {"attempts": 1},
        "actions": {"me": {"request": {"method": "GET", "path": "/userinfo"}}},
    })


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0) as running:
        running.state.oauth.clock = clock
        yield running


@pytest.fixture
def vault() -> Vault:
    return Vault({"test": base64.urlsafe_b64decode(Vault.generate_key())}, "test")


@pytest.fixture
def registry() -> ConnectorRegistry:
    return ConnectorRegistry([oauth_connector(), oauth_connector("client_credentials", "robot")])


@pytest.fixture
async def http() -> AsyncIterator[HttpCore]:
    core = HttpCore(allow_networks=LOOPBACK)
    yield core
    await core.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'pw.db'}")
    yield store
    await store.close()


async def add_connection(
    store: Store, vault: Vault, sandbox: Sandbox, *, name: str = "acme",
    connector: str = "oauthy", tokens: TokenSet | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> ConnectionRecord:
    rec = ConnectionRecord.new(name, connector, settings={"sandbox_url": sandbox.url,
                                                          "client_id": CLIENT_ID})
    values: dict[str, Any] = {"client_secret": CLIENT_SECRET, **(secrets or {})}
    if tokens is not None:
        values = tokens.merged_into(values)
    rec = dataclasses.replace(rec, secrets=vault.encrypt_json(values, aad=connection_aad(rec.id)))
    await store.add_connection(rec)
    return rec


def keeper(store: Store, vault: Vault, registry: ConnectorRegistry, http: HttpCore,
           clock: FakeClock) -> TokenKeeper:
    return TokenKeeper(store, vault, registry, http, skew=60.0, clock=clock)


def ci_required() -> bool:
    return bool(os.environ.get("CI"))
