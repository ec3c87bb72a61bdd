from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patchwire import (
    AuthError,
    ConflictError,
    InputValidationError,
    NotFoundError,
    Patchwire,
    RateLimitedError,
    TransportError,
    UpstreamError,
)
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import CallTimeoutError, RequestRenderError
from patchwire.http import instant_retries
from tests.support.servers import serve
from tests.support.settings import local_settings

CONNECTOR = """
name: orders
base_url: "{url}/api"
settings:
  url: {}
  api_key: {secret: true}
  region: {default: eu}
auth: {type: api_key, in: header, name: X-Key, value: "{api_key}"}
headers: {X-Region: "{region}"}
timeouts: {connect: 2, read: 0.5, total: 1}
retry: {attempts: 3, backoff_initial: 0}
actions:
  get_order:
    input:
      type: object
      properties: {order_id: {type: string}, expand: {type: boolean}}
      required: [order_id]
      additionalProperties: false
    request: {path: "/orders/{order_id}", query: {expand: "{expand}"}}
    response: "{'id': id, 'total': $sum(items.price)}"
    errors:
      - {status: 404, error: not_found, message: "'no order ' & $input.order_id"}
  create_order:
    input:
      type: object
      properties:
        customer: {type: string}
        amount: {type: integer, minimum: 1}
        note: {type: string}
      required: [customer, amount]
    request:
      method: POST
      path: /orders
      body: {customer: "{customer}", amount: "{amount}", note: "{note}"}
  comment:
    input: {type: object, properties: {order_id: {type: string}, text: {type: string}},
            required: [order_id, text]}
    request:
      method: POST
      path: /orders/{order_id}/comments
      body_type: form
      body: {text: "{text}", public: true}
  echo_all:
    input: {type: object, properties: {a: {type: integer}, b: {type: string}}}
    request: {method: POST, path: /echo, body: "{$input}"}
  status:
    input: {type: object, properties: {code: {type: integer}}, required: [code]}
    request: {path: "/status/{code}"}
  slow:
    request: {path: /slow}
  tagged:
    input: {type: object, properties: {order_id: {type: string}, tag: {type: string}},
            required: [order_id]}
    request: {path: "/orders/{order_id}", headers: {X-Tag: "{tag}"}}
  flaky:
    request: {path: /flaky}
  upload:
    input: {type: object, properties: {name: {type: string}, data: {type: string}}}
    request:
      method: POST
      path: /upload
      body_type: multipart
      body: {title: "{name}", file: {filename: "a.txt", content: "{data}", content_type: text/plain}}
"""

SECRET = "canary-secret-7f3a9c"


def make_app(seen: list[web.Request]) -> web.Application:
    flaky = {"n": 0}

    async def get_order(request: web.Request) -> web.Response:
        seen.append(request)
        if request.headers.get("X-Key") != SECRET:
            return web.json_response({"error": {"message": f"bad key {request.headers.get('X-Key')}"}}, status=401)
        oid = request.match_info["oid"]
        if oid == "404":
            return web.json_response({"error": "missing"}, status=404)
        return web.json_response({"id": oid, "items": [{"price": 2}, {"price": 3}]})

    async def create_order(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.json()
        if body["customer"] == "dup":
            return web.json_response({"message": "order exists"}, status=409)
        return web.json_response({"created": body}, status=201)

    async def comment(request: web.Request) -> web.Response:
        form = await request.post()
        return web.json_response({"form": dict(form), "ctype": request.content_type})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": "120"} if code == 429 else {}
        return web.json_response({"message": f"status {code} {SECRET}"}, status=code, headers=headers)

    async def slow(request: web.Request) -> web.Response:
        import asyncio
        await asyncio.Event().wait()  # never answers; the client's read timeout ends it
        raise AssertionError

    async def flaky_handler(request: web.Request) -> web.Response:
        flaky["n"] += 1
        if flaky["n"] < 3:
            return web.json_response({}, status=503)
        return web.json_response({"attempt": flaky["n"]})

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        parts: dict[str, Any] = {}
        async for part in reader:
            parts[part.name] = {"filename": part.filename, "text": (await part.read()).decode()}
        return web.json_response(parts)

    app = web.Application()
    app.router.add_get("/api/orders/{oid}", get_order)
    app.router.add_post("/api/orders", create_order)
    app.router.add_post("/api/orders/{oid}/comments", comment)
    app.router.add_post("/api/echo", echo)
    app.router.add_get("/api/status/{code}", status)
    app.router.add_get("/api/slow", slow)
    app.router.add_get("/api/flaky", flaky_handler)
    app.router.add_post("/api/upload", upload)
    return app


@pytest.fixture
async def env(tmp_path: Path):
    seen: list[web.Request] = []
    with instant_retries():
        async with serve(make_app(seen)) as url:
            registry = ConnectorRegistry([load_connector_text(CONNECTOR, "orders.yaml")], )
            settings = local_settings(tmp_path / "home", secret_key=None)
            async with Patchwire(settings, connectors=registry) as pw:
                await pw.add_connection("orders", "acme", {"url": url, "api_key": SECRET})
                yield pw, seen, url


async def test_a_call_validates_authenticates_and_maps_the_response(env):
    pw, seen, _ = env
    result = await pw.call("orders.get_order", {"order_id": "42", "expand": True}, connection="acme")
    assert result == {"id": "42", "total": 5}
    req = seen[-1]
    assert req.headers["X-Key"] == SECRET
    assert req.headers["X-Region"] == "eu"
    assert req.query["expand"] == "true"
    assert "X-Request-Id" in req.headers


async def test_absent_optional_arguments_are_not_sent(env):
    pw, seen, _ = env
    await pw.call("orders.get_order", {"order_id": "7"}, connection="acme")
    assert "expand" not in seen[-1].query


async def test_path_arguments_are_percent_encoded_as_one_segment(env):
    pw, seen, _ = env
    await pw.call("orders.get_order", {"order_id": "a/../b c"}, connection="acme")
    assert seen[-1].match_info["oid"] == "a/../b c"


async def test_every_input_violation_is_reported_with_its_json_path(env):
    pw, _, _ = env
    with pytest.raises(InputValidationError) as info:
        await pw.call("orders.create_order", {"amount": 0, "extra": 1}, connection="acme")
    paths = {p.path for p in info.value.problems}
    assert "$.customer" in paths and "$.amount" in paths
    assert info.value.context.action == "orders.create_order"


async def test_json_body_keeps_types_and_drops_absent_fields(env):
    pw, _, _ = env
    result = await pw.call("orders.create_order", {"customer": "c1", "amount": 12}, connection="acme")
    assert result == {"created": {"customer": "c1", "amount": 12}}


async def test_input_placeholder_sends_every_argument_as_the_body(env):
    pw, _, _ = env
    assert await pw.call("orders.echo_all", {"a": 1, "b": "x"}, connection="acme") == {"a": 1, "b": "x"}


async def test_form_bodies_are_url_encoded(env):
    pw, _, _ = env
    result = await pw.call("orders.comment", {"order_id": "1", "text": "hi there"}, connection="acme")
    assert result == {"form": {"text": "hi there", "public": "true"}, "ctype": "application/x-www-form-urlencoded"}


async def test_multipart_bodies_carry_file_parts(env):
    pw, _, _ = env
    result = await pw.call("orders.upload", {"name": "t", "data": "hello"}, connection="acme")
    assert result["file"] == {"filename": "a.txt", "text": "hello"}
    assert result["title"]["text"] == "t"


async def test_error_rules_choose_the_error_class_and_message(env):
    pw, _, _ = env
    with pytest.raises(NotFoundError) as info:
        await pw.call("orders.get_order", {"order_id": "404"}, connection="acme")
    assert "no order 404" in str(info.value)
    assert info.value.status == 404


@pytest.mark.parametrize(("code", "error"), [(401, AuthError), (409, ConflictError), (500, UpstreamError), (429, RateLimitedError)])
async def test_error_statuses_raise_typed_errors_without_secrets(env, code, error):
    pw, _, _ = env
    with pytest.raises(error) as info:
        await pw.call("orders.status", {"code": code}, connection="acme")
    assert info.value.status == code
    text = json.dumps(info.value.to_dict()) + str(info.value)
    assert SECRET not in text
    assert "***" in info.value.body_excerpt
    if code == 429:
        assert info.value.retry_after == 120


async def test_transient_failures_are_retried_and_attempts_recorded(env):
    pw, _, _ = env
    outcome = await pw.execute("orders.flaky", connection="acme")
    assert outcome.result == {"attempt": 3}
    assert outcome.attempts == 3


async def test_a_silent_upstream_raises_a_timeout_error(env):
    pw, _, _ = env
    with pytest.raises(CallTimeoutError):
        await pw.call("orders.slow", connection="acme")


async def test_an_unreachable_upstream_raises_a_transport_error(tmp_path):
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "orders.yaml")])
    settings = local_settings(tmp_path / "h")
    with instant_retries():
        async with Patchwire(settings, connectors=registry) as pw:
            await pw.add_connection("orders", "down", {"url": "http://127.0.0.1:9", "api_key": SECRET})
            with pytest.raises(TransportError) as info:
                await pw.call("orders.get_order", {"order_id": "1"}, connection="down")
            assert "cannot connect" in str(info.value)


async def test_every_call_is_recorded_without_secrets(env):
    pw, _, _ = env
    await pw.call("orders.get_order", {"order_id": "1"}, connection="acme")
    with pytest.raises(UpstreamError):
        await pw.call("orders.status", {"code": 500}, connection="acme")
    calls = await pw.recent_calls()
    assert [c.status for c in calls] == ["error", "ok"]
    err = calls[0]
    assert err.action == "orders.status" and err.connection == "acme"
    assert err.http_status == 500 and err.error_class == "upstream_error" and err.attempts == 3  # 500 on a GET is retried
    assert SECRET not in (err.error_message or "")
    assert calls[1].latency_ms > 0 and calls[1].request_id


async def test_a_missing_credential_is_named_without_calling(tmp_path):
    registry = ConnectorRegistry([load_connector_text(CONNECTOR.replace("api_key: {secret: true}", "api_key: {secret: true, required: false}"), "orders.yaml")])
    async with Patchwire(local_settings(tmp_path / "h"), connectors=registry) as pw:
        await pw.add_connection("orders", "nokey", {"url": "http://127.0.0.1:9"})
        with pytest.raises(RequestRenderError) as info:
            await pw.call("orders.get_order", {"order_id": "1"}, connection="nokey")
        assert "api_key" in str(info.value)


async def test_connections_never_show_secret_values(env):
    pw, _, url = env
    info = await pw.get_connection("acme")
    assert info.secrets_set == ["api_key"]
    assert SECRET not in json.dumps(info.to_dict())
    assert info.settings == {"url": url}


async def test_the_only_connection_of_a_connector_is_used_by_default(env):
    pw, _, _ = env
    assert (await pw.call("orders.get_order", {"order_id": "5"}))["id"] == "5"


@pytest.mark.parametrize("url", ["file:///etc", "ftp://example.com", "not a url", "http://"])
async def test_a_base_url_that_is_not_http_is_refused_before_any_request(tmp_path, url):
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "orders.yaml")])
    async with Patchwire(local_settings(tmp_path / "h"), connectors=registry) as pw:
        await pw.add_connection("orders", "odd", {"url": url, "api_key": SECRET})
        with pytest.raises(RequestRenderError, match="must be an absolute http"):
            await pw.call("orders.get_order", {"order_id": "1"}, connection="odd")


async def test_an_error_names_its_action_connection_method_request_and_run(env):
    pw, _, _ = env
    with pytest.raises(NotFoundError) as info:
        await pw.execute("orders.get_order", {"order_id": "404"}, connection="acme",
                         request_id="req-1", run_id="run-1")
    ctx = info.value.context
    assert (ctx.action, ctx.connection, ctx.request_id, ctx.run_id, ctx.method) == (
        "orders.get_order", "acme", "req-1", "run-1", "GET")
    assert ctx.url is not None and ctx.url.endswith("/api/orders/404")


async def test_an_outcome_carries_the_result_status_attempts_and_request_id(env):
    pw, _, _ = env
    outcome = await pw.execute("orders.get_order", {"order_id": "7"}, connection="acme",
                               request_id="req-2")
    assert (outcome.result, outcome.status, outcome.attempts, outcome.request_id) == (
        {"id": "7", "total": 5}, 200, 1, "req-2")
    assert outcome.latency_ms > 0 and outcome.raw is not None and outcome.raw.status == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.status = 201  # type: ignore[misc]


async def test_an_argument_with_a_line_break_cannot_add_a_header(env):
    pw, seen, _ = env
    before = len(seen)
    with pytest.raises(RequestRenderError, match="'X-Tag' cannot carry a line break"):
        await pw.call("orders.tagged", {"order_id": "1", "tag": "a\r\nX-Admin: yes"},
                      connection="acme")
    assert len(seen) == before  # nothing was sent
    await pw.call("orders.tagged", {"order_id": "1", "tag": "plain"}, connection="acme")
    assert seen[-1].headers["X-Tag"] == "plain"


async def test_a_connection_setting_with_a_line_break_cannot_add_a_header(env):
    pw, seen, url = env
    before = len(seen)
    await pw.add_connection("orders", "odd", {"url": url, "api_key": SECRET,
                                              "region": "eu\nX-Admin: yes"})
    with pytest.raises(RequestRenderError, match="header 'X-Region' of orders would carry"):
        await pw.call("orders.get_order", {"order_id": "1"}, connection="odd")
    assert len(seen) == before


async def test_a_form_body_arrives_intact_whatever_its_characters(env):
    pw, _, _ = env
    text = "a b&c=d+e é ✓ 100% ?#/"
    result = await pw.call("orders.comment", {"order_id": "1", "text": text},
                           connection="acme")
    assert result["form"] == {"text": text, "public": "true"}
    assert result["ctype"] == "application/x-www-form-urlencoded"
