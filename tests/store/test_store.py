"""The store on both backends: migrations, connections, the call log, secrecy at rest."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import UniqueConstraint, inspect, text

from patchwire.auth import Vault, connection_aad, reencrypt_connections
from patchwire.errors import ConnectionExists, StoreError, UnknownConnection
from patchwire.store import CallRecord, ConnectionRecord, Store, normalize_url
from patchwire.store.models import Base


def call(
    n: int,
    *,
    action: str = "shop.get_order",
    connection: str | None = "acme-shop",
    started_at: datetime | None = None,
    status: str = "ok",
) -> CallRecord:
    return CallRecord(
        id=f"call-{n:05d}",
        request_id=f"req-{n}",
        action=action,
        connector=action.split(".")[0],
        connection=connection,
        status=status,
        http_status=200 if status == "ok" else 503,
        latency_ms=12.5,
        attempts=1 if status == "ok" else 3,
        error_class=None if status == "ok" else "UpstreamError",
        error_message=None if status == "ok" else "upstream answered 503",
        started_at=started_at or datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
    )


async def test_open_applies_migrations_and_reopening_is_a_no_op(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        await store.add_connection(ConnectionRecord.new("keep-me", "shop"))
    assert {"connections", "calls", "alembic_version", "rate_limit_pauses", "approvals",
            "tool_calls", "tool_settings"} <= tables
    assert version == "0015"

    async with await Store.open(store_url) as store:
        assert [c.name for c in await store.list_connections()] == ["keep-me"]
        async with store.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [v[0] for v in versions] == ["0015"]


async def test_concurrent_opens_of_a_new_store_migrate_it_once(store_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(store_url) for _ in range(4)))
    try:
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [v[0] for v in versions] == ["0015"]
    finally:
        for opened in stores:
            await opened.close()


async def test_migrated_schema_has_every_model_column_and_index(store: Store) -> None:
    def describe(sync_conn):  # type: ignore[no-untyped-def]
        insp = inspect(sync_conn)
        return {
            t: (
                {c["name"] for c in insp.get_columns(t)},
                # PostgreSQL also lists the index backing a unique constraint
                {i["name"] for i in insp.get_indexes(t) if not i.get("duplicates_constraint")},
                {u["name"] for u in insp.get_unique_constraints(t)},
            )
            for t in Base.metadata.tables
        }

    async with store.engine.connect() as conn:
        actual = await conn.run_sync(describe)
    for table in Base.metadata.sorted_tables:
        columns, indexes, uniques = actual[table.name]
        assert columns == {c.name for c in table.columns}
        assert indexes == {i.name for i in table.indexes}
        assert uniques == {c.name for c in table.constraints if isinstance(c, UniqueConstraint)}


async def test_sqlite_store_runs_in_wal_mode_and_creates_its_directory(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "patchwire.db"
    async with await Store.open(f"sqlite:///{db}") as store:
        assert store.dialect == "sqlite"
        async with store.engine.connect() as conn:
            mode = await conn.scalar(text("PRAGMA journal_mode"))
            fks = await conn.scalar(text("PRAGMA foreign_keys"))
            busy = await conn.scalar(text("PRAGMA busy_timeout"))
    assert db.is_file()
    assert mode == "wal"
    assert fks == 1
    assert busy and busy > 0


def test_plain_postgres_and_sqlite_urls_get_the_async_drivers() -> None:
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(StoreError, match="psycopg2"):
        normalize_url("postgresql+psycopg2://u:p@h/db")
    with pytest.raises(StoreError, match="mysql"):
        normalize_url("mysql://u:p@h/db")


async def test_unreachable_postgres_raises_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        await Store.open("postgresql://patchwire:sup3r-s3cret-pw@127.0.0.1:1/patchwire")
    assert "sup3r-s3cret-pw" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


async def test_connections_can_be_added_fetched_listed_updated_and_removed(store: Store) -> None:
    shop = ConnectionRecord.new("acme-shop", "shop", end_user="acme", settings={"region": "eu"})
    desk = ConnectionRecord.new("acme-desk", "helpdesk", end_user="acme")
    other = ConnectionRecord.new("bob-shop", "shop", end_user="user:123")
    for rec in (shop, desk, other):
        await store.add_connection(rec)

    got = await store.get_connection("acme-shop")
    assert got == shop
    assert got.created_at.tzinfo is not None

    assert [c.name for c in await store.list_connections()] == [
        "acme-desk",
        "acme-shop",
        "bob-shop",
    ]
    assert [c.name for c in await store.list_connections(connector="shop")] == [
        "acme-shop",
        "bob-shop",
    ]
    assert [c.name for c in await store.list_connections(end_user="acme")] == [
        "acme-desk",
        "acme-shop",
    ]
    assert [c.name for c in await store.list_connections("shop", "user:123")] == ["bob-shop"]

    updated = await store.update_connection(
        "acme-shop", settings={"region": "us"}, secrets="pwv1.k.x"
    )
    assert updated.settings == {"region": "us"}
    assert updated.secrets == "pwv1.k.x"
    assert updated.updated_at > shop.updated_at
    assert updated.created_at == shop.created_at
    assert await store.get_connection("acme-shop") == updated

    await store.remove_connection("acme-desk")
    assert [c.name for c in await store.list_connections()] == ["acme-shop", "bob-shop"]


async def test_adding_a_duplicate_name_raises_connection_exists(store: Store) -> None:
    await store.add_connection(ConnectionRecord.new("acme-shop", "shop"))
    with pytest.raises(ConnectionExists, match="acme-shop"):
        await store.add_connection(ConnectionRecord.new("acme-shop", "helpdesk"))
    assert len(await store.list_connections()) == 1


async def test_unknown_connection_names_raise_unknown_connection(store: Store) -> None:
    with pytest.raises(UnknownConnection, match="nope"):
        await store.get_connection("nope")
    with pytest.raises(UnknownConnection, match="nope"):
        await store.remove_connection("nope")
    with pytest.raises(UnknownConnection, match="nope"):
        await store.update_connection("nope", settings={})


async def test_calls_are_recorded_in_bulk_and_listed_newest_first(store: Store) -> None:
    records = [call(n) for n in range(50)]
    records += [
        call(100 + n, action="desk.create_ticket", connection=None, status="error")
        for n in range(5)
    ]
    await store.record_calls(records)
    await store.record_calls([])

    assert await store.count_calls() == 55
    assert await store.count_calls(action="desk.create_ticket") == 5
    assert await store.count_calls(connection="acme-shop") == 50
    assert await store.count_calls(action="desk.create_ticket", connection="acme-shop") == 0

    newest = await store.list_calls(limit=3)
    assert [c.id for c in newest] == ["call-00104", "call-00103", "call-00102"]
    assert newest[0] == records[-1]
    shop_calls = await store.list_calls(action="shop.get_order", limit=100)
    assert len(shop_calls) == 50
    assert shop_calls[0].started_at > shop_calls[-1].started_at
    assert shop_calls[0].started_at.tzinfo is not None


async def test_calls_with_other_timezones_are_ordered_by_instant(store: Store) -> None:
    plus2 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    await store.record_calls(
        [
            call(1, started_at=plus2),  # 12:00 UTC written as 14:00+02:00
            call(2, started_at=datetime(2025, 1, 1, 13, 0, tzinfo=UTC)),
        ]
    )
    listed = await store.list_calls()
    assert [c.id for c in listed] == ["call-00002", "call-00001"]
    assert listed[1].started_at == plus2


async def test_using_a_closed_store_raises_store_error(store_url: str) -> None:
    store = await Store.open(store_url)
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.list_connections()


async def test_rotation_then_reencrypt_moves_every_secret_to_the_new_key(
    store: Store, tmp_path: Path
) -> None:
    vault = Vault.from_key_file(tmp_path / "home" / "secret.key")
    old_kid = vault.active_key_id
    names = ["a", "b", "c"]
    for name in names:
        rec = ConnectionRecord.new(name, "shop")
        token = vault.encrypt_json({"api_key": f"key-{name}"}, aad=connection_aad(rec.id))
        await store.add_connection(dataclasses.replace(rec, secrets=token))
    await store.add_connection(ConnectionRecord.new("no-secrets", "shop"))

    new_kid = vault.rotate()
    assert new_kid != old_kid
    # before re-encryption old tokens still decrypt, and are flagged
    for rec in await store.list_connections():
        if rec.secrets:
            assert vault.needs_reencrypt(rec.secrets)
            assert vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id))["api_key"]

    assert await reencrypt_connections(store, vault) == 3
    assert await reencrypt_connections(store, vault) == 0
    for rec in await store.list_connections():
        if rec.name == "no-secrets":
            assert rec.secrets == ""
            continue
        assert Vault.token_key_id(rec.secrets) == new_kid
        assert vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id)) == {
            "api_key": f"key-{rec.name}"
        }


async def test_a_secret_canary_never_appears_in_the_database(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    canary = f"CANARY-{uuid.uuid4().hex}"
    vault = Vault.from_key_file(tmp_path / "home" / "secret.key")
    rec = ConnectionRecord.new(
        "acme-shop", "shop", end_user="acme", settings={"base_url": "https://shop.example"}
    )
    rec = dataclasses.replace(
        rec, secrets=vault.encrypt_json({"api_key": canary}, aad=connection_aad(rec.id))
    )
    await store.add_connection(rec)
    await store.update_connection("acme-shop", settings={"base_url": "https://shop2.example"})
    await store.record_calls([call(1)])
    stored = await store.get_connection("acme-shop")
    assert vault.decrypt_json(stored.secrets, aad=connection_aad(stored.id)) == {"api_key": canary}

    if store.dialect == "sqlite":
        db = Path(normalize_url(store_url).database or "")
        files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
        assert db in files
        for path in files:  # the database, its -wal and -shm
            assert canary.encode() not in path.read_bytes(), path
        await store.close()
        for path in db.parent.iterdir():
            assert canary.encode() not in path.read_bytes(), path
    else:
        async with store.engine.connect() as conn:
            tables = (
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                )
                .scalars()
                .all()
            )
            dumped = []
            for table in tables:
                rows = await conn.execute(text(f'SELECT t::text FROM "{table}" AS t'))
                dumped.extend(r[0] for r in rows)
        assert any("acme-shop" in row for row in dumped)  # the dump does see the data
        assert not any(canary in row for row in dumped)


def test_the_fast_sqlite_timestamp_reads_back_as_the_same_instant() -> None:
    from sqlalchemy.dialects.sqlite import aiosqlite

    from patchwire.store.core import sqlite_timestamp
    from patchwire.store.models import CallRow

    dialect = aiosqlite.dialect()
    read = CallRow.__table__.c.started_at.type.dialect_impl(dialect).result_processor(dialect, None)
    assert read is not None
    for value in (
        datetime(2026, 11, 23, 22, 1, 2, 345678, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 6, 1, 14, 0, 0, 7, tzinfo=timezone(timedelta(hours=2))),
    ):
        text = sqlite_timestamp(value)
        assert read(text) == value
        assert len(text) == len("2026-01-01 00:00:00.000000")  # fixed width: text order is time order
