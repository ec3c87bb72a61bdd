"""Rate-limit leases in the store: the transaction that grants a batch of tokens.

The invariant (issue 3): however many processes share a limit of N per P seconds, no
window of P seconds sees more than N uses. Each lease row says "up to ``tokens`` uses,
none after ``ends_at``" (the expiry while the lease is open; its last use once the
holder settles it). A grant counts every row with ``ends_at + P > now`` and adds at most
``N - counted`` tokens. Why that suffices: take any window W and, among the leases with a
use in W, the one granted last (L). Every other such lease was in the table when L was
granted, and since it has a use in W its ``ends_at`` is at least W's start, which is
more than L's grant time minus P, so it was counted. The uses in W are therefore at
most what L's grant saw plus L's own tokens: at most N.

Pauses (``rate_limit_pauses``): when an upstream answers 429 or ``X-RateLimit-Remaining:
0``, the process that saw it records until when the bucket is paused; a grant for that
bucket checks the row in the same transaction and grants nothing before then, so every
process stops at its next lease (within a lease's life, at most a second) without any
store round trip on the call path.

Times are wall-clock seconds supplied by the caller (the same ``time.time()`` every
process on a host shares); the grant time is taken before waiting for the lock, so a
lease's uses never precede it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from patchwire.store._group_commit import immediate

__all__ = ["LeaseRequest", "LeaseResult", "Settlement", "Window", "decide", "lease_async",
           "lease_sqlite", "pause_async", "pause_sqlite", "settle_async", "settle_sqlite"]

#: what a lease transaction answers: tokens granted, the wall time the first token frees
#: when none were, and the wall time a pause of the bucket ends (-inf: not paused)
LeaseResult = tuple[int, float, float]


@dataclass(frozen=True, slots=True)
class Window:
    """One declared limit as the store knows it: ``limit`` uses per ``period`` seconds."""

    key: str
    limit: int
    period: float


@dataclass(frozen=True, slots=True)
class Settlement:
    """A lease its holder is done with: ``used`` tokens, the last at ``last_used``."""

    lease_id: str
    used: int
    last_used: float


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    windows: tuple[Window, ...]
    holder: str
    lease_id: str
    want: int
    now: float
    ttl: float
    settle: tuple[Settlement, ...] = ()
    #: the bucket whose recorded pause (if any) this grant honours
    pause: str | None = None


_SETTLE_UPDATE = ("UPDATE rate_limit_leases SET tokens = :used, ends_at = :ends_at "
                  "WHERE lease_id = :lease_id AND holder = :holder")
_SETTLE_DELETE = "DELETE FROM rate_limit_leases WHERE lease_id = :lease_id AND holder = :holder"
# ``ends_at + period <= now`` rather than ``ends_at <= now - period``: the retry time
# handed out is computed as ``ends_at + period`` too, so both sides round identically.
_EXPIRE = ("DELETE FROM rate_limit_leases "
           "WHERE bucket = :bucket AND ends_at + :period <= :now")
_COUNT = "SELECT tokens, ends_at FROM rate_limit_leases WHERE bucket = :bucket ORDER BY ends_at"
_INSERT = ("INSERT INTO rate_limit_leases "
           "(bucket, lease_id, holder, tokens, granted_at, ends_at) "
           "VALUES (:bucket, :lease_id, :holder, :tokens, :now, :ends_at)")


_PAUSED = ("SELECT paused_until FROM rate_limit_pauses "
           "WHERE bucket = :bucket AND paused_until > :now")
_PAUSE_EXPIRE = "DELETE FROM rate_limit_pauses WHERE paused_until <= :now"
# keeps the later of two pauses (CASE rather than MAX/GREATEST: both backends read it)
_PAUSE_UPSERT = ("INSERT INTO rate_limit_pauses (bucket, paused_until) VALUES (:bucket, :until) "
                 "ON CONFLICT (bucket) DO UPDATE SET paused_until = CASE "
                 "WHEN excluded.paused_until > rate_limit_pauses.paused_until "
                 "THEN excluded.paused_until ELSE rate_limit_pauses.paused_until END")
_NOT_PAUSED = float("-inf")


def decide(windows: Sequence[Window], counted: Sequence[Sequence[tuple[int, float]]],
           want: int, now: float) -> tuple[int, float]:
    """Tokens to grant and, when none can be, the wall time the first one frees.

    ``counted[i]`` holds (tokens, ends_at) of the leases still counting in window i,
    oldest ``ends_at`` first.
    """
    grant = want
    retry_at = now
    for w, rows in zip(windows, counted, strict=True):
        in_use = sum(t for t, _ in rows)
        free = w.limit - in_use
        if free < grant:
            grant = max(0, free)
        if free < 1:
            # leases stop counting in ends_at order; find the one whose leaving frees a token
            excess = in_use - w.limit + 1
            for tokens, ends_at in rows:
                excess -= tokens
                if excess <= 0:
                    retry_at = max(retry_at, ends_at + w.period)
                    break
    return grant, retry_at


def _settle_params(holder: str, s: Settlement) -> dict[str, object]:
    return {"lease_id": s.lease_id, "holder": holder, "used": s.used, "ends_at": s.last_used}


def advisory_key(bucket: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(bucket.encode(), digest_size=8).digest(), "big",
                          signed=True)


# -- SQLite: a plain connection in a worker thread ---------------------------------------

def settle_sqlite(db: sqlite3.Connection, holder: str, settle: Sequence[Settlement]) -> None:
    for s in settle:
        db.execute(_SETTLE_UPDATE if s.used else _SETTLE_DELETE, _settle_params(holder, s))


def pause_sqlite(db: sqlite3.Connection, bucket: str, until: float, now: float) -> None:
    with immediate(db):
        db.execute(_PAUSE_EXPIRE, {"now": now})
        db.execute(_PAUSE_UPSERT, {"bucket": bucket, "until": until})


def lease_sqlite(db: sqlite3.Connection, req: LeaseRequest) -> LeaseResult:
    """Run in a worker thread: BEGIN IMMEDIATE takes the database's write lock (waiting
    up to busy_timeout), which serialises grants across processes."""
    with immediate(db):
        settle_sqlite(db, req.holder, req.settle)
        if req.pause is not None:
            row = db.execute(_PAUSED, {"bucket": req.pause, "now": req.now}).fetchone()
            if row is not None:
                return 0, float(row[0]), float(row[0])
        counted = []
        for w in req.windows:
            db.execute(_EXPIRE, {"bucket": w.key, "period": w.period, "now": req.now})
            counted.append(db.execute(_COUNT, {"bucket": w.key}).fetchall())
        grant, retry_at = decide(req.windows, counted, req.want, req.now)
        if grant:
            for w in req.windows:
                db.execute(_INSERT, {"bucket": w.key, "lease_id": req.lease_id,
                                     "holder": req.holder, "tokens": grant, "now": req.now,
                                     "ends_at": req.now + req.ttl})
    return grant, retry_at, _NOT_PAUSED


# -- PostgreSQL (and in-memory SQLite): the async engine ---------------------------------

async def settle_async(conn: AsyncConnection, holder: str,
                       settle: Sequence[Settlement]) -> None:
    for s in settle:
        await conn.execute(text(_SETTLE_UPDATE if s.used else _SETTLE_DELETE),
                           _settle_params(holder, s))


async def pause_async(conn: AsyncConnection, bucket: str, until: float, now: float) -> None:
    await conn.execute(text(_PAUSE_EXPIRE), {"now": now})
    await conn.execute(text(_PAUSE_UPSERT), {"bucket": bucket, "until": until})


async def lease_async(conn: AsyncConnection, req: LeaseRequest) -> LeaseResult:
    """Inside the caller's transaction. On PostgreSQL a transaction-scoped advisory lock
    per limit serialises grants of that limit only (taken in key order: no deadlock);
    on SQLite the caller began the transaction IMMEDIATE."""
    if conn.dialect.name == "postgresql":
        for key in sorted(advisory_key(w.key) for w in req.windows):
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    await settle_async(conn, req.holder, req.settle)
    if req.pause is not None:
        until = (await conn.execute(text(_PAUSED), {"bucket": req.pause, "now": req.now})
                 ).scalar()
        if until is not None:
            return 0, float(until), float(until)
    counted: list[list[tuple[int, float]]] = []
    for w in req.windows:
        await conn.execute(text(_EXPIRE), {"bucket": w.key, "period": w.period, "now": req.now})
        rows = (await conn.execute(text(_COUNT), {"bucket": w.key})).all()
        counted.append([(int(r[0]), float(r[1])) for r in rows])
    grant, retry_at = decide(req.windows, counted, req.want, req.now)
    if grant:
        for w in req.windows:
            await conn.execute(text(_INSERT), {
                "bucket": w.key, "lease_id": req.lease_id, "holder": req.holder,
                "tokens": grant, "now": req.now, "ends_at": req.now + req.ttl})
    return grant, retry_at, _NOT_PAUSED
