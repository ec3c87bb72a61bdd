"""The store: one async SQLAlchemy engine over SQLite (embedded default) or PostgreSQL.

Why Core statements instead of ORM sessions: the hot paths (the call log written by a
background batch writer, connection lookups on every call) want one round trip and no
identity map; results come back as frozen records (see ``records.py``).

Every SQLAlchemy/driver exception is wrapped in :class:`~patchwire.errors.StoreError` at
this boundary, with the URL rendered without its password and no SQL parameters (which
could contain secret tokens) in the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Table, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import URL, Connection, Dialect, Row, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement

from patchwire.errors import ConnectionExists, PatchwireError, StoreError, UnknownConnection
from patchwire.store._group_commit import (
    SQLITE_BUSY_TIMEOUT_MS,
    FileConnection,
    GroupCommitWriter,
    Statement,
    immediate,
    no_results,
    sqlite_file,
    values_sql,
)
from patchwire.store._leases import (
    LeaseRequest,
    LeaseResult,
    Settlement,
    lease_async,
    lease_sqlite,
    pause_async,
    pause_sqlite,
    settle_async,
    settle_sqlite,
)
from patchwire.store.models import CallRow, ConnectionRow
from patchwire.store.records import CallRecord, ConnectionRecord, utcnow

__all__ = ["MIGRATIONS_DIR", "SQLITE_BUSY_TIMEOUT_MS", "Store", "normalize_url"]

#: where env.py and versions/ live; resolved from the installed package, not the CWD
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: asyncpg connect timeout (seconds) unless the URL sets one
POSTGRES_CONNECT_TIMEOUT = 10.0

#: execution option asking for BEGIN IMMEDIATE on SQLite
_SQLITE_IMMEDIATE = "patchwire_sqlite_immediate"

_CONNECTIONS = cast(Table, ConnectionRow.__table__)
_CALLS = cast(Table, CallRow.__table__)


def normalize_url(url: str) -> URL:
    """Parse ``url`` and pick the async driver: ``postgres(ql)://`` → asyncpg, ``sqlite://`` →
    aiosqlite. Other drivers are refused because the store is async-only.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        # the unparsable text may contain a password: do not echo it
        raise StoreError(
            "invalid database URL (expected sqlite+aiosqlite:///path or "
            "postgresql+asyncpg://user:password@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername not in ("postgres", "postgresql", "postgresql+asyncpg"):
            raise StoreError(
                f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql+asyncpg://"
            )
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+aiosqlite"):
            raise StoreError(
                f"unsupported SQLite driver {parsed.drivername!r}: use sqlite+aiosqlite://"
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    raise StoreError(
        f"unsupported database {backend!r}: Patchwire stores data in SQLite or PostgreSQL"
    )


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _describe(exc: BaseException, url: URL) -> str:
    """A one-line description of a driver error without SQL parameters or the password."""
    inner: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        inner = exc.orig  # str(DBAPIError) would include the SQL and its parameters
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    if url.password:
        text = text.replace(str(url.password), "***")
    name = type(inner).__name__
    return f"{name}: {text}" if text else name


def _run_migrations(sync_conn: Connection) -> None:
    """Upgrade to head on the given connection (runs inside the caller's transaction)."""
    # Imported here: alembic costs ~0.4 s of start-up that only opening a store needs.
    import alembic.command
    import alembic.config

    cfg = alembic.config.Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = sync_conn
    if sync_conn.dialect.name == "postgresql":
        # Serialise concurrent openers (several workers starting at once) on one lock.
        sync_conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7254918340)")
    alembic.command.upgrade(cfg, "head")


def _ensure_sqlite_dir(url: URL) -> None:
    """Create the directory of a SQLite file (``.patchwire/`` on first run)."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory for {_safe(url)}: {exc.strerror or type(exc).__name__}"
        ) from exc


def _connection_record(row: Row[Any]) -> ConnectionRecord:
    m = row._mapping
    return ConnectionRecord(
        id=m["id"],
        name=m["name"],
        connector=m["connector"],
        end_user=m["end_user"],
        label=m["label"],
        is_default=bool(m["is_default"]),
        needs_reauth=bool(m["needs_reauth"]),
        health=m["health"],
        settings=dict(m["settings"] or {}),
        secrets=m["secrets"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _call_record(row: Row[Any]) -> CallRecord:
    # the calls table's columns are exactly CallRecord's fields
    return CallRecord(**row._mapping)


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL (readers never block the writer), busy timeout, FKs on; and explicit BEGIN.

    pysqlite's legacy implicit transactions skip BEGIN before DDL and break SAVEPOINTs;
    disabling them and emitting BEGIN ourselves (as the SQLAlchemy docs recommend) makes
    transactions mean what they say.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            # busy_timeout first: switching a new file to WAL needs a lock that another
            # process opening the same new store may hold for a moment.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, much faster
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so
        # read-then-write transactions such as migrations cannot fail on a stale snapshot.
        immediate = conn.get_execution_options().get(_SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_CALL_LOG_COLUMNS = ("id", "request_id", "action", "connector", "connection", "status",
                     "http_status", "latency_ms", "attempts", "error_class", "error_message",
                     "started_at", "rate_limit_wait_ms")
#: SQLite allows 32,766 bound parameters a statement (3.32+); 13 columns a row
_SQLITE_ROWS_PER_INSERT = 2000


def sqlite_timestamp(value: datetime) -> str:
    """A timestamp as UTCDateTime stores it on SQLite: naive UTC, microseconds always
    (what UTCDateTime and SQLite's DateTime write, without three Python layers a row;
    the test suite checks both agree)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _call_row(r: CallRecord, started_at: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """A call record in ``_CALL_LOG_COLUMNS`` order."""
    return (r.id, r.request_id, r.action, r.connector, r.connection, r.status, r.http_status,
            r.latency_ms, r.attempts, r.error_class, r.error_message, started_at(r.started_at),
            r.rate_limit_wait_ms)


@functools.lru_cache(maxsize=8)
def _sqlite_insert_calls(rows: int) -> str:
    return (f"INSERT INTO calls ({', '.join(_CALL_LOG_COLUMNS)}) VALUES "  # noqa: S608
            + values_sql(rows, len(_CALL_LOG_COLUMNS), "qmark"))


#: how long opening a store waits for other processes migrating the same new SQLite file
SQLITE_MIGRATION_WAIT_S = 120.0


async def _migrate(engine: AsyncEngine, *, sqlite: bool) -> None:
    """Apply migrations to head in one transaction (IMMEDIATE on SQLite, advisory-locked
    on PostgreSQL). On SQLite, processes opening the same new file at once queue behind
    the first one's write lock; a migration can outlast the busy timeout on a loaded
    machine, so a "locked" answer is waited out (bounded) instead of failing the open."""
    deadline = time.monotonic() + SQLITE_MIGRATION_WAIT_S
    delay = 0.05
    while True:
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
                async with conn.begin():
                    await conn.run_sync(_run_migrations)
            return
        except DBAPIError as exc:
            locked = sqlite and "locked" in str(exc.orig)
            if not locked or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _alembic_command_error() -> type[Exception]:
    import alembic.util.exc

    return alembic.util.exc.CommandError


class Store:
    """Connections and the call log, on SQLite or PostgreSQL. Open with :meth:`open`.

    ``engine`` is public so other repositories (runs, inbox, sync) can share the pool.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._closed = False
        self._calls_sql: tuple[str, Callable[[datetime], Any]] | None = None
        # Batches come from the caller (the facade's BatchWriter): committed as they come.
        self._call_log = GroupCommitWriter(self, self._call_statements, no_results,
                                           what="record calls", name="the store")
        # SQLite file only: lease transactions wait for the write lock in a worker thread
        path = sqlite_file(engine)
        self._lease_file = (None if path is None
                            else FileConnection(path, what="lease rate-limit tokens"))

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str) -> Store:
        """Create the engine, apply migrations to head and return the store."""
        parsed = normalize_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            _ensure_sqlite_dir(parsed)
        elif "timeout" not in parsed.query:
            kwargs["connect_args"] = {"timeout": POSTGRES_CONNECT_TIMEOUT}
        try:
            engine = create_async_engine(parsed, **kwargs)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot create engine for {_safe(parsed)}: {exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            _install_sqlite_pragmas(engine)
        store = cls(engine)
        try:
            await _migrate(engine, sqlite=parsed.get_backend_name() == "sqlite")
        except _alembic_command_error() as exc:
            await engine.dispose()
            raise StoreError(
                f"cannot migrate store at {_safe(parsed)}: {exc} "
                "(was it created by a newer Patchwire?)"
            ) from exc
        except Exception as exc:
            await engine.dispose()
            if isinstance(exc, PatchwireError):
                raise
            raise StoreError(
                f"cannot open store at {_safe(parsed)}: {_describe(exc, parsed)}"
            ) from exc
        return store

    async def close(self) -> None:
        """Dispose of the connection pool. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._call_log.close()
            if self._lease_file is not None:
                await self._lease_file.close()
            await self._engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine (for repositories living in other modules)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return _safe(self._engine.url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Wrap driver errors in StoreError; let Patchwire errors through."""
        if self._closed:
            raise StoreError(f"cannot {what}: the store is closed")
        try:
            yield
        except PatchwireError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreError(
                f"cannot {what} ({self.url}): {_describe(exc, self._engine.url)}"
            ) from exc

    # -- connections --------------------------------------------------------------------

    async def add_connection(self, rec: ConnectionRecord) -> None:
        """Insert a connection; ConnectionExists if the name is taken."""
        values = {
            "id": rec.id,
            "name": rec.name,
            "connector": rec.connector,
            "end_user": rec.end_user,
            "label": rec.label,
            "is_default": rec.is_default,
            "settings": rec.settings,
            "secrets": rec.secrets,
            "created_at": rec.created_at,
            "updated_at": rec.updated_at,
        }
        with self._errors(f"add connection {rec.name!r}"):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(_CONNECTIONS).values(**values))
            except IntegrityError as exc:
                async with self._engine.connect() as conn:
                    taken = await conn.scalar(
                        select(_CONNECTIONS.c.id).where(_CONNECTIONS.c.name == rec.name)
                    )
                if taken is not None:
                    raise ConnectionExists(
                        f"a connection named {rec.name!r} already exists"
                    ) from exc
                raise

    async def get_connection(self, name: str) -> ConnectionRecord:
        """The connection called ``name``; UnknownConnection if there is none."""
        with self._errors(f"get connection {name!r}"):
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(_CONNECTIONS).where(_CONNECTIONS.c.name == name))
                ).first()
        if row is None:
            raise UnknownConnection(f"no connection named {name!r}")
        return _connection_record(row)

    async def list_connections(
        self, connector: str | None = None, end_user: str | None = None, *,
        after: str | None = None, limit: int | None = None,
    ) -> list[ConnectionRecord]:
        """Connections ordered by name, optionally only one connector's or one end user's;
        a page of them: ``limit`` names after ``after``."""
        stmt = select(_CONNECTIONS).order_by(_CONNECTIONS.c.name)
        if connector is not None:
            stmt = stmt.where(_CONNECTIONS.c.connector == connector)
        if end_user is not None:
            stmt = stmt.where(_CONNECTIONS.c.end_user == end_user)
        if after is not None:
            stmt = stmt.where(_CONNECTIONS.c.name > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._errors("list connections"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_connection_record(r) for r in rows]

    async def remove_connection(self, name: str) -> None:
        """Delete a connection; UnknownConnection if there is none."""
        with self._errors(f"remove connection {name!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(_CONNECTIONS).where(_CONNECTIONS.c.name == name))
        if result.rowcount == 0:
            raise UnknownConnection(f"no connection named {name!r}")

    async def update_connection(
        self,
        name: str,
        *,
        settings: dict[str, Any] | None = None,
        secrets: str | None = None,
        label: str | None = None,
    ) -> ConnectionRecord:
        """Replace settings, the secrets token and/or the label (``""`` removes it); bumps
        ``updated_at``.

        The UPDATE runs before the SELECT so a SQLite transaction takes the write lock
        first (a read-then-write transaction can fail with "database is locked").
        """
        values: dict[str, Any] = {"updated_at": utcnow()}
        if settings is not None:
            values["settings"] = settings
        if secrets is not None:
            values["secrets"] = secrets
        if label is not None:
            values["label"] = label or None
        with self._errors(f"update connection {name!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_CONNECTIONS).where(_CONNECTIONS.c.name == name).values(**values)
                )
                row = None
                if result.rowcount:
                    row = (
                        await conn.execute(select(_CONNECTIONS).where(_CONNECTIONS.c.name == name))
                    ).first()
        if row is None:
            raise UnknownConnection(f"no connection named {name!r}")
        return _connection_record(row)

    async def set_connection_state(self, name: str, *, needs_reauth: bool | None = None,
                                   health: str | None = None,
                                   healthy: bool = False) -> bool:
        """Note a connection's state (not a change of it: ``updated_at`` stays):
        ``needs_reauth``, and ``health`` (``healthy=True`` clears it). Returns whether the
        row changed, so a caller emits one event per change however many processes see it."""
        values: dict[str, Any] = {}
        changed = []
        if needs_reauth is not None:
            values["needs_reauth"] = needs_reauth
            changed.append(_CONNECTIONS.c.needs_reauth != needs_reauth)
        if healthy:
            values["health"] = None
            changed.append(_CONNECTIONS.c.health.is_not(None))
        elif health is not None:
            values["health"] = health
            changed.append(_CONNECTIONS.c.health.is_(None) | (_CONNECTIONS.c.health != health))
        if not values:
            return False
        with self._errors(f"update connection {name!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(update(_CONNECTIONS).where(
                    _CONNECTIONS.c.name == name, or_(*changed)).values(**values))
        return bool(result.rowcount)

    async def set_default_connection(self, name: str) -> ConnectionRecord:
        """Make connection ``name`` its end user's default of its connector (the others of
        that end user and connector stop being it), in one transaction."""
        with self._errors(f"set the default connection {name!r}"):
            async with self._engine.connect() as conn:
                # read then write: on SQLite the write lock is taken up front, else a
                # write another connection commits meanwhile fails this one at once
                # ("database is locked": a stale snapshot cannot wait for the lock)
                conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
                async with conn.begin():
                    row = (await conn.execute(
                        select(_CONNECTIONS).where(_CONNECTIONS.c.name == name))).first()
                    if row is None:
                        raise UnknownConnection(f"no connection named {name!r}")
                    rec = _connection_record(row)
                    same = (_CONNECTIONS.c.connector == rec.connector) & (
                        _CONNECTIONS.c.end_user.is_(None) if rec.end_user is None
                        else _CONNECTIONS.c.end_user == rec.end_user)
                    await conn.execute(update(_CONNECTIONS).where(same).values(
                        is_default=_CONNECTIONS.c.name == name))
        return dataclasses.replace(rec, is_default=True)

    # -- calls --------------------------------------------------------------------------

    async def record_calls(self, records: Sequence[CallRecord]) -> None:
        """Insert a batch of call records in one transaction.

        This runs for every call made, so it bypasses SQLAlchemy's per-row statement
        processing (about 30 µs a row) and hands plain tuples to the driver; timestamps
        still go through the column type's own bind processor, so rows read back exactly
        as ORM-written ones.
        """
        await self._call_log.commit(list(records))

    def _call_statements(self, records: list[CallRecord], dialect: Dialect
                         ) -> Iterator[Statement]:
        """On SQLite many rows a statement: ``executemany`` (through aiosqlite or not)
        takes the GIL back for every row it binds, and each hand-over stalls the event
        loop (measured: more than double the call latency at one call in flight); a
        multi-row ``VALUES`` binds a whole chunk in one go in C. Elsewhere one
        ``executemany`` (asyncpg pipelines it)."""
        if dialect.name == "sqlite":
            rows = [_call_row(r, sqlite_timestamp) for r in records]
            for i in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
                chunk = rows[i : i + _SQLITE_ROWS_PER_INSERT]
                yield Statement(_sqlite_insert_calls(len(chunk)),
                                tuple(itertools.chain.from_iterable(chunk)))
            return
        sql, started_at = self._insert_calls_sql()
        yield Statement(sql, [_call_row(r, started_at) for r in records], many=True)

    def _insert_calls_sql(self) -> tuple[str, Callable[[datetime], Any]]:
        if self._calls_sql is not None:
            return self._calls_sql
        dialect = self._engine.dialect
        n = len(_CALL_LOG_COLUMNS)
        if dialect.paramstyle == "qmark":
            marks = ["?"] * n
        elif dialect.paramstyle == "numeric_dollar":
            marks = [f"${i}" for i in range(1, n + 1)]
        elif dialect.paramstyle == "numeric":
            marks = [f":{i}" for i in range(1, n + 1)]
        else:  # format / pyformat with positional tuples
            marks = ["%s"] * n
        quote = dialect.identifier_preparer.quote
        sql = (f"INSERT INTO {quote(_CALLS.name)} "  # noqa: S608 - identifiers are constants
               f"({', '.join(quote(c) for c in _CALL_LOG_COLUMNS)}) "
               f"VALUES ({', '.join(marks)})")
        column_type = _CALLS.c.started_at.type
        decorator_bind = column_type.bind_processor(dialect)

        def started_at(value: datetime) -> Any:
            return decorator_bind(value) if decorator_bind is not None else value

        self._calls_sql = (sql, started_at)
        return self._calls_sql

    @staticmethod
    def _call_filters(action: str | None, connection: str | None) -> list[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = []
        if action is not None:
            filters.append(_CALLS.c.action == action)
        if connection is not None:
            filters.append(_CALLS.c.connection == connection)
        return filters

    async def list_calls(
        self, *, action: str | None = None, connection: str | None = None, limit: int = 100
    ) -> list[CallRecord]:
        """Recorded calls, newest first."""
        stmt = (
            select(_CALLS)
            .where(*self._call_filters(action, connection))
            .order_by(_CALLS.c.started_at.desc(), _CALLS.c.id.desc())
            .limit(max(0, limit))
        )
        with self._errors("list calls"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_call_record(r) for r in rows]

    async def count_calls(self, *, action: str | None = None, connection: str | None = None) -> int:
        """How many calls match the same filters as :meth:`list_calls`."""
        stmt = (
            select(func.count()).select_from(_CALLS).where(*self._call_filters(action, connection))
        )
        with self._errors("count calls"):
            async with self._engine.connect() as conn:
                n = await conn.scalar(stmt)
        return int(n or 0)

    # -- row locks (OAuth2 refresh) -----------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked_connection(self, name: str) -> AsyncIterator[LockedConnection]:
        """Hold an exclusive lock on one connection row for the body of the ``async with``.

        PostgreSQL: ``SELECT ... FOR UPDATE`` on the row; SQLite: ``BEGIN IMMEDIATE`` (the
        database's write lock, SQLite has no row locks). The record is read after the lock
        is taken, so a change another process committed while we waited is seen. Updates
        through the handle commit with the lock's transaction when the block exits; an
        exception rolls them back. Used so that exactly one process refreshes a token.
        """
        with self._errors(f"lock connection {name!r}"):
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
                async with conn.begin():
                    row = (
                        await conn.execute(
                            select(_CONNECTIONS)
                            .where(_CONNECTIONS.c.name == name)
                            .with_for_update()
                        )
                    ).first()
                    if row is None:
                        raise UnknownConnection(f"no connection named {name!r}")
                    yield LockedConnection(conn, _connection_record(row))


    # -- rate-limit leases (limits shared by processes) ----------------------------------

    async def lease_rate_limit(self, req: LeaseRequest) -> LeaseResult:
        """Grant up to ``req.want`` tokens of the limits in ``req.windows`` (all or none
        of them) and settle the holder's finished leases, in one transaction serialised
        per limit. Returns (tokens granted, wall time the first token frees when 0, wall
        time the pause recorded for ``req.pause`` ends or -inf); a paused bucket gets
        nothing until its pause ends."""
        with self._errors("lease rate-limit tokens"):
            if self._lease_file is not None:
                return await self._lease_file.run(lambda db: lease_sqlite(db, req))
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
                async with conn.begin():
                    return await lease_async(conn, req)

    async def pause_rate_limit(self, bucket: str, until: float, now: float) -> None:
        """Record that the upstream wants ``bucket`` paused until the wall time ``until``
        (a later pause already recorded stays); lease grants for it honour the pause."""
        with self._errors("record a rate-limit pause"):
            if self._lease_file is not None:
                await self._lease_file.run(lambda db: pause_sqlite(db, bucket, until, now))
                return
            async with self._engine.begin() as conn:
                await pause_async(conn, bucket, until, now)

    async def settle_rate_limit_leases(self, holder: str,
                                       settle: Sequence[Settlement]) -> None:
        """Give back what a holder did not use (at shutdown): the limit frees sooner."""
        if not settle:
            return
        with self._errors("settle rate-limit leases"):
            if self._lease_file is not None:

                def run(db: sqlite3.Connection) -> None:
                    with immediate(db):
                        settle_sqlite(db, holder, settle)

                await self._lease_file.run(run)
                return
            async with self._engine.begin() as conn:
                await settle_async(conn, holder, settle)


class LockedConnection:
    """A connection row under :meth:`Store.locked_connection`'s lock."""

    def __init__(self, conn: AsyncConnection, record: ConnectionRecord) -> None:
        self._conn = conn
        self.record = record

    def __repr__(self) -> str:
        return f"LockedConnection({self.record.name!r})"

    async def update(self, *, secrets: str,
                     settings: dict[str, Any] | None = None) -> ConnectionRecord:
        """Replace the secrets token, and the settings when given (inside the lock's
        transaction); bumps ``updated_at``."""
        changes: dict[str, Any] = {"secrets": secrets, "updated_at": utcnow()}
        if settings is not None:  # e.g. an OAuth2 token response's instance_url
            changes["settings"] = settings
        await self._conn.execute(
            update(_CONNECTIONS).where(_CONNECTIONS.c.id == self.record.id).values(**changes))
        stmt = select(_CONNECTIONS).where(_CONNECTIONS.c.id == self.record.id)
        row = (await self._conn.execute(stmt)).first()
        assert row is not None  # the row lock keeps it from being deleted
        self.record = _connection_record(row)
        return self.record
