"""The Catalog page: every real-world connector with its facts, searched and filtered;
one connector's auth facts, settings and marked actions; adding it to the deployment from
the page (in force at once); a connect link for an end user starts there; and what a
hostile page or a hostile end user id gets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.catalog import load_catalog
from patchwire.connect import ConnectSessions
from tests.support.dashboard import WAIT_S, Dash, text_of
from tests.support.servers import serving
from tests.support.settings import local_settings


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Dash]:
    from patchwire.server import create_app

    settings = local_settings(tmp_path / "home", connector_paths=(tmp_path / "connectors",))
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S * 3)) as http,
    ):
        yield Dash(url, http, None, "", settings)  # type: ignore[arg-type]


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-connector="([^"]+)"', html)


async def test_the_catalog_lists_every_connector_and_finds_one_by_what_people_call_it(
        board: Dash) -> None:
    listing = await board.page("/catalog")
    assert rows(listing) == [e.name for e in load_catalog()]
    assert 'href="/catalog"' in listing and 'aria-current="page"' in listing

    found = await board.page("/catalog", q="stripe refund")
    assert rows(found)[0] == "stripe"
    payments = await board.page("/catalog", category="payments")
    assert "stripe" in rows(payments)
    assert all("payments" in e.categories for e in load_catalog() if e.name in rows(payments))


async def test_a_connectors_page_shows_its_auth_facts_sources_and_marked_actions(
        board: Dash) -> None:
    page = await board.page("/catalog/stripe")
    facts = text_of(re.search(r'<dl class="facts" id="catalog-facts">.*?</dl>', page, re.S)[0])
    assert "https://api.stripe.com" in facts and "bearer" in facts
    assert "docs.stripe.com" in facts and "Licence" in facts
    refund = re.search(r'<tr data-action="refund_payment">.*?</tr>', page, re.S)[0]
    assert "destructive" in refund and "confirm" in refund
    assert 'id="add-connector"' in page and 'id="new-connect-link"' not in page
    await board.page("/catalog/no_such_thing", 404)


async def test_adding_from_the_page_puts_it_in_force_and_a_connect_link_starts_there(
        board: Dash) -> None:
    added = await board.post("/catalog/stripe/add")
    assert added.status == 200
    html = await added.text()
    assert "is enabled" in text_of(html) and 'id="enabled"' in html
    assert 'id="new-connect-link"' in html and 'id="add-connector"' not in html
    assert "stripe" in {c["name"] for c in await board.api("GET", "/connectors")}

    resp = await board.post("/catalog/stripe/connect-link", {"end_user": "user:7"})
    assert resp.status == 200
    box = re.search(r'<section class="notice" id="connect-link">.*?</section>',
                    await resp.text(), re.S)
    assert box and "user:7" in text_of(box[0])
    token = re.search(r'href="[^"]+/connect/([^"]+)"', box[0])[1]
    async with Patchwire(board.settings) as pw:
        session = await ConnectSessions(pw.runtime).record(token)
    assert (session.end_user, session.connectors) == ("user:7", ("stripe",))


async def test_another_site_cannot_add_a_connector_or_make_a_link(board: Dash) -> None:
    refused = await board.post("/catalog/stripe/add", origin="http://evil.example")
    assert refused.status == 403
    refused = await board.post("/catalog/stripe/connect-link", {"end_user": "u"},
                               origin="http://evil.example")
    assert refused.status == 403
    assert "stripe" not in {c["name"] for c in await board.api("GET", "/connectors")}


async def test_a_hostile_end_user_id_or_search_is_shown_as_text_never_markup(
        board: Dash) -> None:
    hostile = "<script>alert(1)</script>"
    found = await board.page("/catalog", q=hostile)
    assert "<script>alert(1)" not in found and "&lt;script&gt;" in found
    await board.post("/catalog/stripe/add")
    resp = await board.post("/catalog/stripe/connect-link", {"end_user": hostile})
    html = await resp.text()
    assert "<script>alert(1)" not in html
    empty = await board.post("/catalog/stripe/connect-link", {"end_user": "  "})
    assert empty.status == 422
