"""The REST API over real HTTP: uvicorn on loopback, the sandbox upstream, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.openapi import import_openapi
from tests.support.api import PROBLEM_BASE, Api, problem_of
from tests.support.leaks import leaks_in, leaks_in_database

CALL = "/api/v1/actions/shop.get_order/call"


async def test_calling_an_action_returns_its_result_status_attempts_timing_and_request_id(
    api: Api,
) -> None:
    async with api.http.post(api.at(CALL),
                             json={"connection": "acme", "input": {"order_id": "42"}}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        body = await resp.json()

    assert set(body) == {"result", "status", "attempts", "latency_ms", "request_id"}
    assert body["result"]["id"] == "42"
    assert body["result"]["line_items"]
    assert body["status"] == 200
    assert body["attempts"] == 1
    assert 0 < body["latency_ms"] < 10_000
    assert body["request_id"]

    # Without "connection", the connector's only connection is used.
    async with api.http.post(api.at(CALL), json={"input": {"order_id": "7"}}) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["result"]["id"] == "7"


async def test_a_plain_caller_request_id_is_kept_and_an_unsafe_one_is_replaced(api: Api) -> None:
    payload = {"connection": "acme", "input": {"order_id": "42"}}
    async with api.http.post(api.at(CALL), json=payload,
                             headers={"X-Request-Id": "chat-7:turn.3_a-b"}) as resp:
        assert resp.status == 200, await resp.text()
        kept = (await resp.json())["request_id"]
    unsafe = ["a b", "x" * 65, "id;drop", "<script>"]
    replaced = []
    for given in unsafe:
        async with api.http.post(api.at(CALL), json=payload,
                                 headers={"X-Request-Id": given}) as resp:
            assert resp.status == 200, await resp.text()
            replaced.append((await resp.json())["request_id"])

    assert kept == "chat-7:turn.3_a-b"
    for given, got in zip(unsafe, replaced, strict=True):
        assert got != given
        assert got and " " not in got and len(got) <= 64
    assert len(set(replaced)) == len(unsafe)

    # The call log records the same ids.
    async with api.http.get(api.at("/api/v1/calls")) as resp:
        logged = {c["request_id"] for c in await resp.json()}
    assert {kept, *replaced} <= logged

    # An error carries the caller's id too, so the bot can correlate it.
    async with api.http.post(api.at(CALL), json={"input": {"order_id": "999999"}},
                             headers={"X-Request-Id": "turn-9"}) as resp:
        assert (await problem_of(resp, 424))["request_id"] == "turn-9"


async def test_errors_are_problem_details_with_the_status_that_fits_the_cause(api: Api) -> None:
    async with api.http.post(api.at(CALL), json={"input": {}}) as resp:
        invalid = await problem_of(resp, 422)
    assert invalid["type"] == PROBLEM_BASE + "invalid_input"
    assert invalid["problems"] == [{"path": "$.order_id", "message": "is required but missing"}]
    assert invalid["action"] == "shop.get_order"

    async with api.http.post(api.at(CALL), json={"input": {"order_id": 42, "x": 1}}) as resp:
        wrong_type = await problem_of(resp, 422)
    assert {p["path"] for p in wrong_type["problems"]} >= {"$.order_id"}

    async with api.http.post(api.at("/api/v1/actions/shop.nope/call"), json={}) as resp:
        no_action = await problem_of(resp, 404)
    assert no_action["type"] == PROBLEM_BASE + "unknown_action"
    assert "nope" in no_action["detail"]

    async with api.http.post(api.at("/api/v1/actions/nope.get_order/call"), json={}) as resp:
        no_connector = await problem_of(resp, 404)
    assert no_connector["type"] == PROBLEM_BASE + "unknown_connector"

    async with api.http.post(api.at(CALL), json={"connection": "nope",
                                                 "input": {"order_id": "1"}}) as resp:
        no_connection = await problem_of(resp, 404)
    assert no_connection["type"] == PROBLEM_BASE + "unknown_connection"
    assert "nope" in no_connection["detail"]

    # The upstream's 404 is a failed dependency (424); its own status is kept aside.
    async with api.http.post(api.at(CALL), json={"input": {"order_id": "999999"}}) as resp:
        upstream = await problem_of(resp, 424)
    assert upstream["type"] == PROBLEM_BASE + "not_found"
    assert upstream["title"] == "NotFoundError"
    assert upstream["upstream_status"] == 404
    assert "No order 999999" in upstream["detail"]
    assert upstream["connection"] == "acme"
    assert upstream["request_id"]
    assert "body_excerpt" in upstream

    async with api.http.post(api.at(CALL), data=b'{"input": {"order_id": ',
                             headers={"Content-Type": "application/json"}) as resp:
        malformed = await problem_of(resp, 422)
    assert malformed["type"] == PROBLEM_BASE + "invalid_request"
    [not_json] = malformed["problems"]
    assert not_json["path"] == "$"
    assert not_json["message"].startswith("the body is not valid JSON at character 23")

    async with api.http.post(api.at(CALL), data=b"[1]",
                             headers={"Content-Type": "application/json"}) as resp:
        not_object = await problem_of(resp, 422)
    assert [p["path"] for p in not_object["problems"]] == ["$"]

    async with api.http.post(api.at(CALL), json={"input": "42"}) as resp:
        bad_shape = await problem_of(resp, 422)
    assert [p["path"] for p in bad_shape["problems"]] == ["$.input"]

    async with api.http.get(api.at("/api/v1/calls?limit=many")) as resp:
        bad_query = await problem_of(resp, 422)
    assert [p["path"] for p in bad_query["problems"]] == ["query.limit"]
    assert bad_query["detail"] == "the request is invalid"

    async with api.http.get(api.at("/api/v1/connections/nope")) as resp:
        await problem_of(resp, 404)
    async with api.http.get(api.at("/api/v1/connectors/nope")) as resp:
        await problem_of(resp, 404)

    # the framework's own errors have the same shape: no route, wrong method, a body
    # that is not even text
    async with api.http.get(api.at("/api/v1/no-such-thing")) as resp:
        no_route = await problem_of(resp, 404)
    assert no_route["type"] == PROBLEM_BASE + "not_found"
    async with api.http.delete(api.at(CALL)) as resp:
        wrong_method = await problem_of(resp, 405)
    assert wrong_method["type"] == PROBLEM_BASE + "method_not_allowed"
    assert resp.headers["Allow"] == "POST"
    async with api.http.post(api.at(CALL), data=b'{"input": "\xff\xfe"}',
                             headers={"Content-Type": "application/json"}) as resp:
        await problem_of(resp, resp.status if resp.status in (400, 422) else 400)

    async with api.http.get(api.at("/api/v1/calls")) as resp:
        calls = await resp.json()
    assert ("error", 404, "not_found") in {
        (c["status"], c["http_status"], c["error_class"]) for c in calls}


async def test_listing_endpoints_show_connectors_connections_and_calls_but_no_secret(
    api: Api, store_url: str,
) -> None:
    async with api.http.get(api.at("/healthz")) as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}

    async with api.http.get(api.at("/api/v1/connectors")) as resp:
        connectors = await resp.json()
    assert {c["name"] for c in connectors} == {"calendar", "helpdesk", "payments", "shop"}
    shop = next(c for c in connectors if c["name"] == "shop")
    assert "get_order" in shop["actions"] and shop["auth"] == "api_key"

    async with api.http.get(api.at("/api/v1/connectors/shop")) as resp:
        assert (await resp.json())["name"] == "shop"

    async with api.http.post(api.at(CALL), json={"input": {"order_id": "42"}}) as resp:
        assert resp.status == 200

    async with api.http.get(api.at("/api/v1/connections")) as resp:
        raw_list = await resp.read()
    async with api.http.get(api.at("/api/v1/connections/acme")) as resp:
        raw_one = await resp.read()
    async with api.http.get(api.at("/api/v1/calls")) as resp:
        raw_calls = await resp.read()
    [connection] = json.loads(raw_list)
    assert connection == json.loads(raw_one)
    assert connection["name"] == "acme"
    assert connection["secrets_set"] == ["api_key"]
    assert connection["settings"] == {"sandbox_url": api.sandbox.url}

    [call] = json.loads(raw_calls)
    assert call["action"] == "shop.get_order"
    assert (call["status"], call["http_status"], call["connection"]) == ("ok", 200, "acme")

    async with api.http.get(api.at("/api/v1/calls?action=shop.list_orders")) as resp:
        assert await resp.json() == []

    for raw in (raw_list, raw_one, raw_calls):
        assert leaks_in(raw, api.canary) == []
    assert await leaks_in_database(store_url, api.canary) == {}


async def test_the_openapi_document_is_valid_enough_to_import_and_call_patchwire_itself(
    api: Api, tmp_path: Any,
) -> None:
    async with api.http.get(api.at("/api/v1/openapi.json")) as resp:
        assert resp.status == 200
        document = await resp.json()

    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Patchwire"
    assert "post" in document["paths"]["/api/v1/actions/{action}/call"]
    for path in ("/healthz", "/api/v1/connectors", "/api/v1/connections", "/api/v1/calls"):
        assert "get" in document["paths"][path]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise AssertionError(f"components.schemas.{name}: {exc.message}") from exc

    # Patchwire's own OpenAPI importer reads the document, and the connector it makes calls
    # this very server through the call path.
    imported = import_openapi(document, name="patchwire_api", base_url=api.url)
    call_op = next(k for k, a in imported.connector.actions.items()
                   if a.request.path == "/api/v1/actions/{action}/call")
    settings = api.settings.with_(home=tmp_path / "client", database_url=None)
    registry = ConnectorRegistry([imported.connector])
    async with Patchwire(settings, connectors=registry) as client:
        await client.add_connection("patchwire_api", "self", {})
        outcome = await client.execute(
            f"patchwire_api.{call_op}",
            {"action": "shop.get_order", "connection": "acme", "input": {"order_id": "42"}},
        )
    assert outcome.result["result"]["id"] == "42"
    assert outcome.result["status"] == 200


async def test_the_openapi_document_declares_the_problem_details_errors_really_have(
    api: Api,
) -> None:
    async with api.http.get(api.at("/api/v1/openapi.json")) as resp:
        document = await resp.json()
    problem_schema = document["components"]["schemas"]["Problem"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            for status in ("default", "422"):
                declared = operation["responses"].get(status)
                if declared is None:
                    assert status == "422", (method, path)  # no input: no 422
                    continue
                assert declared["content"] == {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}, (method, path)
    answers = []
    for body in ({"input": {}}, {"input": {"order_id": "999999"}}):
        async with api.http.post(api.at(CALL), json=body) as resp:
            answers.append(await resp.json())
    async with api.http.get(api.at("/api/v1/runs/nope")) as resp:
        answers.append(await resp.json())
    for answer in answers:
        jsonschema.validate(answer, problem_schema)
    assert [a["status"] for a in answers] == [422, 424, 404]
