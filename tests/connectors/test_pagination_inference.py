"""Pagination inferred by the OpenAPI/Swagger import (connectors/_openapi_pagination.py):
what a description shows becomes the action's ``pagination``, and the paginator walks it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, Pagination, load_connector_text
from patchwire.connectors.openapi import import_openapi
from patchwire.errors import PaginationError
from patchwire.expressions import compile_expression
from tests.support.servers import serve
from tests.support.settings import local_settings


def listing(params: list[dict[str, Any]], schema: Any = None,
            headers: dict[str, Any] | None = None, **components: Any) -> dict[str, Any]:
    """An OpenAPI 3.0 document with one list operation, ``GET /things`` (``list_things``)."""
    response: dict[str, Any] = {"description": "a page"}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    if headers is not None:
        response["headers"] = headers
    document: dict[str, Any] = {
        "openapi": "3.0.3", "info": {"title": "Things", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {"/things": {"get": {"operationId": "list_things", "parameters": params,
                                      "responses": {"200": response}}}}}
    if components:
        document["components"] = components
    return document


def query(name: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema or {"type": "string"}, **extra}


def page_of(records: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": {"type": "array", "items": records},
                                             **fields}}


THING = {"type": "object", "properties": {"id": {"type": "string"}}}


def inferred(document: dict[str, Any]) -> dict[str, Any] | None:
    result = import_openapi(document)
    action = result.connector.actions["list_things"]
    return None if action.pagination is None else action.pagination.model_dump(
        exclude_defaults=True)


def input_of(document: dict[str, Any]) -> dict[str, Any]:
    return import_openapi(document).connector.actions["list_things"].input


# -- what is inferred ----------------------------------------------------------------------


def test_a_cursor_parameter_and_a_nested_next_cursor_field_make_cursor_pagination() -> None:
    meta = {"type": "object", "properties": {"next_cursor": {"type": "string"}}}
    document = listing([query("cursor"), query("limit", {"type": "integer"})],
                       page_of(THING, response_metadata={"$ref": "#/components/schemas/Meta"}),
                       schemas={"Meta": meta})
    assert inferred(document) == {"style": "cursor", "items": "data",
                                  "next_cursor": "response_metadata.next_cursor",
                                  "limit_param": "limit"}


def test_a_page_token_parameter_and_a_next_page_token_field_make_cursor_pagination() -> None:
    schema = {"type": "object", "properties": {
        "files": {"type": "array", "items": THING}, "nextPageToken": {"type": "string"}}}
    assert inferred(listing([query("pageToken"), query("pageSize", {"type": "integer"})],
                            schema)) == {
        "style": "cursor", "items": "files", "cursor_param": "pageToken",
        "next_cursor": "nextPageToken", "limit_param": "pageSize"}


def test_starting_after_with_has_more_takes_the_last_records_id_as_the_next_cursor() -> None:
    document = listing([query("starting_after"), query("limit", {"type": "integer"})],
                       page_of(THING, has_more={"type": "boolean"}))
    spec = inferred(document)
    assert spec == {"style": "cursor", "items": "data", "cursor_param": "starting_after",
                    "next_cursor": "has_more ? data[-1].id : null", "limit_param": "limit"}
    expr = compile_expression(spec["next_cursor"])
    assert expr.evaluate({"has_more": True, "data": [{"id": "a"}, {"id": "b"}]}) == "b"
    assert expr.evaluate({"has_more": False, "data": [{"id": "a"}]}) is None


def test_a_next_cursor_response_header_makes_header_cursor_pagination() -> None:
    document = listing([query("cursor")], {"type": "array", "items": THING},
                       headers={"X-Next-Cursor": {"schema": {"type": "string"}}})
    assert inferred(document) == {"style": "cursor", "cursor_header": "X-Next-Cursor"}


def test_page_and_per_page_make_page_pagination_with_the_declared_size() -> None:
    document = listing([query("page", {"type": "integer"}),
                        query("per_page", {"type": "integer", "default": 30})],
                       {"type": "array", "items": THING})
    assert inferred(document) == {"style": "page", "limit_param": "per_page",
                                  "page_size": 30}


def test_a_page_count_field_and_a_zero_based_page_are_read_from_the_description() -> None:
    document = listing([query("page", {"type": "integer", "minimum": 0})],
                       page_of(THING, meta={"type": "object", "properties": {
                           "total_pages": {"type": "integer"}}}))
    assert inferred(document) == {"style": "page", "items": "data", "first_page": 0,
                                  "total_pages": "meta.total_pages"}


def test_a_required_page_parameter_is_left_to_the_paginator() -> None:
    document = listing([query("page", {"type": "integer"}, required=True),
                        query("per_page", {"type": "integer"}),
                        query("status", required=True)],
                       {"type": "array", "items": THING})
    schema = input_of(document)
    assert schema["required"] == ["status"]
    # what a plain (not paginated) call should send for the first page
    assert schema["properties"]["page"] == {"type": "integer", "default": 1}
    only_page = listing([query("page", {"type": "integer"}, required=True),
                         query("limit", {"type": "integer"})], {"type": "array", "items": THING})
    assert "required" not in input_of(only_page)


def test_offset_and_limit_with_has_more_make_offset_pagination() -> None:
    document = listing([query("offset", {"type": "integer"}, required=True),
                        query("limit", {"type": "integer"})],
                       page_of(THING, has_more={"type": "boolean"}))
    assert inferred(document) == {"style": "offset", "items": "data", "has_more": "has_more",
                                  "limit_param": "limit"}
    assert "required" not in input_of(document)


def test_a_declared_link_header_makes_link_pagination_even_through_a_ref() -> None:
    document = listing([query("per_page", {"type": "integer"}), query("page")],
                       {"type": "array", "items": THING},
                       headers={"Link": {"$ref": "#/components/headers/link"}})
    document["components"] = {"headers": {"link": {"schema": {"type": "string"}}}}
    assert inferred(document) == {"style": "link", "limit_param": "per_page"}
    assert inferred(listing([], {"type": "array", "items": THING},
                            headers={"link": {"schema": {"type": "string"}}})) == {
        "style": "link"}


def test_a_next_link_field_makes_next_url_pagination() -> None:
    schema = page_of(THING, links={"type": "object", "properties": {
        "self": {"type": "string", "format": "uri"}, "next": {"type": "string", "format": "uri"}}})
    assert inferred(listing([query("page_size", {"type": "integer"})], schema)) is None  # no
    # paging parameter at all: nothing says the operation pages
    document = listing([query("cursor")], schema)
    assert inferred(document) == {"style": "next_url", "items": "data",
                                  "next_url": "links.next"}
    odata = {"type": "object", "properties": {"value": {"type": "array", "items": THING},
                                              "@odata.nextLink": {"type": "string"}}}
    assert inferred(listing([query("$skip", {"type": "integer"})], odata)) == {
        "style": "next_url", "items": "value", "next_url": "`@odata.nextLink`"}


def test_swagger_20_operations_are_inferred_the_same_way() -> None:
    document = {
        "swagger": "2.0", "info": {"title": "Things", "version": "1"},
        "host": "api.example.com", "paths": {"/things": {"get": {
            "operationId": "list_things",
            "parameters": [{"in": "query", "name": "page", "type": "integer", "required": True},
                           {"in": "query", "name": "per_page", "type": "integer"}],
            "responses": {"200": {"description": "a page",
                                  "schema": {"type": "array", "items": {"type": "object"}},
                                  "headers": {"Link": {"type": "string"}}}}}}}}
    assert inferred(document) == {"style": "link", "limit_param": "per_page"}


# -- what is not --------------------------------------------------------------------------


def test_nothing_is_inferred_without_evidence() -> None:
    things = {"type": "array", "items": THING}
    # a cursor parameter, but no next cursor anywhere in the answer
    assert inferred(listing([query("cursor")], page_of(THING))) is None
    # no paging parameter
    assert inferred(listing([query("q")], things)) is None
    # records that cannot be found: two arrays, neither named like records
    two = {"type": "object", "properties": {"a": {"type": "array"}, "b": {"type": "array"}},
           "next_cursor": {"type": "string"}}
    assert inferred(listing([query("cursor")], two)) is None
    # no success response body described
    assert inferred(listing([query("page"), query("per_page")])) is None


def test_only_reads_are_inferred_not_writes() -> None:
    document = listing([query("page"), query("per_page")], {"type": "array", "items": THING})
    operation = document["paths"]["/things"].pop("get")
    document["paths"]["/things"]["delete"] = operation
    assert import_openapi(document).connector.actions["list_things"].pagination is None


# -- hostile descriptions -------------------------------------------------------------------


def test_a_response_ref_loop_infers_nothing_and_does_not_hang() -> None:
    document = listing([query("cursor")], {"$ref": "#/components/schemas/A"},
                       schemas={"A": {"$ref": "#/components/schemas/B"},
                                "B": {"$ref": "#/components/schemas/A"}})
    assert inferred(document) is None


def test_a_response_ref_to_outside_the_document_infers_nothing() -> None:
    document = listing([query("cursor"), query("limit")],
                       {"$ref": "https://evil.example/schema.json#/Page"})
    result = import_openapi(document)
    assert result.connector.actions["list_things"].pagination is None


def test_a_huge_self_referencing_response_schema_is_read_within_a_bound() -> None:
    wide = {f"field_{n}": {"$ref": "#/components/schemas/Node"} for n in range(5000)}
    node = {"type": "object", "properties": {**wide, "next_cursor": {"type": "string"},
                                             "data": {"type": "array", "items": THING}}}
    document = listing([query("cursor")], {"$ref": "#/components/schemas/Node"},
                       schemas={"Node": node})
    started = time.perf_counter()
    result = import_openapi(document)
    elapsed = time.perf_counter() - started
    pagination = result.connector.actions["list_things"].pagination
    assert pagination is not None and pagination.next_cursor == "next_cursor"
    assert elapsed < 5  # a bound against a hang, not a speed measurement


def test_odd_field_names_are_quoted_or_left_alone_never_spliced_into_jsonata() -> None:
    evil = "next`cursor"  # reads as next_cursor, but a backtick would end a quoted name
    schema = {"type": "object", "properties": {
        "data": {"type": "array", "items": THING},
        "meta": {"type": "object", "properties": {evil: {"type": "string"},
                                                  "next-cursor": {"type": "string"}}}}}
    spec = inferred(listing([query("cursor")], schema))
    assert spec == {"style": "cursor", "items": "data", "next_cursor": "meta.`next-cursor`"}
    compile_expression(spec["next_cursor"])


def test_inferred_pagination_is_a_valid_pagination_and_round_trips() -> None:
    document = listing([query("cursor"), query("limit", {"type": "integer"})],
                       page_of(THING, next_cursor={"type": "string"}))
    result = import_openapi(document)
    spec = load_connector_text(result.to_yaml())
    pagination = spec.actions["list_things"].pagination
    assert isinstance(pagination, Pagination)
    assert spec == result.connector


# -- the paginator walks what was inferred (real HTTP on loopback) ---------------------------


async def test_a_required_page_is_filled_by_the_paginator_over_http(tmp_path: Path) -> None:
    records = [{"id": str(n)} for n in range(7)]
    pages: list[dict[str, str]] = []

    async def things(request: web.Request) -> web.Response:
        pages.append(dict(request.query))
        if "page" not in request.query:
            return web.json_response({"message": "page is required"}, status=400)
        page, size = int(request.query["page"]), int(request.query.get("per_page", "3"))
        return web.json_response(records[(page - 1) * size:page * size])

    async def charges(request: web.Request) -> web.Response:
        after = request.query.get("starting_after")
        start = 0 if after is None else int(after) + 1
        chunk = records[start:start + 3]
        return web.json_response({"data": chunk, "has_more": start + 3 < len(records)})

    app = web.Application()
    app.router.add_get("/things", things)
    app.router.add_get("/charges", charges)
    document = listing([query("page", {"type": "integer", "minimum": 1}, required=True),
                        query("per_page", {"type": "integer", "default": 3})],
                       {"type": "array", "items": THING})
    document["paths"]["/charges"] = {"get": {
        "operationId": "list_charges",
        "parameters": [query("starting_after"), query("limit", {"type": "integer"})],
        "responses": {"200": {"description": "charges", "content": {"application/json": {
            "schema": page_of(THING, has_more={"type": "boolean"})}}}}}}
    result = import_openapi(document, base_url="{url}")
    spec = load_connector_text(result.to_yaml(), "things.yaml")
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                         connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("things", "main", {"url": url})
        walked = [r async for r in pw.paginate("things.list_things", {})]
        charged = [r async for r in pw.paginate("things.list_charges", {})]

    assert walked == records
    assert pages == [{"page": "1", "per_page": "3"}, {"page": "2", "per_page": "3"},
                     {"page": "3", "per_page": "3"}]
    assert charged == records


async def test_an_inferred_next_url_to_another_origin_is_refused_before_sending(
        tmp_path: Path) -> None:
    """A hostile (or compromised) upstream names a next page on another host: the
    connection's credentials must not follow it there."""
    requests: list[dict[str, str]] = []

    async def things(request: web.Request) -> web.Response:
        requests.append({"key": request.headers.get("X-Key", "")})
        return web.json_response({"data": [{"id": "1"}], "links": {
            "next": "http://attacker.example/steal?page=2"}})

    app = web.Application()
    app.router.add_get("/things", things)
    schema = page_of(THING, links={"type": "object", "properties": {
        "next": {"type": "string", "format": "uri"}}})
    document = listing([query("cursor")], schema,
                       securitySchemes={"key": {"type": "apiKey", "in": "header",
                                                "name": "X-Key"}})
    document["security"] = [{"key": []}]
    result = import_openapi(document, base_url="{url}")
    spec = result.connector
    assert spec.actions["list_things"].pagination is not None
    records: list[Any] = []
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("things", "main", {"url": url, "api_key": "secret-key"})
        with pytest.raises(PaginationError, match=r"another origin than the connection's"):
            async for record in pw.paginate("things.list_things", {}):
                records.append(record)
    assert records == [{"id": "1"}]
    assert requests == [{"key": "secret-key"}]  # one request, to the connection's own host
