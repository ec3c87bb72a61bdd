"""The store's report of each end user's connections (store/reports.py), on SQLite and
PostgreSQL: calls made for real against the sandbox through the call path, then read back
as the Connections page reads them — one page of connections with their counts, p95,
failures by kind and last error."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import patchwire.errors as errors
from patchwire import Patchwire
from patchwire.errors import CallError, PatchwireError
from patchwire.sandbox import Sandbox
from patchwire.store.reports import (
    FAILURE_CLASSES,
    FAILURE_KIND,
    ConnectionHealth,
    Failures,
    ReportRepository,
    failure_kind,
    percentile,
)
from tests.support.settings import local_settings

ORDER = "shop.get_order"
#: the cloud metadata address: the SSRF guard refuses it before anything is sent
BLOCKED = "http://169.254.169.254"


async def call(pw: Patchwire, connection: str, order_id: str, **kw: str) -> None:
    with contextlib.suppress(PatchwireError):
        await pw.call(ORDER, {"order_id": order_id}, connection=connection, **kw)


@pytest.fixture
async def pw(store_url: str, tmp_path: Path, sandbox: Sandbox,
             canary: str) -> AsyncIterator[Patchwire]:
    """An operator's ``acme``; ``u1`` with ``u1-shop`` (3 calls: 2 ok, 1 with invalid input)
    and ``u1-work`` (labelled, a wrong key: 2 calls refused); ``u2`` with ``u2-shop`` (no
    calls); ``u3`` with ``u3-blocked`` (an address the SSRF guard refuses)."""
    settings = local_settings(tmp_path / "home", database_url=store_url)
    good = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(settings) as opened:
        await opened.add_connection("shop", "acme", good)
        await opened.add_connection("shop", "u1-shop", good, end_user="u1")
        await opened.add_connection("shop", "u1-work", {**good, "api_key": "wrong"},
                                    end_user="u1", label="work")
        await opened.add_connection("shop", "u2-shop", good, end_user="u2")
        await opened.add_connection("shop", "u3-blocked", {**good, "sandbox_url": BLOCKED},
                                    end_user="u3")
        for order in ("42", "42", ""):  # the last: invalid input
            await call(opened, "u1-shop", order, end_user="u1")
        for _ in range(2):
            await call(opened, "u1-work", "42", end_user="u1")
        await call(opened, "u3-blocked", "42", end_user="u3")
        await opened.flush()
        yield opened


def since() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def by_name(rows: list[ConnectionHealth]) -> dict[str, ConnectionHealth]:
    return {r.record.name: r for r in rows}


async def test_a_page_lists_each_end_users_connections_with_their_calls_by_kind(
        pw: Patchwire) -> None:
    page = await ReportRepository(pw.store).connection_health(since())
    assert [(r.record.end_user, r.record.name) for r in page.rows] == [
        (None, "acme"), ("u1", "u1-shop"), ("u1", "u1-work"), ("u2", "u2-shop"),
        ("u3", "u3-blocked")]
    assert page.more is False
    rows = by_name(page.rows)

    shop = rows["u1-shop"]
    assert (shop.calls, shop.ok, shop.failures.client, shop.failures.total) == (3, 2, 1, 1)
    assert shop.success_rate == pytest.approx(2 / 3) and shop.p95_ms is not None
    assert shop.last_error is not None and shop.last_error.kind == "client"
    assert shop.last_error.error_class == "invalid_input" and shop.last_error.message

    work = rows["u1-work"]
    assert work.record.label == "work" and (work.calls, work.ok) == (2, 0)
    assert work.failures.auth == 2 and work.last_error is not None
    assert work.last_error.error_class == "auth_error"
    assert "wrong" not in (work.last_error.message or "")  # the key itself is redacted

    blocked = rows["u3-blocked"]
    assert blocked.failures.transport == 1 and blocked.last_error is not None
    assert blocked.last_error.error_class == "blocked_destination"

    idle = rows["u2-shop"]
    assert (idle.calls, idle.p95_ms, idle.last_error, idle.success_rate) == (0, None, None,
                                                                             None)


async def test_the_p95_is_the_nearest_rank_of_the_connections_own_latencies(
        pw: Patchwire) -> None:
    for _ in range(17):
        await call(pw, "u2-shop", "42", end_user="u2")
    await pw.flush()
    reports = ReportRepository(pw.store)
    row = by_name((await reports.connection_health(since(), end_user="u2")).rows)["u2-shop"]
    latencies = sorted(c.latency_ms for c in await reports.connection_calls("u2-shop",
                                                                             limit=100))
    assert len(latencies) == row.calls == 17
    assert row.p95_ms == pytest.approx(percentile(latencies, 95))
    assert row.p95_ms != pytest.approx(percentile(latencies, 50))


async def test_a_page_filters_by_end_user_connector_and_name_and_pages_on(
        pw: Patchwire) -> None:
    reports = ReportRepository(pw.store)
    mine = await reports.connection_health(since(), end_user="u1")
    assert [r.record.name for r in mine.rows] == ["u1-shop", "u1-work"]
    assert (await reports.connection_health(since(), connector="calendar")).rows == []
    one = await reports.connection_health(since(), name="u1-work")
    assert [r.record.name for r in one.rows] == ["u1-work"]

    first = await reports.connection_health(since(), limit=2)
    second = await reports.connection_health(since(), limit=2, offset=2)
    last = await reports.connection_health(since(), limit=2, offset=4)
    assert (first.more, second.more, last.more) == (True, True, False)
    names = [r.record.name for p in (first, second, last) for r in p.rows]
    assert names == ["acme", "u1-shop", "u1-work", "u2-shop", "u3-blocked"]


async def test_calls_before_the_window_are_not_counted(pw: Patchwire) -> None:
    later = datetime.now(UTC) + timedelta(minutes=1)
    rows = by_name((await ReportRepository(pw.store).connection_health(later)).rows)
    assert all(r.calls == 0 and r.last_error is None for r in rows.values())


async def test_connections_needing_attention_are_listed_with_their_count(
        pw: Patchwire) -> None:
    reports = ReportRepository(pw.store)
    assert await reports.attention() == ([], 0)
    assert await pw.store.set_connection_state("u1-work", needs_reauth=True)
    assert await pw.store.set_connection_state("u3-blocked", health="unhealthy")
    found, total = await reports.attention()
    assert [(c.name, c.needs_reauth, c.health) for c in found] == [
        ("u1-work", True, None), ("u3-blocked", False, "unhealthy")]
    assert total == 2
    assert (await reports.attention(limit=1))[1] == 2
    flagged = await reports.connection_health(since(), attention=True)
    assert [r.record.name for r in flagged.rows] == ["u1-work", "u3-blocked"]


async def test_a_connections_call_log_pages_with_a_cursor_newest_first(
        pw: Patchwire) -> None:
    reports = ReportRepository(pw.store)
    everything = await reports.connection_calls("u1-shop")
    assert len(everything) == 3 and {c.connection for c in everything} == {"u1-shop"}
    assert [c.started_at for c in everything] == sorted(
        (c.started_at for c in everything), reverse=True)
    first = await reports.connection_calls("u1-shop", limit=2)
    rest = await reports.connection_calls("u1-shop", limit=2,
                                          before=(first[-1].started_at, first[-1].id))
    assert [c.id for c in first + rest] == [c.id for c in everything]
    assert await reports.connection_calls("nobody") == []


async def test_the_overview_sums_up_the_end_users_connections_with_failures_by_kind(
        pw: Patchwire) -> None:
    await call(pw, "acme", "42")
    await pw.flush()
    report = await ReportRepository(pw.store).overview(since())
    assert [c.name for c in report.operator_connections] == ["acme"]
    assert [(s.connection, s.calls, s.ok) for s in report.stats] == [("acme", 1, 1)]
    [shop] = report.end_users
    assert (shop.connector, shop.connections, shop.end_users) == ("shop", 4, 3)
    assert shop.stats is not None and (shop.stats.calls, shop.stats.ok) == (6, 2)
    assert shop.stats.failures == Failures(auth=2, client=1, transport=1)
    assert shop.stats.p95_ms is not None and shop.stats.sampled is False
    assert report.removed == []


def test_every_call_error_of_the_tree_has_a_kind_or_is_deliberately_other() -> None:
    call_errors = {cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                   if issubclass(cls, CallError) and cls is not CallError}
    classified = {cls for classes in FAILURE_CLASSES.values() for cls in classes}
    # a listing that cannot be paged, a test's unrecorded request, the abstract parent of
    # the status errors: none says who has to act
    other = {errors.PaginationError, errors.UnrecordedRequest, errors.UpstreamResponseError}
    assert call_errors - classified == other
    assert failure_kind("auth_error") == "auth" and failure_kind("timeout") == "transport"
    assert failure_kind("circuit_open") == "upstream" and failure_kind(None) == "other"
    assert failure_kind("no_such_code") == "other" and FAILURE_KIND["conflict"] == "client"
