"""Every pagination style, the bounds and the safety stops, against an inline upstream
(``feed.py``) that misbehaves on purpose, and against the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patchwire import PaginationError, Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.sandbox import Sandbox
from tests.support.feed import CONNECTOR, KEY, RECORDS, Feed, serve_feed
from tests.support.settings import local_settings

ALL_IDS = [r["id"] for r in RECORDS]


@pytest.fixture
async def feed(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, Feed]]:
    async with serve_feed() as upstream:
        registry = ConnectorRegistry([load_connector_text(CONNECTOR, "feed.yaml")])
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=registry) as pw:
            await pw.add_connection("feed", "feed", {"url": upstream.url, "key": KEY})
            yield pw, upstream


async def ids(pw: Patchwire, action: str, **kwargs: Any) -> list[Any]:
    return [r["id"] async for r in pw.paginate(action, **kwargs)]


# -- styles -------------------------------------------------------------------------------


async def test_link_pagination_follows_relative_next_links_in_any_form(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.linked") == ALL_IDS
    # page size from the connector, then the upstream's own links (with the key added back)
    assert upstream.queries() == [
        {"size": "10", "key": KEY},
        {"size": "10", "page": "2", "key": KEY},
        {"size": "10", "page": "3", "key": KEY},
    ]


async def test_a_callers_page_size_wins_over_the_declared_one(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.linked", arguments={"size": 4}) == ALL_IDS
    assert len(upstream.requests) == 6


async def test_cursor_pagination_reads_the_cursor_from_the_body(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.by_cursor") == ALL_IDS
    assert upstream.queries()[1:] == [{"limit": "10", "key": KEY, "cursor": c}
                                      for c in ("10", "20")]


async def test_cursor_pagination_reads_the_cursor_from_a_header(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.by_header") == ALL_IDS
    assert len(upstream.requests) == 6 and "after=20" in upstream.requests[-1]


async def test_page_numbers_start_at_first_page_and_stop_on_a_short_page(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.by_page") == ALL_IDS
    assert [r.split("p=")[1][0] for r in upstream.requests] == ["0", "1", "2"]


async def test_offsets_advance_by_the_records_received_until_a_short_page(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.by_offset") == ALL_IDS
    assert ["skip=0" in upstream.requests[0], "skip=20" in upstream.requests[-1]] == [True, True]


async def test_next_url_pagination_follows_the_url_in_the_body(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.by_next_url") == ALL_IDS
    assert len(upstream.requests) == 4
    # the action's own response mapping is untouched without paginate
    assert await pw.call("feed.by_next_url") == RECORDS[:6]


async def test_an_action_level_pagination_overrides_the_connectors(
    feed: tuple[Patchwire, Feed],
) -> None:
    # The connector pages by Link header; by_offset's own offset style is what is used
    # (the link style would have stopped after one page: /offset sends no Link header).
    pw, upstream = feed
    assert await ids(pw, "feed.by_offset") == ALL_IDS
    assert all("take=10" in r for r in upstream.requests)


# -- bounds -------------------------------------------------------------------------------


async def test_max_items_stops_early_without_fetching_further_pages(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.by_cursor", max_items=12) == ALL_IDS[:12]
    assert len(upstream.requests) == 2
    assert await pw.call("feed.by_header", paginate=True, max_items=4) == RECORDS[:4]
    assert len(upstream.requests) == 3


async def test_max_items_below_the_page_size_asks_for_a_smaller_page(
    feed: tuple[Patchwire, Feed], pw: Patchwire, sandbox: Sandbox,
) -> None:
    feed_pw, upstream = feed
    assert await ids(feed_pw, "feed.by_cursor", max_items=3) == ALL_IDS[:3]
    assert upstream.queries() == [{"limit": "3", "key": KEY}]
    orders = await pw.call("shop.list_orders", paginate=True, max_items=5)
    assert [o["id"] for o in orders] == ["1", "2", "3", "4", "5"]
    assert len(await pw.recent_calls(action="shop.list_orders")) == 1
    assert sandbox.stats.requests["shop"] == 1


async def test_max_items_on_the_sandbox_reads_only_the_pages_it_needs(pw: Patchwire) -> None:
    orders = await pw.call("shop.list_orders", {"limit": 20}, paginate=True, max_items=45)
    assert len(orders) == 45
    assert len(await pw.recent_calls(action="shop.list_orders")) == 3


async def test_breaking_out_of_the_iterator_fetches_no_more_pages(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    async for record in pw.paginate("feed.linked"):
        if record["id"] == 3:
            break
    assert len(upstream.requests) == 1


async def test_max_items_zero_sends_nothing(feed: tuple[Patchwire, Feed]) -> None:
    pw, upstream = feed
    assert await pw.call("feed.linked", paginate=True, max_items=0) == []
    assert upstream.requests == []


async def test_max_pages_bounds_the_walk_quietly(feed: tuple[Patchwire, Feed]) -> None:
    pw, upstream = feed
    assert await ids(pw, "feed.endless", max_pages=7) == list(range(7))
    assert len(upstream.requests) == 7


async def test_the_default_page_bound_fails_loudly_rather_than_truncating(
    feed: tuple[Patchwire, Feed], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("patchwire.calls._pagination.DEFAULT_MAX_PAGES", 5)
    pw, upstream = feed
    with pytest.raises(PaginationError, match="still had pages after 5; pass max_pages"):
        await ids(pw, "feed.endless")
    assert len(upstream.requests) == 5


# -- safety -------------------------------------------------------------------------------


async def test_a_repeated_cursor_is_a_loop_and_stops_the_walk(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    seen: list[Any] = []
    with pytest.raises(PaginationError, match="cursor already followed") as caught:
        async for record in pw.paginate("feed.loop_cursor"):
            seen.append(record)
    assert len(upstream.requests) == 2 and len(seen) == 2
    assert caught.value.context.action == "feed.loop_cursor"
    assert caught.value.context.connection == "feed"


async def test_a_next_link_back_to_a_page_already_read_is_a_loop(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    with pytest.raises(PaginationError, match="next URL already followed"):
        await pw.call("feed.loop_link", paginate=True)
    assert len(upstream.requests) == 2


async def test_a_page_that_ignores_its_page_number_is_a_loop(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    with pytest.raises(PaginationError, match=r"identical to the one before.*'page'"):
        await pw.call("feed.loop_pages", paginate=True)
    assert len(upstream.requests) == 2


async def test_a_next_url_on_another_origin_is_refused_before_anything_is_sent(
    feed: tuple[Patchwire, Feed],
) -> None:
    pw, upstream = feed
    with pytest.raises(PaginationError, match="another origin") as caught:
        await pw.call("feed.foreign_link", paginate=True)
    assert "localhost" in str(caught.value) and KEY not in str(caught.value)
    # only the first page reached the upstream: the key never went to the other origin
    assert upstream.queries() == [{"size": "10", "key": KEY}]
    # and the refused page is on record as a failed call
    calls = await pw.recent_calls(action="feed.foreign_link")
    assert sorted(c.status for c in calls) == ["error", "ok"]
    assert {c.error_class for c in calls} == {None, "pagination_error"}


async def test_paginate_on_an_action_without_pagination_is_a_clear_error(
    feed: tuple[Patchwire, Feed], pw: Patchwire,
) -> None:
    feed_pw, upstream = feed
    with pytest.raises(PaginationError, match=r"feed\.single does not paginate"):
        await feed_pw.call("feed.single", paginate=True)
    assert upstream.requests == []
    # a built-in action that overrides its connector's pagination with `none`
    with pytest.raises(PaginationError, match=r"shop\.list_products does not paginate"):
        await pw.call("shop.list_products", paginate=True)
    assert await pw.recent_calls(action="shop.list_products") == []


async def test_a_pagination_style_missing_its_expression_is_a_clear_error(
    tmp_path: Path,
) -> None:
    spec = load_connector_text(
        "name: bare\nbase_url: http://127.0.0.1:9\npagination: {style: next_url}\n"
        "actions:\n  items: {request: {path: /items}}\n", "bare.yaml")
    async with Patchwire(local_settings(tmp_path / "h"),
                         connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("bare", "bare")
        with pytest.raises(PaginationError, match="needs `next_url`"):
            await pw.call("bare.items", paginate=True)


async def test_invalid_bounds_are_rejected(feed: tuple[Patchwire, Feed]) -> None:
    pw, _ = feed
    with pytest.raises(ValueError, match="max_pages"):
        await pw.call("feed.linked", paginate=True, max_pages=0)
    with pytest.raises(ValueError, match="max_items"):
        await pw.call("feed.linked", paginate=True, max_items=-1)
