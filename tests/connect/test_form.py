"""The credentials form behind a connect link: fields named as the connector's settings,
secrets masked, proved with the connector's test call before anything is saved."""

from __future__ import annotations

import logging

import pytest

from tests.support.connect import Site
from tests.support.leaks import leaks_in, leaks_in_database


async def test_the_page_lists_the_connectors_the_link_offers(site: Site) -> None:
    link = await site.link(connectors=("shop", "oauthy"))
    status, html, _ = await site.page(link["url"])
    assert status == 200, html
    assert 'id="connect-shop"' in html and "Connect Sandbox Shop" in html
    assert 'id="connect-oauthy"' in html and "Connect Sandbox Account" in html


async def test_the_form_asks_for_the_connectors_settings_with_secrets_masked(
        site: Site) -> None:
    link = await site.link()
    status, html, _ = await site.page(f"{link['url']}/shop")
    assert status == 200, html
    assert '<label for="field-api_key">' in html
    assert 'name="api_key" type="password"' in html
    assert 'name="sandbox_url"' not in html  # the deployment's (it has a default)
    assert 'id="connect-submit"' in html


async def test_a_wrong_key_is_shown_as_wrong_and_nothing_is_saved(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = await site.link()
    wrong = "wrong-key-" + site.canary[::-1]
    status, html, _ = await site.post_form(f"{link['url']}/shop", {"api_key": wrong})
    assert status == 422, html
    assert 'data-wrong-credentials="true"' in html and "refused these credentials" in html
    assert leaks_in(html, wrong) == []  # not filled back in
    assert await site.pw.list_connections(end_user="u1") == []
    async with site.http.get(site.at(f"/api/v1/connect-sessions/{link['token']}")) as resp:
        assert (await resp.json())["status"] == "pending"  # the link can be used again
    assert leaks_in(caplog.text, wrong) == []


async def test_the_right_key_is_saved_for_the_end_user_and_their_calls_work(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = await site.link(end_user="u7")
    status, html, _ = await site.post_form(f"{link['url']}/shop", {"api_key": site.canary})
    assert status == 200, html
    assert "Connected — you can return to the chat" in html
    assert leaks_in(html, site.canary) == []
    [conn] = await site.pw.list_connections(end_user="u7")
    assert conn.connector == "shop" and conn.name.startswith("shop-")
    assert conn.is_default  # the end user's first shop connection
    orders = await site.pw.call("shop.list_orders", {"limit": 1}, end_user="u7")
    assert orders is not None
    async with site.http.get(site.at(f"/api/v1/connect-sessions/{link['token']}")) as resp:
        assert await resp.json() == {**await resp.json(), "status": "connected",
                                     "connection": conn.name}
    assert leaks_in(caplog.text, site.canary) == []
    assert (await leaks_in_database(site.database_url, site.canary)) == {}


async def test_a_used_link_is_closed_with_a_410_page(site: Site) -> None:
    link = await site.link()
    status, _, _ = await site.post_form(f"{link['url']}/shop", {"api_key": site.canary})
    assert status == 200
    for url in (link["url"], f"{link['url']}/shop"):
        status, html, _ = await site.page(url)
        assert status == 410, html
        assert "ask the chat for a new one" in html
    status, html, _ = await site.post_form(f"{link['url']}/shop", {"api_key": site.canary})
    assert status == 410
    assert len(await site.pw.list_connections(end_user="u1")) == 1


async def test_a_return_url_gets_the_browser_back_after_connecting(site: Site) -> None:
    link = await site.link(return_url="https://chat.example.com/back?x=1")
    status, _, headers = await site.post_form(f"{link['url']}/shop",
                                              {"api_key": site.canary})
    assert status == 303
    assert headers["Location"] == "https://chat.example.com/back?x=1"


async def test_reconnecting_replaces_the_credentials_of_the_same_connection(
        site: Site) -> None:
    await site.pw.add_connection("shop", "u1-shop", {"api_key": "revoked-key"},
                                 end_user="u1")
    link = await site.link(connection="u1-shop", connectors=())
    status, html, _ = await site.post_form(f"{link['url']}/shop", {"api_key": site.canary})
    assert status == 200, html
    [conn] = await site.pw.list_connections(end_user="u1")
    assert conn.name == "u1-shop"
    assert await site.pw.call("shop.list_orders", {"limit": 1}, end_user="u1") is not None


@pytest.mark.parametrize("value", ["abc\r\nX-Injected: 1", "abc\x00", "k" * 5000])
async def test_a_field_with_a_line_break_a_nul_or_too_long_is_refused_and_nothing_saved(
        site: Site, value: str) -> None:
    link = await site.link()
    status, html, _ = await site.post_form(f"{link['url']}/shop", {"api_key": value})
    assert status == 422, html
    assert 'id="connect-error"' in html
    assert await site.pw.list_connections(end_user="u1") == []


async def test_an_oversized_form_is_refused(site: Site) -> None:
    link = await site.link()
    status, _, _ = await site.post_form(f"{link['url']}/shop",
                                        {"api_key": "k", "pad": "x" * 100_000})
    assert status == 413
    assert await site.pw.list_connections(end_user="u1") == []


async def test_a_post_from_another_sites_page_is_refused_and_nothing_saved(
        site: Site) -> None:
    link = await site.link()
    status, _, _ = await site.post_form(f"{link['url']}/shop", {"api_key": site.canary},
                                        origin="https://evil.example")
    assert status == 403
    assert await site.pw.list_connections(end_user="u1") == []


async def test_the_pages_refuse_framing_and_are_not_cached(site: Site) -> None:
    link = await site.link()
    for url in (link["url"], f"{link['url']}/shop", site.at("/connect/" + "x" * 43)):
        _, _, headers = await site.page(url)
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        # the form's own post keeps its Origin; no other site gets the token's URL
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"


async def test_an_unknown_token_gets_a_404_page_without_a_traceback(site: Site) -> None:
    for token in ("x" * 43, "short", "%00"):
        status, html, headers = await site.page(site.at(f"/connect/{token}"))
        assert status == 404, html
        assert headers["Content-Type"].startswith("text/html")
        assert "Traceback" not in html and "Link not found" in html


async def test_a_connector_the_link_does_not_offer_is_not_found(site: Site) -> None:
    link = await site.link()
    status, _, _ = await site.page(f"{link['url']}/oauthy")
    assert status == 404
    status, _, _ = await site.post_form(f"{link['url']}/calendar", {"token": "t"})
    assert status == 404
