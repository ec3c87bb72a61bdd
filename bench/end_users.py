"""Many end users in one store: resolving an end user's connection for a call, and listing
an end user's tools, with 10,000 end users x 3 connections against one end user.

Each measured operation is cold — what happens the first time an end user acts after the
caches expired: resolving is the end user's default connection of a connector looked up
(one indexed query), read, decrypted and rendered; listing is that end user's tool catalog
built from their connections. End users are picked at random from the population, so
nothing a query touched before helps the next. The one-user case runs the same operations
in the same process, alternating in chunks; the figures are the many-user rate as a ratio
of the one-user rate (the issue asks for at least 0.9).

    python bench/end_users.py            # 10,000 end users, 3,000 operations per case
    python bench/end_users.py --quick    # 1,000 end users, under 30 s, same output shape

``PATCHWIRE_BENCH_POSTGRES_URL`` runs the same on PostgreSQL (its public schema is
dropped first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import create_async_engine

from patchwire import Patchwire, Settings, ToolInvoker
from patchwire.auth import connection_aad
from patchwire.sandbox import SANDBOX_CREDENTIALS
from patchwire.store import normalize_url, utcnow
from patchwire.store.models import ConnectionRow

POSTGRES_ENV = "PATCHWIRE_BENCH_POSTGRES_URL"
#: the connectors each end user holds one connection of, and their plain settings
CONNECTORS = ("shop", "helpdesk", "calendar")
BATCH = 2_000


async def populate(pw: Patchwire, prefix: str, end_users: int) -> list[str]:
    """``end_users`` end users with one connection of each of CONNECTORS, inserted in
    batches (encrypted as ``add_connection`` would)."""
    table = cast(Table, ConnectionRow.__table__)
    names = [f"{prefix}{i:05d}" for i in range(end_users)]
    rows: list[dict[str, Any]] = []
    now = utcnow()

    async def flush() -> None:
        async with pw.store.engine.begin() as conn:
            await conn.execute(insert(table), rows)
        rows.clear()

    for user in names:
        for connector in CONNECTORS:
            conn_id = str(uuid.uuid4())
            secrets = {k: v for k, v in SANDBOX_CREDENTIALS[connector].items()
                       if pw.connectors.get(connector).settings[k].secret}
            plain = {k: v for k, v in SANDBOX_CREDENTIALS[connector].items()
                     if k not in secrets}
            rows.append({
                "id": conn_id, "name": f"{user}-{connector}", "connector": connector,
                "end_user": user, "label": None, "is_default": True,
                "settings": {"sandbox_url": "http://127.0.0.1:9", **plain},
                "secrets": pw.vault.encrypt_json(secrets, aad=connection_aad(conn_id)),
                "created_at": now, "updated_at": now})
            if len(rows) >= BATCH:
                await flush()
    if rows:
        await flush()
    return names


async def rate(n: int, one: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await one()
    return n / (time.perf_counter() - started)


async def measure(pw: Patchwire, many: list[str], single: list[str], operations: int,
                  rounds: int = 6) -> dict[str, float]:
    rng = random.Random(16)
    invoker = ToolInvoker(pw)

    def resolver(population: list[str]) -> Callable[[], Awaitable[object]]:
        async def one() -> object:
            pw.calls.forget()  # cold: as after the connection cache's TTL
            connector = rng.choice(CONNECTORS)
            return await pw.calls.resolve_connection(f"{connector}.{ACTIONS[connector]}",
                                                     end_user=rng.choice(population))
        return one

    def lister(population: list[str]) -> Callable[[], Awaitable[object]]:
        async def one() -> object:
            end_user = rng.choice(population)
            # cold: the end user's invoker dropped, as the invoker's cache of the most
            # recently active end users does once more of them act (a private handle: the
            # one-user case would otherwise always find its catalog built)
            invoker._scoped.pop(end_user, None)
            return await invoker.for_end_user(end_user).catalog()
        return one

    figures: dict[str, float] = {}
    for what, make in (("resolve", resolver), ("list_tools", lister)):
        for population in (single, many):  # warm both
            await rate(50, make(population))
        chunk = max(operations // rounds, 1)
        spent_single = spent_many = 0.0
        for _ in range(rounds):
            spent_single += chunk / await rate(chunk, make(single))
            spent_many += chunk / await rate(chunk, make(many))
        single_rate, many_rate = chunk * rounds / spent_single, chunk * rounds / spent_many
        print(f"{what:>10}: 1 end user {single_rate:9.1f}/s   {len(many):,} end users "
              f"{many_rate:9.1f}/s   ratio {many_rate / single_rate:.3f}", flush=True)
        figures[f"{what}_one_user_per_s"] = round(single_rate, 1)
        figures[f"{what}_many_users_per_s"] = round(many_rate, 1)
        figures[f"{what}_ratio"] = round(many_rate / single_rate, 3)
    return figures


#: a read action of each connector (what a call resolves the connection for)
ACTIONS = {"shop": "get_order", "helpdesk": "get_ticket", "calendar": "get_appointment"}


async def run(database_url: str, home: Path, end_users: int,
              operations: int) -> dict[str, float]:
    settings = Settings(home=home, database_url=database_url, connector_paths=(),
                        allow_networks=("127.0.0.1",))
    async with Patchwire(settings) as pw:
        started = time.perf_counter()
        many = await populate(pw, "u", end_users)
        single = await populate(pw, "solo", 1)
        print(f"populated {len(many) * len(CONNECTORS):,} connections in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        return await measure(pw, many, single, operations)


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            await conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        await engine.dispose()


async def main(end_users: int, operations: int) -> dict[str, Any]:
    result: dict[str, Any] = {"end_users": end_users}
    with tempfile.TemporaryDirectory() as tmp:
        print("sqlite:", flush=True)
        sqlite = await run(f"sqlite+aiosqlite:///{Path(tmp) / 'pw.db'}", Path(tmp),
                           end_users, operations)
        result.update({f"sqlite_{k}": v for k, v in sqlite.items()})
        pg_url = os.environ.get(POSTGRES_ENV)
        if pg_url:
            print("postgres:", flush=True)
            await reset_postgres(pg_url)
            pg = await run(pg_url, Path(tmp), end_users, operations)
            result.update({f"postgres_{k}": v for k, v in pg.items()})
        else:
            print(f"postgres: skipped ({POSTGRES_ENV} not set)", flush=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--end-users", type=int, default=None)
    args = parser.parse_args()
    population = args.end_users or (1_000 if args.quick else 10_000)
    print(json.dumps(asyncio.run(main(population, 600 if args.quick else 3_000))))
