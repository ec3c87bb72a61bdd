from __future__ import annotations

import aiohttp

from patchwire.sandbox import Sandbox, auth_headers


async def test_shop_cursor_pagination_walks_every_order_exactly_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"limit": "33"}
    while True:
        async with http.get(
            sandbox.api_url("shop") + "/orders", params=params, headers=auth_headers("shop")
        ) as resp:
            page = await resp.json()
        seen += [order["id"] for order in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [str(n) for n in range(1, 201)]


async def test_shop_customers_are_paginated_and_findable_by_email(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    headers = auth_headers("shop")
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        async with http.get(
            sandbox.api_url("shop") + "/customers", params=params, headers=headers
        ) as resp:
            page = await resp.json()
        ids += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == len(set(ids)) == 50
    async with http.get(sandbox.api_url("shop") + "/customers/cus_0007", headers=headers) as r:
        email = (await r.json())["email"]
    async with http.get(
        sandbox.api_url("shop") + "/customers", params={"email": email.upper()}, headers=headers
    ) as resp:
        assert [c["id"] for c in (await resp.json())["data"]] == ["cus_0007"]


async def test_an_unknown_cursor_is_a_400(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(
        sandbox.api_url("shop") + "/orders",
        params={"cursor": "garbage!"},
        headers=auth_headers("shop"),
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_cursor"


async def test_helpdesk_page_numbers_walk_every_ticket_exactly_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    ids: list[int] = []
    page_no = 1
    while True:
        async with http.get(
            sandbox.api_url("helpdesk") + "/tickets",
            params={"page": str(page_no), "per_page": "16"},
            headers=auth_headers("helpdesk"),
        ) as resp:
            page = await resp.json()
        ids += [t["id"] for t in page["tickets"]]
        if page_no >= page["total_pages"]:
            break
        page_no += 1
    assert ids == list(range(1, page["total"] + 1))
    assert page["total_pages"] == -(-page["total"] // 16)


async def test_calendar_link_headers_walk_every_appointment_exactly_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url: str | None = sandbox.api_url("calendar") + "/appointments?per_page=7"
    ids: list[str] = []
    total = None
    while url is not None:
        async with http.get(url, headers=auth_headers("calendar")) as resp:
            ids += [a["id"] for a in await resp.json()]
            total = int(resp.headers["X-Total-Count"])
            next_link = resp.links.get("next")
            if next_link is not None:
                assert str(next_link["url"]).startswith(sandbox.url)
            url = str(next_link["url"]) if next_link else None
    assert len(ids) == len(set(ids)) == total
    assert total and total > 7


async def test_calendar_link_header_names_prev_first_and_last(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.api_url("calendar") + "/appointments?per_page=5&page=2"
    async with http.get(url, headers=auth_headers("calendar")) as resp:
        assert set(resp.links) >= {"first", "prev", "last"}
        assert "page=1" in str(resp.links["prev"]["url"])


async def test_payments_offset_pagination_walks_every_charge_exactly_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    ids: list[str] = []
    offset = 0
    while True:
        async with http.get(
            sandbox.api_url("payments") + "/charges",
            params={"offset": str(offset), "limit": "25"},
            headers=auth_headers("payments"),
        ) as resp:
            page = await resp.json()
        assert page["offset"] == offset
        ids += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        offset += len(page["data"])
    assert len(ids) == len(set(ids)) == 120
