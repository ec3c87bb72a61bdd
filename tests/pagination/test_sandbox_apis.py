"""Every built-in list action walks every record of its sandbox API exactly once.

The expected ids come from raw aiohttp loops written against each API's own documented
paging (aiohttp's own Link parser for the calendar), not from Patchwire.
"""

from __future__ import annotations

import math
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox, auth_headers

MAX_RAW_PAGES = 100


async def raw_shop(http: aiohttp.ClientSession, sandbox: Sandbox, path: str) -> list[str]:
    ids: list[str] = []
    params = {"limit": "100"}
    for _ in range(MAX_RAW_PAGES):
        async with http.get(sandbox.api_url("shop") + path, params=params,
                            headers=auth_headers("shop")) as resp:
            page = await resp.json()
        ids += [item["id"] for item in page["data"]]
        if not page["next_cursor"]:
            return ids
        params["cursor"] = page["next_cursor"]
    raise AssertionError("too many pages")


async def raw_helpdesk(http: aiohttp.ClientSession, sandbox: Sandbox) -> tuple[list[int], int]:
    ids: list[int] = []
    for number in range(1, MAX_RAW_PAGES):
        async with http.get(sandbox.api_url("helpdesk") + "/tickets",
                            params={"page": str(number), "per_page": "100"},
                            headers=auth_headers("helpdesk")) as resp:
            page = await resp.json()
        ids += [t["id"] for t in page["tickets"]]
        if number >= page["total_pages"]:
            return ids, page["total"]
    raise AssertionError("too many pages")


async def raw_calendar(http: aiohttp.ClientSession, sandbox: Sandbox) -> tuple[list[str], int]:
    ids: list[str] = []
    url: Any = sandbox.api_url("calendar") + "/appointments?per_page=100"
    for _ in range(MAX_RAW_PAGES):
        async with http.get(url, headers=auth_headers("calendar")) as resp:
            ids += [a["id"] for a in await resp.json()]
            total = int(resp.headers["X-Total-Count"])
            if "next" not in resp.links:
                return ids, total
            url = resp.links["next"]["url"]
    raise AssertionError("too many pages")


async def raw_payments(http: aiohttp.ClientSession, sandbox: Sandbox) -> list[str]:
    ids: list[str] = []
    for _ in range(MAX_RAW_PAGES):
        async with http.get(sandbox.api_url("payments") + "/charges",
                            params={"offset": str(len(ids)), "limit": "100"},
                            headers=auth_headers("payments")) as resp:
            page = await resp.json()
        ids += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            return ids
    raise AssertionError("too many pages")


async def walk(pw: Patchwire, action: str, **arguments: Any) -> list[Any]:
    return [r["id"] async for r in pw.paginate(action, arguments)]


async def pages_called(pw: Patchwire, action: str) -> int:
    return len(await pw.recent_calls(action=action, limit=1000))


@pytest.mark.parametrize("page_size", [None, 7])
async def test_shop_customers_and_orders_are_walked_exactly_once_by_cursor(
    pw: Patchwire, sandbox: Sandbox, http: aiohttp.ClientSession, page_size: int | None
) -> None:
    size = {"limit": page_size} if page_size else {}
    for action, path in (("shop.list_customers", "/customers"), ("shop.list_orders", "/orders")):
        expected = await raw_shop(http, sandbox, path)
        assert await walk(pw, action, **size) == expected
        assert len(set(expected)) == len(expected) > 0
        assert await pages_called(pw, action) == math.ceil(len(expected) / (page_size or 100))


async def test_shop_orders_walk_keeps_the_callers_filters_on_every_page(
    pw: Patchwire, sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    orders = await walk(pw, "shop.list_orders", status="paid", limit=3)
    everything = await pw.call("shop.list_orders", paginate=True)
    assert orders == [o["id"] for o in everything if o["status"] == "paid"]
    assert len(orders) > 3


@pytest.mark.parametrize("page_size", [None, 9])
async def test_helpdesk_tickets_are_walked_exactly_once_by_page_number(
    pw: Patchwire, sandbox: Sandbox, http: aiohttp.ClientSession, page_size: int | None
) -> None:
    expected, total = await raw_helpdesk(http, sandbox)
    size = {"per_page": page_size} if page_size else {}
    assert await walk(pw, "helpdesk.list_tickets", **size) == expected
    assert len(set(expected)) == len(expected) == total
    assert await pages_called(pw, "helpdesk.list_tickets") == math.ceil(total / (page_size or 100))


@pytest.mark.parametrize("page_size", [None, 6])
async def test_calendar_appointments_are_walked_exactly_once_by_link_header(
    pw: Patchwire, sandbox: Sandbox, http: aiohttp.ClientSession, page_size: int | None
) -> None:
    expected, total = await raw_calendar(http, sandbox)
    size = {"per_page": page_size} if page_size else {}
    assert await walk(pw, "calendar.list_appointments", **size) == expected
    assert len(set(expected)) == len(expected) == total
    assert await pages_called(pw, "calendar.list_appointments") == math.ceil(
        total / (page_size or 100))


@pytest.mark.parametrize("page_size", [None, 11])
async def test_payments_charges_are_walked_exactly_once_by_offset(
    pw: Patchwire, sandbox: Sandbox, http: aiohttp.ClientSession, page_size: int | None
) -> None:
    expected = await raw_payments(http, sandbox)
    size = {"limit": page_size} if page_size else {}
    assert await walk(pw, "payments.list_charges", **size) == expected
    assert len(set(expected)) == len(expected) > 100
    assert await pages_called(pw, "payments.list_charges") == math.ceil(
        len(expected) / (page_size or 100))


async def test_call_with_paginate_collects_every_record_into_one_list(pw: Patchwire) -> None:
    charges = await pw.call("payments.list_charges", {"limit": 50}, paginate=True)
    assert isinstance(charges, list)
    assert len({c["id"] for c in charges}) == len(charges) > 100
    # Without paginate the call is unchanged: one page, the body as the API sent it.
    first = await pw.call("payments.list_charges", {"limit": 50})
    assert first["has_more"] is True and len(first["data"]) == 50


async def test_every_page_is_recorded_as_a_successful_call(pw: Patchwire) -> None:
    tickets = await pw.call("helpdesk.list_tickets", {"per_page": 25}, paginate=True)
    calls = await pw.recent_calls(action="helpdesk.list_tickets")
    assert len(calls) == math.ceil(len(tickets) / 25)
    assert {c.status for c in calls} == {"ok"} and {c.http_status for c in calls} == {200}
    assert len({c.request_id for c in calls}) == len(calls)
