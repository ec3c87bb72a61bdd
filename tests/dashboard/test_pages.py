"""The dashboard over HTTP: every page and every action, against the real app (uvicorn on
loopback, its engine running flows, the sandbox APIs as upstreams), on SQLite.

Data is made through the real paths (REST API, engine, tool invoker), never by writing
rows, and each action is checked by its effect in the store, not only by the page."""

from __future__ import annotations

import re

import pytest

import patchwire.dashboard as dashboard
from patchwire import Patchwire
from patchwire.dashboard import _runs
from patchwire.store.tools import ToolRepository
from tests.support.dashboard import Dash, start, text_of
from tests.support.sandboxes import add_order

# -- overview ----------------------------------------------------------------------------


async def test_the_overview_shows_each_connections_quality_breaker_and_tokens(
        dash: Dash) -> None:
    call = "/actions/shop.get_order/call"
    await dash.api("POST", call, connection="acme", input={"order_id": "42"})
    async with dash.http.post(dash.at("/api/v1" + call),
                              json={"connection": "acme", "input": {"order_id": "404404"}}):
        pass  # an upstream 404: a failed call
    html = await dash.page("/")
    row = text_of(re.search(r'<tr data-connection="acme">.*?</tr>', html, re.S)[0])
    # 2 calls, one failed (the order is unknown: the caller's mistake); both latencies
    # measured; neither waited for a rate limit; the breaker has seen them and says what
    # it counts (a 404 is not one)
    assert re.search(r"shop acme 2 50\.0% failed: auth 0 · client 1 · upstream 0 · "
                     r"transport 0 \d+(\.\d)? ms \d+(\.\d)? ms 0\.00 none closed counts "
                     r"5xx, timeouts and connection errors only: 0 of its last 2 requests",
                     row), row
    ana = text_of(re.search(r'<tr data-connection="okta-ana">.*?</tr>', html, re.S)[0])
    assert re.search(r"expires in (59|60) min", ana), ana
    bob = text_of(re.search(r'<tr data-connection="okta-bob">.*?</tr>', html, re.S)[0])
    assert "needs re-auth" in bob
    assert html.count("<svg") == 4 and "Success rate" in html and "Retries per call" in html
    assert "<polyline" in html or "<circle" in html

    live = await dash.partial("/", window="1h", connector="shop")
    assert live.lstrip().startswith("{") is False and "<html" not in live
    assert 'id="overview-live"' in live and "Quality over time: shop" in live
    assert "last 7d" in await dash.page("/", window="7d")


# -- runs --------------------------------------------------------------------------------


async def test_the_runs_list_filters_by_flow_status_and_time_and_pages_with_a_cursor(
        dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = await start(dash, "order_status", order_id="42")
    failed = await start(dash, "two_orders", order_id="777777")
    refused = [await start(dash, "refuse", who=w) for w in ("a", "b", "c")]
    assert ok["status"] == "succeeded" and failed["status"] == "failed"

    everything = await dash.page("/runs")
    for run in (ok, failed, *refused):
        assert f'data-run="{run["id"]}"' in everything
    mine = await dash.page("/runs", flow="order_status")
    assert f'data-run="{ok["id"]}"' in mine and f'data-run="{failed["id"]}"' not in mine
    dead = await dash.page("/runs", status="failed")
    assert f'data-run="{failed["id"]}"' in dead and f'data-run="{ok["id"]}"' not in dead
    assert "not_found" in text_of(dead)
    assert "No runs match" in await dash.page("/runs", since="2999-01-01T00:00")
    assert f'data-run="{ok["id"]}"' in await dash.page("/runs", until="2999-01-01T00:00")

    rows = await dash.partial("/runs/rows", flow="refuse")
    assert "<html" not in rows and rows.count("data-run=") == 3
    assert 'data-poll="/runs/rows?flow=refuse"' in rows  # the first page stays live

    monkeypatch.setattr(_runs, "PAGE", 2)  # read per request by the runs pages
    first = await dash.page("/runs", flow="refuse")
    assert [m for m in re.findall(r'data-run="(\w+)"', first)] == [
        refused[2]["id"], refused[1]["id"]]
    older = re.search(r'href="(/runs\?[^"]+)" rel="next"', first)[1].replace("&amp;", "&")
    second = await dash.page(older)
    assert re.findall(r'data-run="(\w+)"', second) == [refused[0]["id"]]
    assert 'rel="next"' not in second and "data-poll" not in second  # all finished


async def test_a_failed_run_shows_its_timeline_and_retry_resumes_it_to_success(
        dash: Dash) -> None:
    failed = await start(dash, "two_orders", order_id="9002")
    html = await dash.page(f"/runs/{failed['id']}")
    assert re.findall(r'data-step="(\w+)" data-status="(\w+)"', html) == [
        ("known", "succeeded"), ("missing", "failed")]
    assert 'class="step s-failed failed-here"' in html
    assert "not_found at step" in text_of(html) and 'id="retry"' in html
    assert "shop.get_order" in html  # the step's declared inputs
    assert "data-poll" not in html  # finished: no polling

    add_order(dash.sandbox, "9002")
    resp = await dash.post(f"/runs/{failed['id']}/retry")
    assert resp.status == 303 and resp.headers["Location"] == f"/runs/{failed['id']}"
    done = await dash.run_until(failed["id"], "succeeded")
    assert done["attempt"] == 2 and done["output"] == ["42", "9002"]
    after = await dash.page(f"/runs/{failed['id']}")
    assert 'data-status="succeeded"' in after and 'id="retry"' not in after
    assert "9002" in after

    again = await dash.post(f"/runs/{failed['id']}/retry", partial=True)
    assert again.status == 200
    assert "only failed or cancelled runs can be retried" in await again.text()


async def test_a_waiting_run_polls_live_and_can_be_cancelled(dash: Dash) -> None:
    waiting = await start(dash, "pause")
    assert waiting["status"] == "waiting"
    html = await dash.page(f"/runs/{waiting['id']}")
    assert f'data-poll="/runs/{waiting["id"]}"' in html and 'id="cancel"' in html
    body = await dash.partial(f"/runs/{waiting['id']}")
    assert "<html" not in body and 'data-status="waiting"' in body

    resp = await dash.post(f"/runs/{waiting['id']}/cancel", partial=True)
    assert resp.status == 200
    fragment = await resp.text()
    assert 'data-status="cancelled"' in fragment and "Cancelled." in fragment
    assert (await dash.api("GET", f"/runs/{waiting['id']}"))["status"] == "cancelled"


async def test_posts_from_another_site_are_refused(dash: Dash) -> None:
    waiting = await start(dash, "pause")
    resp = await dash.post(f"/runs/{waiting['id']}/cancel", origin="http://evil.example")
    assert resp.status == 403
    async with dash.http.post(dash.at(f"/runs/{waiting['id']}/cancel"),
                              headers={"Sec-Fetch-Site": "cross-site"},
                              allow_redirects=False) as cross:
        assert cross.status == 403
    assert (await dash.api("GET", f"/runs/{waiting['id']}"))["status"] == "waiting"


async def test_unknown_runs_are_a_404_page(dash: Dash) -> None:
    assert "no run with id" in await dash.page("/runs/nope", 404)
    resp = await dash.post("/runs/nope/retry")
    assert resp.status == 404


async def test_untrusted_text_is_escaped_and_secret_values_are_redacted(dash: Dash) -> None:
    run = await start(dash, "refuse", who="<script>alert(1)</script>", password="hunter2")
    for html in (await dash.page(f"/runs/{run['id']}"), await dash.page("/runs")):
        assert "<script>alert(1)" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    detail = await dash.page(f"/runs/{run['id']}")
    assert "hunter2" not in detail and '"password": "***"' in detail.replace("&#34;", '"')

    # the shop key and the OAuth2 tokens are in the store, encrypted: never on a page
    await dash.api("POST", "/actions/shop.get_order/call", connection="acme",
                   input={"order_id": "42"})
    for path in ("/", "/runs", f"/runs/{run['id']}", "/approvals?status=all", "/tool-audit",
                 "/playground?tool=shop_get_order", "/inbox", "/deliveries"):
        assert dash.canary not in await dash.page(path), path


# -- approvals and the tool audit --------------------------------------------------------


def pending_order(dash: Dash) -> str:
    orders = dash.sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    return next(o for o, row in orders.items() if row["status"] == "pending")


async def test_an_approval_is_decided_once_with_who_and_why(dash: Dash) -> None:
    order = pending_order(dash)
    args = {"order_id": order, "status": "cancelled"}
    pending = await dash.api("POST", "/tools/shop_update_order_status/call", arguments=args,
                             session_id="chat-7")
    assert pending["status"] == "pending_approval"
    approval_id = pending["approval_id"]

    html = await dash.page("/approvals")
    card = re.search(rf'<article class="approval" id="approval-{approval_id}".*?</article>',
                     html, re.S)[0]
    assert 'data-status="pending"' in card and order in card and "chat-7" in card
    assert f'action="/approvals/{approval_id}/approve"' in card

    # who decided is who is signed in (here: loopback without keys), not a typed name
    assert 'name="by"' not in card and "as local" in text_of(card)
    resp = await dash.post(f"/approvals/{approval_id}/approve",
                           {"by": "ana", "reason": "customer asked"})
    assert resp.status == 303 and resp.headers["Location"] == "/approvals"
    assert "Set-Cookie" not in resp.headers
    async with Patchwire(dash.settings) as pw:
        decided = await ToolRepository(pw.store).get_approval(approval_id)
    assert (decided.status, decided.decided_by, decided.reason) == (
        "approved", "local", "customer asked")
    shown = text_of(await dash.page("/approvals", status="approved"))
    assert "Approved by local" in shown and "customer asked" in shown and "ana" not in shown

    # deciding twice says who decided first; the model's next identical call goes through
    late = await dash.post(f"/approvals/{approval_id}/deny", {"reason": "no"}, partial=True)
    assert late.status == 200
    assert "already approved by local" in await late.text()
    done = await dash.api("POST", "/tools/shop_update_order_status/call", arguments=args,
                          session_id="chat-7")
    assert done["status"] == "ok"


async def test_a_denial_from_the_dashboard_reaches_the_model(dash: Dash) -> None:
    args = {"order_id": pending_order(dash), "status": "refunded"}
    pending = await dash.api("POST", "/tools/shop_update_order_status/call", arguments=args)
    resp = await dash.post(f"/approvals/{pending['approval_id']}/deny",
                           {"reason": "fraud check"}, partial=True)
    fragment = await resp.text()
    assert 'data-status="denied"' in fragment and "Denied by" in fragment
    assert "Denied by local" in text_of(fragment) and "fraud check" in fragment
    denied = await dash.api("POST", "/tools/shop_update_order_status/call", arguments=args)
    assert denied["status"] == "denied" and "fraud check" in denied["text"]
    assert (await dash.post("/approvals/nope/approve")).status == 404


async def test_the_tool_audit_shows_invalid_calls_and_whether_the_model_retried(
        dash: Dash) -> None:
    call = "/tools/shop_get_order/call"
    await dash.api("POST", call, arguments={"order_id": []}, session_id="s-1")
    await dash.api("POST", call, arguments={"order_id": "42"}, session_id="s-1")
    await dash.api("POST", call, arguments={}, session_id="s-2")  # never retried

    html = await dash.page("/tool-audit")
    rows = {m[1]: text_of(m[0]) for m in re.finditer(
        r'<tr data-call="\w+" data-status="(\w+)">.*?</tr>', html, re.S)}
    assert len(re.findall(r'data-call="', html)) == 3
    invalid = [text_of(m[0]) for m in re.finditer(
        r'<tr data-call="\w+" data-status="invalid_arguments">.*?</tr>', html, re.S)]
    assert any("s-1" in r and "yes → ok" in r for r in invalid), invalid
    assert any("s-2" in r and "yes →" not in r for r in invalid), invalid
    assert "ok" in rows
    summary = text_of(html)
    assert "2 calls failed validation" in summary and "1 retried by the model" in summary
    only = await dash.page("/tool-audit", invalid="1", session="s-1")
    assert only.count('data-call="') == 1


# -- playground --------------------------------------------------------------------------


async def test_the_playground_builds_a_form_from_the_schema_and_calls_the_tool(
        dash: Dash) -> None:
    listing = await dash.page("/playground")
    assert "shop_get_order" in listing and "shop_update_order_status" in listing

    form = await dash.page("/playground", tool="shop_update_order_status")
    assert 'name="arg.order_id" type="text"' in form
    assert re.search(r'<select id="arg-status" name="arg.status">.*<option value="cancelled"',
                     form, re.S)

    resp = await dash.post("/playground/shop_get_order", {"arg.order_id": "42"})
    assert resp.status == 200
    page = await resp.text()
    assert 'data-status="ok"' in page and "&#34;id&#34;: &#34;42&#34;" in page
    assert 'value="42"' in page  # the form keeps what was typed

    fragment = await (await dash.post("/playground/shop_get_order", {"arg.order_id": "42"},
                                      partial=True)).text()
    assert fragment.lstrip().startswith('<div class="tool-result r-ok"')
    audit = await dash.api("GET", f"/tool-calls?session_id={dashboard.PLAYGROUND_SESSION}")
    assert [c["status"] for c in audit] == ["ok", "ok"]


async def test_invalid_playground_input_shows_the_error_the_model_would_read(
        dash: Dash) -> None:
    missing = await (await dash.post("/playground/shop_get_order", {"arg.order_id": ""},
                                     partial=True)).text()
    assert 'data-status="invalid_arguments"' in missing and "order_id" in missing
    raw = await (await dash.post("/playground/shop_get_order",
                                 {"raw": '{"order_id": [1]}'}, partial=True)).text()
    assert 'data-status="invalid_arguments"' in raw and "order_id" in raw
    broken = await (await dash.post("/playground/shop_get_order", {"raw": "{nope"},
                                    partial=True)).text()
    assert 'data-status="invalid_json"' in broken and "not valid JSON" in broken
    unknown = await (await dash.post("/playground/no_such_tool", partial=True)).text()
    assert 'data-status="unknown_tool"' in unknown
    assert "No tool named" in await dash.page("/playground", tool="no_such_tool")


def test_form_values_convert_to_the_schemas_types() -> None:
    fields = dashboard.form_fields({
        "type": "object", "required": ["n"],
        "properties": {"n": {"type": "integer"}, "x": {"type": "number"},
                       "b": {"type": "boolean"}, "tags": {"type": "array"},
                       "s": {"type": ["string", "null"]}, "e": {"enum": ["a", "b"]}}})
    assert [(f["name"], f["widget"]) for f in fields] == [
        ("n", "number"), ("x", "number"), ("b", "boolean"), ("tags", "json"), ("s", "text"),
        ("e", "enum")]
    assert dashboard.build_arguments(fields, {"n": "3", "x": "1.5", "b": "false",
                                              "tags": '["a"]', "s": " hi ", "e": "b"}) == {
        "n": 3, "x": 1.5, "b": False, "tags": ["a"], "s": " hi ", "e": "b"}
    # what does not convert goes as typed: the tool's validation explains it
    assert dashboard.build_arguments(fields, {"n": "three", "tags": "[", "x": "nan"}) == {
        "n": "three", "tags": "[", "x": "nan"}


# -- webhooks, assets --------------------------------------------------------------------


async def test_the_webhook_pages_render(dash: Dash) -> None:
    inbox = await dash.page("/inbox")
    assert "Webhook inbox" in inbox
    assert ("Accepted" in inbox and "Rejected" in inbox) or "Not available" in inbox
    deliveries = await dash.page("/deliveries")
    assert "Webhook deliveries" in deliveries


async def test_assets_are_served_locally_and_pages_stay_out_of_the_openapi_document(
        dash: Dash) -> None:
    for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css")):
        async with dash.http.get(dash.at(f"/assets/{name}")) as resp:
            assert resp.status == 200 and kind in resp.headers["Content-Type"]
    html = await dash.page("/")
    assert re.findall(r'(?:src|href)="(https?:)?//', html) == []  # nothing from elsewhere
    paths = (await dash.api("GET", "/openapi.json"))["paths"]
    assert not {"/", "/runs", "/approvals", "/playground"} & set(paths)
