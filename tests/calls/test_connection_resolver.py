"""The connection resolver: a connection is read and resolved once while cached, once for
many callers at a time, and again after it changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from patchwire import Patchwire, UnknownConnection
from patchwire.calls import ConnectionResolver
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.store import Store
from patchwire.store.records import ConnectionRecord
from tests.support.settings import local_settings

CONNECTORS = [
    """
name: ledger
base_url: "{url}"
settings: {url: {}}
auth: {type: none}
actions:
  ping: {request: {path: /ping}}
""",
    """
name: other
base_url: "{url}"
settings: {url: {}}
auth: {type: none}
actions:
  ping: {request: {path: /ping}}
""",
]


class CountingRows:
    """The real store's connection rows, counting the reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: list[str] = []
        self.lists = 0

    async def get_connection(self, name: str) -> ConnectionRecord:
        self.reads.append(name)
        return await self.store.get_connection(name)

    async def list_connections(self, connector: str | None = None,
                               end_user: str | None = None) -> Sequence[ConnectionRecord]:
        self.lists += 1
        return await self.store.list_connections(connector=connector, end_user=end_user)


@pytest.fixture
async def pw(tmp_path: Path) -> AsyncIterator[Patchwire]:
    registry = ConnectorRegistry([load_connector_text(t, f"c{i}.yaml")
                                  for i, t in enumerate(CONNECTORS)])
    async with Patchwire(local_settings(tmp_path / "home"), connectors=registry) as opened:
        await opened.add_connection("ledger", "main", {"url": "http://127.0.0.1:9"})
        yield opened


def resolver(pw: Patchwire, rows: CountingRows) -> ConnectionResolver:
    return ConnectionResolver(rows, pw.connectors, lambda _: {})


async def test_many_calls_on_a_cold_connection_read_its_row_once(pw: Patchwire) -> None:
    rows = CountingRows(pw.store)
    connections = resolver(pw, rows)
    resolved = await asyncio.gather(*(connections.resolve("main", "ledger") for _ in range(20)))
    assert rows.reads == ["main"]
    assert {id(r) for r in resolved} == {id(resolved[0])}
    assert resolved[0].base_url == "http://127.0.0.1:9"
    assert connections.ready("main", "ledger") is resolved[0]


async def test_a_forgotten_connection_is_read_again(pw: Patchwire) -> None:
    rows = CountingRows(pw.store)
    connections = resolver(pw, rows)
    await connections.resolve("main", "ledger")
    connections.forget("main")
    assert connections.ready("main", "ledger") is None
    await connections.resolve("main", "ledger")
    assert rows.reads == ["main", "main"]


async def test_a_connection_asked_for_another_connector_is_refused(pw: Patchwire) -> None:
    connections = resolver(pw, CountingRows(pw.store))
    with pytest.raises(UnknownConnection, match="belongs to connector 'ledger', not 'other'"):
        await connections.resolve("main", "other")
    assert connections.ready("main", "other") is None


async def test_the_only_connection_of_a_connector_is_its_default_until_another_is_added(
        pw: Patchwire) -> None:
    rows = CountingRows(pw.store)
    connections = resolver(pw, rows)
    assert await connections.default_for("ledger") == "main"
    assert await connections.default_for("ledger") == "main"
    assert rows.lists == 1  # cached
    await pw.add_connection("ledger", "second", {"url": "http://127.0.0.1:9"})
    connections.forget("second")
    with pytest.raises(UnknownConnection, match=r"several connections \(main, second\)"):
        await connections.default_for("ledger")
    with pytest.raises(UnknownConnection, match="no connection for connector 'other'"):
        await connections.default_for("other")
