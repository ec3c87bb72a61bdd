"""Fixtures for the OAuth2 tests: a sandbox with its /oauth server on a fake clock, a
vault, and an ``oauthy`` connector whose tokens come from that server (its helpers:
``tests.support.oauth``)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire.auth import Vault
from patchwire.connectors import ConnectorRegistry
from patchwire.http import HttpCore
from patchwire.sandbox import Sandbox
from patchwire.store import Store
from tests.support.clocks import FakeClock
from tests.support.oauth import EPOCH, oauth_connector
from tests.support.settings import LOOPBACK


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(EPOCH)


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
