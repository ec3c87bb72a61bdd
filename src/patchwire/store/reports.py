"""Read-only aggregations of the call log and the runs, for the dashboard: quality per
connection, the call log over time, runs per status, the definition a run started with.

Every query is bounded: counts are aggregated in the database over an indexed time range
(``calls.started_at``, ``flow_runs.created_at``), and anything fetched row by row has a
limit, so a page costs about the same with 100 or 10 million rows in the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, case, func, select

from patchwire.store.core import Store
from patchwire.store.models import CallRow, FlowRunRow, FlowVersionRow

__all__ = [
    "LATENCY_SAMPLE",
    "CallStats",
    "ChartPoint",
    "ReportRepository",
    "percentile",
]

_CALLS = cast(Table, CallRow.__table__)
_RUNS = cast(Table, FlowRunRow.__table__)
_VERSIONS = cast(Table, FlowVersionRow.__table__)

#: latencies fetched per connection for its percentiles: exact below this many calls in the
#: window, from the newest this many above it (the page says so)
LATENCY_SAMPLE = 10_000


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


class _CallRates:
    """The rates of a count of calls: how many succeeded, how many retries each took."""

    calls: int
    ok: int
    attempts: int

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.calls if self.calls else None

    @property
    def retries_per_call(self) -> float | None:
        # every attempt after a call's first is a retry
        return (self.attempts - self.calls) / self.calls if self.calls else None


@dataclass(frozen=True)
class CallStats(_CallRates):
    """The quality signals of one connection (or connector, ``connection`` None) in a
    window of the call log."""

    connector: str
    connection: str | None
    calls: int
    ok: int
    attempts: int
    p50_ms: float | None
    p95_ms: float | None
    sampled: bool
    last_call_at: datetime | None
    #: calls that waited for a rate limit, the concurrency cap or a 429 pause
    waited: int = 0
    #: their waits added up (milliseconds)
    wait_ms: float = 0.0

    @property
    def mean_wait_ms(self) -> float | None:
        """The mean wait of the calls that waited (None when none did)."""
        return self.wait_ms / self.waited if self.waited else None


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class ChartPoint(_CallRates):
    """One time bucket of the call log."""

    start: datetime
    calls: int
    ok: int
    attempts: int
    avg_ms: float | None
    max_ms: float | None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class ReportRepository:
    """The aggregations the dashboard shows, over the store's call log and runs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def call_stats(self, since: datetime, *,
                         sample: int = LATENCY_SAMPLE) -> list[CallStats]:
        """Per (connector, connection) since ``since``: exact counts (one GROUP BY over the
        ``started_at`` index range) and p50/p95 latency from the newest ``sample`` calls."""
        window = _CALLS.c.started_at >= since
        ok = func.sum(case((_CALLS.c.status == "ok", 1), else_=0))
        waited = func.sum(case((_CALLS.c.rate_limit_wait_ms > 0, 1), else_=0))
        stmt = (select(_CALLS.c.connector, _CALLS.c.connection, func.count(), ok,
                       func.sum(_CALLS.c.attempts), func.max(_CALLS.c.started_at), waited,
                       func.sum(_CALLS.c.rate_limit_wait_ms))
                .where(window).group_by(_CALLS.c.connector, _CALLS.c.connection))
        out: list[CallStats] = []
        with self._store._errors("aggregate the call log"):
            async with self._store.engine.connect() as conn:
                groups = (await conn.execute(stmt)).all()
                for connector, connection, calls, n_ok, attempts, last, n_waited, wait in groups:
                    # SQLite returns max() of a timestamp column as text: parse it back
                    last_at = _as_datetime(last)
                    where = [window, _CALLS.c.connector == connector,
                             _CALLS.c.connection.is_(None) if connection is None
                             else _CALLS.c.connection == connection]
                    latencies = sorted(float(v) for (v,) in (await conn.execute(
                        select(_CALLS.c.latency_ms).where(*where)
                        .order_by(_CALLS.c.started_at.desc()).limit(sample))).all())
                    out.append(CallStats(
                        connector=connector, connection=connection, calls=int(calls),
                        ok=int(n_ok or 0), attempts=int(attempts or 0),
                        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
                        sampled=int(calls) > len(latencies), last_call_at=last_at,
                        waited=int(n_waited or 0), wait_ms=float(wait or 0.0)))
        out.sort(key=lambda s: (s.connector, s.connection or ""))
        return out

    async def call_series(self, since: datetime, until: datetime, *, buckets: int = 24,
                          connector: str | None = None) -> list[ChartPoint]:
        """The call log in ``buckets`` equal slices of [since, until): one GROUP BY whose
        bucket is a CASE over the slice bounds, so it works alike on SQLite and PostgreSQL
        (neither shares a portable epoch/floor function with the other)."""
        step = (until - since) / buckets
        bounds = [since + step * (i + 1) for i in range(buckets)]
        bucket = case(*[(_CALLS.c.started_at < b, i) for i, b in enumerate(bounds)],
                      else_=buckets - 1).label("bucket")
        ok = func.sum(case((_CALLS.c.status == "ok", 1), else_=0))
        where = [_CALLS.c.started_at >= since, _CALLS.c.started_at < until]
        if connector is not None:
            where.append(_CALLS.c.connector == connector)
        stmt = (select(bucket, func.count(), ok, func.sum(_CALLS.c.attempts),
                       func.avg(_CALLS.c.latency_ms), func.max(_CALLS.c.latency_ms))
                .where(*where).group_by(bucket))
        with self._store._errors("chart the call log"):
            async with self._store.engine.connect() as conn:
                rows = {int(r[0]): r for r in (await conn.execute(stmt)).all()}
        points: list[ChartPoint] = []
        for i in range(buckets):
            row = rows.get(i)
            if row is None:
                points.append(ChartPoint(since + step * i, 0, 0, 0, None, None))
            else:
                points.append(ChartPoint(since + step * i, int(row[1]), int(row[2] or 0),
                                         int(row[3] or 0), _float(row[4]), _float(row[5])))
        return points

    async def run_status_counts(self, since: float | None = None) -> dict[str, int]:
        """Runs per status (created since ``since``, epoch seconds)."""
        stmt = select(_RUNS.c.status, func.count()).group_by(_RUNS.c.status)
        if since is not None:
            stmt = stmt.where(_RUNS.c.created_at >= since)
        with self._store._errors("count runs"):
            async with self._store.engine.connect() as conn:
                return {str(s): int(n) for s, n in (await conn.execute(stmt)).all()}

    async def flow_definition(self, flow_id: str, version: int) -> dict[str, Any] | None:
        """The definition a run started with (runs keep the version they began)."""
        stmt = (select(_VERSIONS.c.definition)
                .where(and_(_VERSIONS.c.flow_id == flow_id, _VERSIONS.c.version == version))
                .order_by(_VERSIONS.c.created_at.desc()).limit(1))
        with self._store._errors(f"read flow {flow_id} version {version}"):
            async with self._store.engine.connect() as conn:
                found = await conn.scalar(stmt)
        return dict(found) if isinstance(found, Mapping) else None
