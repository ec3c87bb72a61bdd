"""Read-only aggregations of the call log and the runs, for the dashboard: the overview's
quality per operator connection with every end user's connections summed up per connector,
each end user's connections with their health, the call log over time, runs per status, the
definition a run started with.

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

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from patchwire.errors import (
    AuthError,
    BlockedDestinationError,
    CallError,
    CallTimeoutError,
    CircuitOpenError,
    ConflictError,
    CustomCodeError,
    InputValidationError,
    NotFoundError,
    RateLimitedError,
    RequestRenderError,
    ResponseMappingError,
    TransportError,
    UpstreamError,
    UpstreamValidationError,
)
from patchwire.store.core import Store
from patchwire.store.models import CallRow, ConnectionRow, FlowRunRow, FlowVersionRow
from patchwire.store.records import CallRecord, ConnectionRecord

__all__ = [
    "FAILURE_CLASSES",
    "FAILURE_KIND",
    "LATENCY_SAMPLE",
    "REMOVED_SHOWN",
    "CallStats",
    "ChartPoint",
    "ConnectionHealth",
    "ConnectionsSummary",
    "Failures",
    "HealthPage",
    "LastError",
    "OverviewReport",
    "ReportRepository",
    "failure_kind",
    "percentile",
]

_CALLS = cast(Table, CallRow.__table__)
_CONNECTIONS = cast(Table, ConnectionRow.__table__)
_RUNS = cast(Table, FlowRunRow.__table__)
_VERSIONS = cast(Table, FlowVersionRow.__table__)

#: latencies fetched per connection for its percentiles: exact below this many calls in the
#: window, from the newest this many above it (the page says so)
LATENCY_SAMPLE = 10_000
#: removed connections the overview names one by one (those called last); the calls of the
#: others are summed up per connector
REMOVED_SHOWN = 20


#: Who has to act on a failed call, by the error classes of ``patchwire.errors`` (the call
#: log's ``error_class`` is the error's code): the end user must authorise again (auth), the
#: caller must change the request (client), the upstream is failing or pushing back
#: (upstream), the network between is (transport). Anything else counts as "other".
FAILURE_CLASSES: Mapping[str, tuple[type[CallError], ...]] = {
    "auth": (AuthError,),
    # the deployment's side: its request, its definitions, its own custom code
    "client": (NotFoundError, ConflictError, UpstreamValidationError, InputValidationError,
               RequestRenderError, CustomCodeError),
    "upstream": (UpstreamError, RateLimitedError, CircuitOpenError, ResponseMappingError),
    "transport": (TransportError, CallTimeoutError, BlockedDestinationError),
}
#: error code (the call log's ``error_class``) -> its kind
FAILURE_KIND: Mapping[str, str] = {cls.code: kind for kind, classes in FAILURE_CLASSES.items()
                                  for cls in classes}


def failure_kind(error_class: str | None) -> str:
    """``auth``, ``client``, ``upstream``, ``transport`` or ``other`` (see FAILURE_CLASSES)."""
    return FAILURE_KIND.get(error_class or "", "other")


@dataclass(frozen=True)
class Failures:
    """Failed calls by kind (see FAILURE_CLASSES)."""

    auth: int = 0
    client: int = 0
    upstream: int = 0
    transport: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.auth + self.client + self.upstream + self.transport + self.other

    def items(self) -> list[tuple[str, int]]:
        """(kind, count) of every kind, ``other`` only when there are some."""
        counts = [("auth", self.auth), ("client", self.client),
                  ("upstream", self.upstream), ("transport", self.transport)]
        return [*counts, ("other", self.other)] if self.other else counts

    @classmethod
    def of(cls, failed: int, by_kind: Sequence[Any]) -> Failures:
        """From the failed calls and the sums of :func:`_kind_sums` (the rest: other)."""
        auth, client, upstream, transport = (int(v or 0) for v in by_kind)
        return cls(auth, client, upstream, transport,
                   max(0, failed - auth - client - upstream - transport))


def _kind_sums(error_class: ColumnElement[Any] = _CALLS.c.error_class,
               ) -> list[ColumnElement[Any]]:
    """Per kind of FAILURE_CLASSES (in its order), how many calls of a group failed so."""
    return [func.sum(case((error_class.in_([c.code for c in classes]), 1), else_=0))
            for classes in FAILURE_CLASSES.values()]


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
    #: the failed calls by kind: why the success rate is what it is
    failures: Failures = Failures()

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


@dataclass(frozen=True)
class LastError:
    """A connection's latest failed call: its error class (the error's code), the message
    as the call log keeps it (redacted when recorded) and when it started."""

    error_class: str | None
    message: str | None
    at: datetime | None

    @property
    def kind(self) -> str:
        return failure_kind(self.error_class)


@dataclass(frozen=True)
class ConnectionHealth(_CallRates):
    """One connection (its end user, connector, label and flags) with its calls in a
    window: how many, how many succeeded, the p95 latency, the failures by kind, the last
    one. ``record`` holds the encrypted secrets as stored: only the auth package's
    TokenStates opens them, to say what may be shown of a token."""

    record: ConnectionRecord
    calls: int
    ok: int
    attempts: int
    p95_ms: float | None
    failures: Failures
    last_call_at: datetime | None
    last_error: LastError | None


@dataclass(frozen=True)
class HealthPage:
    """A page of :meth:`ReportRepository.connection_health`; ``more``: a next one exists."""

    rows: list[ConnectionHealth]
    offset: int
    more: bool


@dataclass(frozen=True)
class ConnectionsSummary:
    """Many connections of one connector in one row: the end users' (``connections`` of
    them, held by ``end_users`` end users), or removed connections beyond those the
    overview names (``end_users`` 0); ``stats``: their calls in the window summed up
    (``connection`` None; None when there were none)."""

    connector: str
    connections: int
    end_users: int
    stats: CallStats | None


@dataclass(frozen=True)
class OverviewReport:
    """What the overview shows of connections, bounded however many end users there are:
    the operator's connections (``end_user`` None) one by one, the end users' summed up per
    connector."""

    #: the operator's connections, by connector and name (encrypted secrets as stored)
    operator_connections: list[ConnectionRecord]
    #: per (connector, connection): the operator's connections that were called, calls
    #: made without a connection (``connection`` None) and the removed connections called
    #: last (at most ``removed_shown`` of them)
    stats: list[CallStats]
    #: per connector: the end users' connections and their calls
    end_users: list[ConnectionsSummary]
    #: per connector: the calls of the removed connections beyond those in ``stats``
    removed: list[ConnectionsSummary]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class ReportRepository:
    """The aggregations the dashboard shows, over the store's call log and runs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def overview(self, since: datetime, *, removed_shown: int = REMOVED_SHOWN,
                       sample: int = LATENCY_SAMPLE) -> OverviewReport:
        """The overview's connections and their calls since ``since``: the operator's
        connections with their stats one by one; every end user's connections summed up
        per connector (how many, of how many end users, and their calls); the removed
        connections called last one by one, the rest per connector.

        The call log of the window is aggregated in one statement (each call classified
        by its connection's row: an end user's, the operator's, none, removed; grouped by
        connector and, except the end users', connection), so its cost follows the calls
        of the window, not the number of end users, and it returns rows for the operator's
        connections and per connector only. p50/p95 come from the newest ``sample`` calls
        of each row (one query per row shown, none per end user)."""
        calls, conns = _CALLS.c, _CONNECTIONS.c
        window = calls.started_at >= since
        held = conns.end_user.is_not(None)
        classified = (
            select(calls.connector,
                   case((held, "end_users"), (calls.connection.is_(None), "none"),
                        (conns.id.is_(None), "removed"), else_="operator").label("kind"),
                   case((held, null()), else_=calls.connection).label("conn"),
                   calls.status, calls.attempts, calls.started_at, calls.error_class,
                   calls.rate_limit_wait_ms)
            .select_from(_CALLS.outerjoin(_CONNECTIONS, conns.name == calls.connection))
            .where(window).subquery("classified"))
        c = classified.c
        kinds = list(FAILURE_CLASSES)
        grouped = (
            select(c.connector, c.kind, c.conn, func.count().label("n"),
                   func.sum(case((c.status == "ok", 1), else_=0)).label("n_ok"),
                   func.sum(c.attempts).label("attempts"),
                   func.max(c.started_at).label("last_call"),
                   func.sum(case((c.rate_limit_wait_ms > 0, 1), else_=0)).label("waited"),
                   func.sum(c.rate_limit_wait_ms).label("wait_ms"),
                   *(s.label(f"k_{kind}") for kind, s in zip(kinds, _kind_sums(c.error_class),
                                                            strict=True)))
            .group_by(c.connector, c.kind, c.conn).subquery("grouped"))
        ranked = select(grouped, func.row_number().over(
            partition_by=grouped.c.kind,
            order_by=(grouped.c.last_call.desc(), grouped.c.connector, grouped.c.conn),
        ).label("rank")).cte("ranked")
        r = ranked.c
        listed = (select(r.connector, r.kind, r.conn, r.n, r.n_ok, r.attempts, r.last_call,
                         r.waited, r.wait_ms, *(r[f"k_{kind}"] for kind in kinds),
                         literal(1).label("members"))
                  .where(or_(r.kind != "removed", r.rank <= max(0, removed_shown))))
        rest = (select(r.connector, literal("removed_rest", String).label("kind"),
                       null().cast(String).label("conn"), func.sum(r.n), func.sum(r.n_ok),
                       func.sum(r.attempts), func.max(r.last_call), func.sum(r.waited),
                       func.sum(r.wait_ms), *(func.sum(r[f"k_{kind}"]) for kind in kinds),
                       func.count())
                .where(r.kind == "removed", r.rank > max(0, removed_shown))
                .group_by(r.connector))
        holdings = (select(conns.connector, func.count(), func.count(conns.end_user.distinct()))
                    .where(held).group_by(conns.connector))
        operators = (select(_CONNECTIONS).where(conns.end_user.is_(None))
                     .order_by(conns.connector, conns.name))
        stats: list[CallStats] = []
        end_users: dict[str, CallStats] = {}
        removed: list[ConnectionsSummary] = []
        with self._store._errors("report the connections for the overview"):
            async with self._store.engine.connect() as conn:
                found = (await conn.execute(union_all(listed, rest))).all()
                held_by = {str(connector): (int(n), int(users)) for connector, n, users
                           in (await conn.execute(holdings)).all()}
                records = [_connection(row._mapping)
                           for row in (await conn.execute(operators)).all()]
                for (connector, kind, name, n, n_ok, attempts, last, n_waited, wait,
                     *rest_of_row) in found:
                    *by_kind, members = rest_of_row
                    summed = kind in ("end_users", "removed_rest")
                    latencies: list[float] = []
                    if kind == "end_users":
                        latencies = await self._latencies(
                            conn, sample, window, calls.connector == connector, held,
                            joined=True)
                    elif kind != "removed_rest":
                        latencies = await self._latencies(
                            conn, sample, window, calls.connector == connector,
                            calls.connection.is_(None) if name is None
                            else calls.connection == name)
                    one = CallStats(
                        connector=connector, connection=None if summed else name,
                        calls=int(n), ok=int(n_ok or 0), attempts=int(attempts or 0),
                        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
                        # the removed ones summed up: no latencies read at all
                        sampled=kind != "removed_rest" and int(n) > len(latencies),
                        # SQLite returns max() of a timestamp column as text: parse it back
                        last_call_at=_as_datetime(last),
                        waited=int(n_waited or 0), wait_ms=float(wait or 0.0),
                        failures=Failures.of(int(n) - int(n_ok or 0), by_kind))
                    if kind == "end_users":
                        end_users[connector] = one
                    elif kind == "removed_rest":
                        removed.append(ConnectionsSummary(connector, int(members), 0, one))
                    else:
                        stats.append(one)
        stats.sort(key=lambda s: (s.connector, s.connection or ""))
        summaries = [ConnectionsSummary(connector, *held_by.get(connector, (0, 0)),
                                        end_users.get(connector))
                     for connector in sorted(held_by.keys() | end_users.keys())]
        removed.sort(key=lambda s: s.connector)
        return OverviewReport(records, stats, summaries, removed)

    @staticmethod
    async def _latencies(conn: AsyncConnection, sample: int, *where: ColumnElement[bool],
                         joined: bool = False) -> list[float]:
        """The latencies of the newest ``sample`` calls matching ``where``, sorted;
        ``joined``: ``where`` reads the calls' connections too."""
        stmt = select(_CALLS.c.latency_ms)
        if joined:
            stmt = stmt.select_from(
                _CALLS.join(_CONNECTIONS, _CONNECTIONS.c.name == _CALLS.c.connection))
        found = await conn.execute(stmt.where(*where)
                                   .order_by(_CALLS.c.started_at.desc()).limit(sample))
        return sorted(float(v) for (v,) in found.all())

    async def connection_health(
        self, since: datetime, *, end_user: str | None = None, connector: str | None = None,
        name: str | None = None, attention: bool = False, offset: int = 0, limit: int = 100,
    ) -> HealthPage:
        """A page of connections (ordered by end user, operators' first, connector, name)
        with their calls since ``since``, in one statement: the page of connections is
        chosen first, and only its calls are aggregated (counts and failures by kind in a
        GROUP BY, the p95 and the last error by window functions), so a page costs the
        same with 10 or 10,000 end users. ``attention``: only connections marked
        unhealthy or needing re-authorisation."""
        conns = _CONNECTIONS.c
        filters: list[ColumnElement[bool]] = []
        if end_user is not None:
            filters.append(conns.end_user == end_user)
        if connector is not None:
            filters.append(conns.connector == connector)
        if name is not None:
            filters.append(conns.name == name)
        if attention:
            filters.append(_needs_attention())
        page = (select(_CONNECTIONS).where(*filters)
                .order_by(conns.end_user.nulls_first(), conns.connector, conns.name)
                .offset(max(0, offset)).limit(max(0, limit) + 1).cte("page"))
        calls = _CALLS.c
        window = [calls.started_at >= since, calls.connection.in_(select(page.c.name))]
        ok = func.sum(case((calls.status == "ok", 1), else_=0))
        agg = (select(calls.connection.label("conn"), func.count().label("n"),
                      ok.label("n_ok"), func.sum(calls.attempts).label("attempts"),
                      func.max(calls.started_at).label("last_call"),
                      *(s.label(f"k_{kind}") for kind, s in zip(FAILURE_CLASSES, _kind_sums(),
                                                               strict=True)))
               .where(*window).group_by(calls.connection).subquery("agg"))
        # nearest-rank p95: the latency ranked ceil(0.95 n) within its connection
        # (integer arithmetic: SQLite has no ceil() everywhere)
        ranked = (select(calls.connection.label("conn"), calls.latency_ms,
                         func.row_number().over(partition_by=calls.connection,
                                                order_by=calls.latency_ms).label("rank"),
                         func.count().over(partition_by=calls.connection).label("n"))
                  .where(*window).subquery("ranked"))
        p95 = (select(ranked.c.conn, ranked.c.latency_ms.label("p95"))
               .where(ranked.c.rank == (ranked.c.n * 95 + 99) // 100).subquery("p95"))
        errors = (select(calls.connection.label("conn"), calls.error_class,
                         calls.error_message, calls.started_at,
                         func.row_number().over(
                             partition_by=calls.connection,
                             order_by=(calls.started_at.desc(), calls.id.desc()),
                         ).label("latest"))
                  .where(*window, calls.status == "error").subquery("errors"))
        stmt = (select(page, agg.c.n, agg.c.n_ok, agg.c.attempts, agg.c.last_call,
                       *(agg.c[f"k_{kind}"] for kind in FAILURE_CLASSES), p95.c.p95,
                       errors.c.error_class, errors.c.error_message,
                       errors.c.started_at.label("error_at"))
                .select_from(page
                             .outerjoin(agg, agg.c.conn == page.c.name)
                             .outerjoin(p95, p95.c.conn == page.c.name)
                             .outerjoin(errors, and_(errors.c.conn == page.c.name,
                                                     errors.c.latest == 1)))
                .order_by(page.c.end_user.nulls_first(), page.c.connector, page.c.name))
        with self._store._errors("report the connections' health"):
            async with self._store.engine.connect() as conn:
                found = (await conn.execute(stmt)).all()
        rows = [_health(r._mapping) for r in found[:max(0, limit)]]
        return HealthPage(rows, max(0, offset), more=len(found) > limit)

    async def attention(self, limit: int = 20) -> tuple[list[ConnectionRecord], int]:
        """Connections marked unhealthy or needing re-authorisation (the first ``limit``,
        by end user and connector) and how many there are in all."""
        conns = _CONNECTIONS.c
        stmt = (select(_CONNECTIONS, func.count().over().label("total"))
                .where(_needs_attention())
                .order_by(conns.end_user.nulls_first(), conns.connector, conns.name)
                .limit(max(0, limit)))
        with self._store._errors("list the connections needing attention"):
            async with self._store.engine.connect() as conn:
                found = (await conn.execute(stmt)).all()
        return ([_connection(r._mapping) for r in found],
                int(found[0]._mapping["total"]) if found else 0)

    async def connection_calls(self, connection: str, *,
                               before: tuple[datetime, str] | None = None,
                               limit: int = 50) -> list[CallRecord]:
        """A connection's call log, newest first; ``before``: the (started_at, id) of the
        last call of the previous page (a cursor: pages stay put while calls arrive)."""
        calls = _CALLS.c
        where: list[ColumnElement[bool]] = [calls.connection == connection]
        if before is not None:
            where.append(tuple_(calls.started_at, calls.id) < tuple_(*before))
        stmt = (select(_CALLS).where(*where)
                .order_by(calls.started_at.desc(), calls.id.desc()).limit(max(0, limit)))
        with self._store._errors(f"list the calls of connection {connection!r}"):
            async with self._store.engine.connect() as conn:
                found = (await conn.execute(stmt)).all()
        return [CallRecord(**r._mapping) for r in found]

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


def _needs_attention() -> ColumnElement[bool]:
    conns = _CONNECTIONS.c
    return or_(conns.health == "unhealthy", conns.needs_reauth.is_(True))


def _connection(m: RowMapping) -> ConnectionRecord:
    return ConnectionRecord(
        id=m["id"], name=m["name"], connector=m["connector"], end_user=m["end_user"],
        settings=dict(m["settings"] or {}), secrets=m["secrets"],
        created_at=_as_datetime(m["created_at"]) or datetime.now(UTC),
        updated_at=_as_datetime(m["updated_at"]) or datetime.now(UTC),
        label=m["label"], is_default=bool(m["is_default"]),
        needs_reauth=bool(m["needs_reauth"]), health=m["health"])


def _health(m: RowMapping) -> ConnectionHealth:
    calls, ok = int(m["n"] or 0), int(m["n_ok"] or 0)
    last_error = (LastError(m["error_class"], m["error_message"], _as_datetime(m["error_at"]))
                  if m["error_at"] is not None else None)
    return ConnectionHealth(
        record=_connection(m), calls=calls, ok=ok, attempts=int(m["attempts"] or 0),
        p95_ms=_float(m["p95"]),
        failures=Failures.of(calls - ok, [m[f"k_{kind}"] for kind in FAILURE_CLASSES]),
        last_call_at=_as_datetime(m["last_call"]), last_error=last_error)
