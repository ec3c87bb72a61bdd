"""The Connections page and what the overview says about connections, over HTTP against
the real app (uvicorn on loopback, the sandbox shop as the upstream), on SQLite and
PostgreSQL: each end user's connections with health, failures by kind, token status and
last error; a connection's call log; the overview's breaker explained next to its success
rate and its warning about connections needing attention; who decided an approval; and
what an end-user token, a hostile id or another site gets."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from patchwire import Patchwire
from patchwire.access import AccessPolicy
from patchwire.connect import ConnectSessions
from patchwire.dashboard import _connections
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.store.keys import KeyRepository
from patchwire.store.tools import ToolRepository
from tests.support.dashboard import WAIT_S, Dash, text_of
from tests.support.servers import serving
from tests.support.settings import free_port, local_settings

CALL = "/actions/shop.get_order/call"
#: an end user's id and a label a hostile platform user chose
HOSTILE_USER = "<script>alert('eu')</script>"
HOSTILE_LABEL = '"><img src=x onerror=alert(1)>'


async def setup_connections(pw: Patchwire, sandbox: Sandbox, canary: str) -> None:
    """``acme`` (the operator's); ``u1``: ``u1-shop`` and ``u1-work`` (a wrong key);
    ``u2``: ``u2-shop``; ``u3``: ``u3-down`` (nothing listens at its address); a hostile
    end user's ``evil-shop``."""
    good = {"sandbox_url": sandbox.url, "api_key": canary}
    await pw.add_connection("shop", "acme", good)
    await pw.add_connection("shop", "u1-shop", good, end_user="u1")
    await pw.add_connection("shop", "u1-work", {**good, "api_key": "wrong"}, end_user="u1",
                            label="work")
    await pw.add_connection("shop", "u2-shop", good, end_user="u2")
    await pw.add_connection("shop", "u3-down", {**good,
                                                "sandbox_url": f"http://127.0.0.1:{free_port()}"},
                            end_user="u3")
    await pw.add_connection("shop", "evil-shop", good, end_user=HOSTILE_USER,
                            label=HOSTILE_LABEL)


@pytest.fixture
async def board(store_url: str, tmp_path: Path, sandbox: Sandbox,
                canary: str) -> AsyncIterator[Dash]:
    """The app (dashboard included) over connections of several end users."""
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup_connections(setup, sandbox, canary)
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as http,
    ):
        yield Dash(url, http, sandbox, canary, settings)


async def call(dash: Dash, connection: str, order_id: str = "42") -> int:
    async with dash.http.post(dash.at("/api/v1" + CALL),
                              json={"connection": connection,
                                    "input": {"order_id": order_id}}) as resp:
        await resp.read()
        return resp.status


def row_of(html: str, connection: str) -> str:
    found = re.search(rf'<tr data-connection="{re.escape(connection)}".*?</tr>', html, re.S)
    assert found, f"no row for {connection}"
    return text_of(found[0])


async def set_state(dash: Dash, name: str, **state: Any) -> None:
    async with Patchwire(dash.settings) as pw:
        assert await pw.store.set_connection_state(name, **state)


# -- the Connections page ---------------------------------------------------------------


async def test_the_page_shows_each_end_users_connections_with_health_and_failures_by_kind(
        board: Dash) -> None:
    for connection, order in (("u1-shop", "42"), ("u1-shop", "42"), ("u1-shop", "404404"),
                              ("u1-work", "42"), ("u1-work", "42")):
        await call(board, connection, order)
    html = await board.page("/connections")
    assert re.findall(r'<tr data-connection="([^"]+)"', html) == [
        "acme", "evil-shop", "u1-shop", "u1-work", "u2-shop", "u3-down"]
    shop = row_of(html, "u1-shop")
    assert re.search(r"u1 shop u1-shop 3 66\.7% \d+(\.\d)? ms auth 0 · client 1 · "
                     r"upstream 0 · transport 0", shop), shop
    assert "not_found (client)" in shop
    work = row_of(html, "u1-work")
    assert "u1-work (work)" in work and "2 0.0%" in work and "auth 2" in work, work
    assert "auth_error (auth)" in work and "wrong" not in work  # its key never shows
    assert "operator" in row_of(html, "acme") and "none" in row_of(html, "u2-shop")
    assert board.canary not in html

    mine = await board.page("/connections", end_user="u1")
    assert re.findall(r'<tr data-connection="([^"]+)"', mine) == ["u1-shop", "u1-work"]
    assert "No connections match" in await board.page("/connections", connector="calendar")
    assert 'href="/connections"' in await board.page("/")  # in the navigation


async def test_the_page_goes_a_page_at_a_time(board: Dash,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_connections, "PAGE", 2)  # read per request
    first = await board.page("/connections")
    assert re.findall(r'<tr data-connection="([^"]+)"', first) == ["acme", "evil-shop"]
    second = await board.page(re.search(r'href="(/connections\?[^"]+)" rel="next"',
                                        first)[1].replace("&amp;", "&"))
    assert re.findall(r'<tr data-connection="([^"]+)"', second) == ["u1-shop", "u1-work"]
    assert 'rel="prev"' in second
    last = await board.page("/connections", page="3")
    assert re.findall(r'<tr data-connection="([^"]+)"', last) == ["u2-shop", "u3-down"]
    assert 'rel="next"' not in last
    # a page number that is not one is the first page, not an error
    assert "acme" in await board.page("/connections", page="nope")


async def test_a_connections_call_log_is_its_drill_down(
        board: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    for order in ("42", "404404", "42"):
        await call(board, "u1-shop", order)
    await call(board, "u2-shop")
    listing = await board.page("/connections")
    assert "/connections/calls?connection=u1-shop" in listing

    monkeypatch.setattr(_connections, "CALLS_PAGE", 2)
    html = await board.page("/connections/calls", connection="u1-shop")
    facts = text_of(re.search(r'<dl class="facts".*?</dl>', html, re.S)[0])
    assert "End user u1" in facts and "3 · success 66.7%" in facts
    assert "not_found (client)" in facts
    assert re.findall(r'data-call="\w+" data-status="(\w+)"', html) == ["ok", "error"]
    older = re.search(r'href="(/connections/calls\?[^"]+)" rel="next"', html)[1]
    rest = await board.page(older.replace("&amp;", "&"))
    assert re.findall(r'data-call="\w+" data-status="(\w+)"', rest) == ["ok"]
    assert 'rel="next"' not in rest
    assert "u2-shop" not in html + rest  # another connection's calls are not in its log

    assert "no connection named" in await board.page("/connections/calls", 404,
                                                     connection="nope")


# -- the overview ------------------------------------------------------------------------


async def test_the_overview_says_what_its_breaker_counts_next_to_the_success_rate(
        board: Dash) -> None:
    for _ in range(3):
        await call(board, "u1-work")  # refused keys: failed calls, healthy upstream
    await call(board, "u3-down")  # connection refused, retried: breaker failures
    html = await board.page("/")
    # the end users' connections of the shop, summed up in one row
    found = re.search(r'<tr data-end-users="shop".*?</tr>', html, re.S)
    assert found, "no row for the end users' shop connections"
    shop = text_of(found[0])
    assert re.search(r"\(5 connections of 4 end users\) 4 0\.0% failed: auth 3 · client 0 · "
                     r"upstream 0 · transport 1 ", shop), shop
    # the breaker is the connector's: it saw the connection errors, not the refused keys,
    # and says when it would open — closed with failures is explained, not a contradiction
    breaker = re.search(r"closed counts 5xx, timeouts and connection errors only: (\d+) "
                        r"of its last (\d+) requests \(60\.0 s\); opens at ≥ 50\.0% of ≥ 20",
                        shop)
    assert breaker, shop
    failures, requests = int(breaker[1]), int(breaker[2])
    assert 1 <= failures < requests  # the retried connection errors only


async def test_the_overview_raises_connections_needing_attention(board: Dash) -> None:
    assert 'id="attention"' not in await board.page("/")
    await set_state(board, "u1-work", needs_reauth=True)
    await set_state(board, "u3-down", health="unhealthy")
    html = await board.page("/")
    block = re.search(r'<section class="warning-block" id="attention".*?</section>', html,
                      re.S)
    assert block, "no warning"
    shown = text_of(block[0])
    assert "2 connections need attention" in shown
    assert re.search(r"u1-work shop · end user u1 needs re-auth", shown), shown
    assert re.search(r"u3-down shop · end user u3 unhealthy", shown), shown
    assert 'href="/connections?attention=1"' in block[0]
    flagged = await board.page("/connections", attention="1")
    assert re.findall(r'<tr data-connection="([^"]+)"', flagged) == ["u1-work", "u3-down"]
    assert "needs re-auth" in row_of(flagged, "u1-work")
    assert "unhealthy" in row_of(flagged, "u3-down")
    live = await board.partial("/")
    assert 'id="attention"' in live  # the polled part carries it too


# -- who decides approvals ---------------------------------------------------------------


@pytest.fixture
async def keyed(store_url: str, tmp_path: Path, sandbox: Sandbox,
                canary: str) -> AsyncIterator[tuple[Dash, dict[str, str]]]:
    """The app with API keys: an admin key named "ana's laptop" and one whose name is as
    long as a name may be; the client sends the first."""
    settings = local_settings(tmp_path / "home", database_url=store_url)
    keys: dict[str, str] = {}
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                    "api_key": canary})
        repo = KeyRepository(setup.store)
        for name in ("ana's laptop", "x" * 200):
            record, text = await repo.create(name, ["admin"])
            keys[name[:20]] = text
            keys[f"{name[:20]}:id"] = record.id
    headers = {"Authorization": "Bearer " + keys["ana's laptop"]}
    async with (
        serving(create_app(Patchwire(settings), access=AccessPolicy(cache_ttl=0))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S),
                              headers=headers) as http,
    ):
        yield Dash(url, http, sandbox, canary, settings), keys


async def pending_approval(dash: Dash, status: str) -> str:
    orders = dash.sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    order = next(o for o, row in orders.items() if row["status"] == "pending")
    pending = await dash.api("POST", "/tools/shop_update_order_status/call",
                             arguments={"order_id": order, "status": status})
    assert pending["status"] == "pending_approval"
    return str(pending["approval_id"])


async def test_an_approval_records_the_signed_in_keys_identity_not_a_typed_name(
        keyed: tuple[Dash, dict[str, str]]) -> None:
    dash, keys = keyed
    ana = "key:" + keys["ana's laptop:id"] + " (ana's laptop)"
    approval_id = await pending_approval(dash, "cancelled")
    page = html.unescape(text_of(await dash.page("/approvals")))
    assert f"as {ana}" in page

    resp = await dash.post(f"/approvals/{approval_id}/approve",
                           {"by": "mallory", "reason": "customer asked"})
    assert resp.status == 303
    async with Patchwire(dash.settings) as pw:
        decided = await ToolRepository(pw.store).get_approval(approval_id)
    assert (decided.status, decided.decided_by) == ("approved", ana)
    assert "mallory" not in text_of(await dash.page("/approvals", status="all"))

    # a key whose name is as long as names may be: its id is kept whole, the rest fits
    long_key = {"Authorization": f"Bearer {keys['x' * 20]}"}
    other = await pending_approval(dash, "refunded")
    async with dash.http.post(dash.at(f"/approvals/{other}/deny"), data={"reason": "no"},
                              headers={**long_key, "Origin": dash.url},
                              allow_redirects=False) as denied:
        assert denied.status == 303, await denied.text()
    async with Patchwire(dash.settings) as pw:
        decided = await ToolRepository(pw.store).get_approval(other)
    assert decided.status == "denied" and decided.decided_by is not None
    assert decided.decided_by.startswith(f"key:{keys['x' * 20 + ':id']} (xxxx")
    assert len(decided.decided_by) <= 200


# -- end users, hostile text, other sites ----------------------------------------------------


async def test_an_end_user_token_does_not_reach_the_dashboard(board: Dash) -> None:
    created = await board.api("POST", "/end-users/u1/tokens")
    bearer = {"Authorization": f"Bearer {created['token']}"}
    for path in ("/", "/connections", "/connections/calls?connection=u1-shop", "/approvals",
                 "/runs", "/tool-audit"):
        async with board.http.get(board.at(path), headers=bearer) as resp:
            body = await resp.text()
            assert resp.status == 404, (path, resp.status)
            assert "u1-shop" not in body and "u2" not in body
    async with board.http.post(board.at("/connections/reconnect"),
                               data={"connection": "u1-shop"},
                               headers={**bearer, "Origin": board.url}) as resp:
        assert resp.status == 404


async def test_a_hostile_end_user_id_and_label_are_shown_as_text(board: Dash) -> None:
    await call(board, "evil-shop")
    await set_state(board, "evil-shop", needs_reauth=True)
    pages = [await board.page("/connections"),
             await board.page("/connections", end_user=HOSTILE_USER),
             await board.page("/connections/calls", connection="evil-shop"),
             await board.page("/")]
    for shown in pages:
        assert "<script>alert(" not in shown and "<img src=x" not in shown
        assert "&lt;script&gt;alert(" in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0]
    assert re.findall(r'<tr data-connection="([^"]+)"', pages[1]) == ["evil-shop"]


async def test_the_pages_refuse_framing_and_the_reconnect_refuses_other_sites(
        board: Dash) -> None:
    async with board.http.get(board.at("/connections")) as resp:
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    refused = await board.post("/connections/reconnect", {"connection": "u1-shop"},
                               origin="http://evil.example")
    assert refused.status == 403
    async with board.http.post(board.at("/connections/reconnect"),
                               data={"connection": "u1-shop"},
                               headers={"Sec-Fetch-Site": "cross-site"},
                               allow_redirects=False) as cross:
        assert cross.status == 403


async def connect_sessions(dash: Dash) -> int:
    async with (await Store.open(dash.settings.database_url) as store,
                store.engine.connect() as conn):
        return int((await conn.execute(sa.text("SELECT count(*) FROM connect_sessions")))
                   .scalar_one())


async def test_a_reconnect_link_is_made_for_the_connections_end_user_and_connector(
        board: Dash) -> None:
    listing = await board.page("/connections")
    row = re.search(r'<tr data-connection="u1-work".*?</tr>', listing, re.S)[0]
    assert 'action="/connections/reconnect"' in row and "Reconnect link" in row
    operator = re.search(r'<tr data-connection="acme".*?</tr>', listing, re.S)[0]
    assert "Reconnect link" not in operator  # no end user to hand a link to

    resp = await board.post("/connections/reconnect", {"connection": "u1-work"})
    assert resp.status == 200
    html = await resp.text()
    box = re.search(r'<section class="notice" id="connect-link">.*?</section>', html, re.S)
    assert box and "A connect link for u1 :" in text_of(box[0])
    # the link is on the deployment's public URL (here the settings' default address)
    token = re.search(r'href="[^"]+/connect/([^"]+)"', box[0])[1]
    async with Patchwire(board.settings) as pw:
        session = await ConnectSessions(pw.runtime).record(token)
    assert (session.end_user, session.connectors, session.connection) == (
        "u1", ("shop",), "u1-work")
    async with board.http.get(board.at(f"/connect/{token}")) as page:  # the hosted page
        assert page.status == 200 and "shop" in await page.text()

    before = await connect_sessions(board)
    refused = await board.post("/connections/reconnect", {"connection": "acme"})
    assert refused.status == 409 and "operator" in await refused.text()
    missing = await board.post("/connections/reconnect", {"connection": "nope"})
    assert missing.status == 404
    cross = await board.post("/connections/reconnect", {"connection": "u1-work"},
                             origin="http://evil.example")
    assert cross.status == 403
    assert await connect_sessions(board) == before  # none of those made a link
