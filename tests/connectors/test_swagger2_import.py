"""Swagger 2.0 → connector import: converted to OpenAPI 3.0, then imported like a 3.x
document (patchwire.connectors.openapi, connectors/_swagger2.py)."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

from patchwire import Patchwire
from patchwire.connectors import (
    ActionSpec,
    ConnectorRegistry,
    RequestTemplate,
    load_connector_text,
)
from patchwire.connectors._swagger2 import MAX_BASE_PATH, convert_swagger2
from patchwire.connectors.openapi import ImportResult, import_openapi
from patchwire.errors import OpenAPIImportError
from tests.support.cli import Cli
from tests.support.conformance import REALWORLD, conformance_path
from tests.support.servers import serve
from tests.support.settings import local_settings

SLACK = conformance_path("swagger2", "slack_web_openapi_v2.json")
#: the largest real Swagger 2.0 document tried (scripts/fetch-openapi-fixtures.sh)
OPENSHIFT = REALWORLD.parent / "swagger2" / "openshift-swagger-2.0.json"


def swagger(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A minimal Swagger 2.0 document around ``paths``."""
    base: dict[str, Any] = {"swagger": "2.0", "info": {"title": "Test API", "version": "1"},
                            "host": "api.example.com", "basePath": "/v1",
                            "schemes": ["https"], "paths": paths}
    return {**base, **extra}


def op(**fields: Any) -> dict[str, Any]:
    return {"responses": {"200": {"description": "ok"}}, **fields}


def round_trip(result: ImportResult) -> None:
    assert load_connector_text(result.to_yaml()) == result.connector
    for action in result.connector.actions.values():
        Draft202012Validator.check_schema(action.input)


def request_of(action: ActionSpec) -> RequestTemplate:
    assert action.request is not None, "a REST action"
    return action.request


def converted(document: dict[str, Any]) -> dict[str, Any]:
    return convert_swagger2(document, "<dict>").document


# -- Slack's Web API (tests/conformance/swagger2) ----------------------------------------


def test_slacks_web_api_imports_with_form_bodies_oauth2_scopes_and_cursor_pagination() -> None:
    result = import_openapi(SLACK)
    spec = result.connector
    assert result.openapi_version == "3.0.3, converted from Swagger 2.0"
    assert "(OpenAPI 3.0.3, converted from Swagger 2.0)" in result.to_yaml().splitlines()[0]
    assert spec.name == "slack_web_api"
    assert spec.base_url == "https://slack.com/api"
    assert len(spec.actions) == 174
    assert result.skipped == []

    post = spec.actions["chat_post_message"]
    assert (request_of(post).method, request_of(post).path) == ("POST", "/chat.postMessage")
    # consumes: [form, json] with formData parameters: a form body (formData is form-only)
    assert request_of(post).body_type == "form"
    assert request_of(post).body["channel"] == "{channel}"
    assert "channel" in post.input["required"]

    auth = spec.auth.model_dump(by_alias=True)
    assert (auth["type"], auth["flow"]) == ("oauth2", "authorization_code")
    assert auth["authorize_url"] == "https://slack.com/oauth/authorize"
    assert auth["token_url"] == "https://slack.com/api/oauth.access"
    assert {"chat:write", "channels:read", "users:read"} <= set(auth["scopes"])

    listing = spec.actions["conversations_list"].pagination
    assert listing is not None
    assert listing.model_dump(exclude_defaults=True) == {
        "style": "cursor", "items": "channels",
        "next_cursor": "response_metadata.next_cursor", "limit_param": "limit"}
    assert listing.cursor_param == "cursor"
    # Slack's `token` parameters (query, header, form) are the OAuth2 token the auth layer
    # sends: never an argument a caller or a model is asked for
    assert not [n for n, a in spec.actions.items() if "token" in a.input["properties"]]
    assert "token" not in request_of(post).headers
    assert "parameter 'token' left out of 170 action inputs" in result.warnings[0]

    members = spec.actions["conversations_members"].pagination
    assert members is not None
    assert (members.items, members.next_cursor) == ("members", "response_metadata.next_cursor")
    # users.list's response_metadata is a $ref to a schema Slack wrote as a tuple of
    # alternatives (`items: [...]` on an object): nothing shows a next cursor there
    assert spec.actions["users_list"].pagination is None
    # files.list pages by number, with its paging.pages count
    files = spec.actions["files_list"].pagination
    assert files is not None
    assert (files.style, files.page_param, files.total_pages, files.limit_param) == (
        "page", "page", "paging.pages", "count")


@pytest.mark.slow  # loading 174 actions back from YAML (line-tracking parser) takes ~1 s
def test_slacks_web_api_connector_round_trips_through_yaml() -> None:
    round_trip(import_openapi(SLACK))


# -- what is converted --------------------------------------------------------------------


def test_host_base_path_and_schemes_become_the_base_url_https_first() -> None:
    result = import_openapi(swagger({"/a": {"get": op(operationId="a")}},
                                    host="api.example.com:8443", basePath="/v2/",
                                    schemes=["http", "https"]))
    assert result.connector.base_url == "https://api.example.com:8443/v2"
    assert converted(swagger({}, schemes=["http", "https"]))["servers"] == [
        {"url": "https://api.example.com/v1"}, {"url": "http://api.example.com/v1"}]
    # no schemes: https
    assert import_openapi(swagger({}, schemes=None)).connector.base_url == (
        "https://api.example.com/v1")


def test_without_a_host_the_base_url_is_a_connection_setting() -> None:
    document = swagger({"/a": {"get": op(operationId="a")}})
    del document["host"]
    result = import_openapi(document)
    assert result.connector.base_url == "{base_url}/v1"
    assert "base_url" in result.connector.settings
    assert import_openapi(document, base_url="https://given.example").connector.base_url == (
        "https://given.example")
    # neither host nor basePath: still the document's own host
    del document["basePath"]
    assert converted(document)["servers"] == [{"url": "/"}]


def test_a_body_parameter_becomes_the_request_body_in_the_consumed_media_type() -> None:
    pet = {"type": "object", "required": ["name"],
           "properties": {"name": {"type": "string"}, "tag": {"type": "string"}}}
    document = swagger({
        "/pets": {"post": op(operationId="add_pet", parameters=[
            {"in": "body", "name": "pet", "required": True,
             "schema": {"$ref": "#/definitions/Pet"}}])},
        "/pets/xml": {"post": op(operationId="add_pet_xml", consumes=["application/xml"],
                                 parameters=[{"in": "body", "name": "pet", "required": True,
                                              "schema": {"$ref": "#/definitions/Pet"}}])},
    }, definitions={"Pet": pet}, consumes=["application/json"])
    body = converted(document)["paths"]["/pets"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"] == {"application/json": {
        "schema": {"$ref": "#/components/schemas/Pet"}}}
    result = import_openapi(document)
    add = result.connector.actions["add_pet"]
    assert request_of(add).body == {"name": "{name}", "tag": "{tag}"}
    assert request_of(add).body_type == "json"
    assert add.input["required"] == ["name"]
    assert [(s.where, s.reason) for s in result.skipped] == [
        ("POST /pets/xml", "request body only as application/xml; actions send JSON, form "
                           "or multipart bodies")]


def test_form_data_parameters_become_a_form_body_and_a_file_makes_it_multipart() -> None:
    result = import_openapi(swagger({
        "/login": {"post": op(operationId="login", parameters=[
            {"in": "formData", "name": "user", "type": "string", "required": True},
            {"in": "formData", "name": "remember", "type": "boolean"}])},
        "/upload": {"post": op(operationId="upload", consumes=["multipart/form-data"],
                               parameters=[
            {"in": "formData", "name": "file", "type": "file", "required": True},
            {"in": "formData", "name": "note", "type": "string"}])},
    }))
    login = result.connector.actions["login"]
    assert request_of(login).body_type == "form"
    assert request_of(login).body == {"user": "{user}", "remember": "{remember}"}
    assert login.input["required"] == ["user"]
    upload = result.connector.actions["upload"]
    assert request_of(upload).body_type == "multipart"
    assert upload.input["properties"]["file"]["properties"].keys() == {
        "filename", "content", "content_type"}
    assert upload.input["required"] == ["file"]
    round_trip(result)


def test_the_operations_consumes_and_produces_win_over_the_documents() -> None:
    document = converted(swagger({"/a": {"post": op(
        operationId="a", consumes=["application/vnd.api+json"], produces=["text/csv"],
        parameters=[{"in": "body", "name": "b", "schema": {"type": "object"}}],
        responses={"200": {"description": "ok", "schema": {"type": "string"}}})},
        "/b": {"post": op(operationId="b", parameters=[
            {"in": "body", "name": "b", "schema": {"type": "object"}}],
            responses={"200": {"description": "ok", "schema": {"type": "string"},
                               "examples": {"application/json": "hi"}}})}},
        consumes=["application/json"], produces=["application/json", "application/xml"]))
    a, b = document["paths"]["/a"]["post"], document["paths"]["/b"]["post"]
    assert list(a["requestBody"]["content"]) == ["application/vnd.api+json"]
    assert list(a["responses"]["200"]["content"]) == ["text/csv"]
    assert list(b["requestBody"]["content"]) == ["application/json"]
    assert b["responses"]["200"]["content"] == {
        "application/json": {"schema": {"type": "string"}, "example": "hi"},
        "application/xml": {"schema": {"type": "string"}}}


def test_security_definitions_become_security_schemes_with_all_four_oauth2_flows() -> None:
    definitions = {
        "basic": {"type": "basic"},
        "key": {"type": "apiKey", "in": "header", "name": "X-Key", "x-vendor": 1},
        "implicit": {"type": "oauth2", "flow": "implicit",
                     "authorizationUrl": "https://auth.example/authorize", "scopes": {"r": "read"}},
        "password": {"type": "oauth2", "flow": "password",
                     "tokenUrl": "https://auth.example/token", "scopes": {}},
        "app": {"type": "oauth2", "flow": "application", "tokenUrl": "https://auth.example/token",
                "scopes": {"w": "write"}},
        "code": {"type": "oauth2", "flow": "accessCode",
                 "authorizationUrl": "https://auth.example/authorize",
                 "tokenUrl": "https://auth.example/token", "scopes": {"r": "read"}},
    }
    schemes = converted(swagger({}, securityDefinitions=definitions))["components"][
        "securitySchemes"]
    assert schemes["basic"] == {"type": "http", "scheme": "basic"}
    assert schemes["key"] == {"type": "apiKey", "in": "header", "name": "X-Key", "x-vendor": 1}
    assert schemes["implicit"]["flows"] == {"implicit": {
        "authorizationUrl": "https://auth.example/authorize", "scopes": {"r": "read"}}}
    assert schemes["password"]["flows"] == {"password": {
        "tokenUrl": "https://auth.example/token", "scopes": {}}}
    assert schemes["app"]["flows"] == {"clientCredentials": {
        "tokenUrl": "https://auth.example/token", "scopes": {"w": "write"}}}
    assert schemes["code"]["flows"] == {"authorizationCode": {
        "authorizationUrl": "https://auth.example/authorize",
        "tokenUrl": "https://auth.example/token", "scopes": {"r": "read"}}}

    def auth_of(name: str) -> dict[str, Any]:
        result = import_openapi(swagger({}, securityDefinitions={name: definitions[name]}))
        return result.connector.auth.model_dump(by_alias=True)

    assert auth_of("basic")["type"] == "basic"
    assert (auth_of("key")["type"], auth_of("key")["name"]) == ("api_key", "X-Key")
    assert (auth_of("app")["flow"], auth_of("app")["scopes"]) == ("client_credentials", ["w"])
    assert auth_of("code")["flow"] == "authorization_code"
    skipped = import_openapi(swagger({}, securityDefinitions={
        "implicit": definitions["implicit"]})).skipped
    assert [s.where for s in skipped] == ["components.securitySchemes.implicit"]


def test_a_bearer_token_parameter_is_left_to_the_auth_layer_not_asked_for() -> None:
    params = [{"in": "query", "name": "access_token", "type": "string", "required": True},
              {"in": "query", "name": "q", "type": "string"}]
    form = [{"in": "formData", "name": "token", "type": "string", "required": True},
            {"in": "formData", "name": "text", "type": "string"}]
    paths = {"/search": {"get": op(operationId="search", parameters=params)},
             "/post": {"post": op(operationId="post", parameters=form)}}
    oauth = {"o": {"type": "oauth2", "flow": "application", "tokenUrl": "https://a.example/t"}}
    result = import_openapi(swagger(paths, securityDefinitions=oauth))
    search, post = result.connector.actions["search"], result.connector.actions["post"]
    assert list(search.input["properties"]) == ["q"] and "required" not in search.input
    assert request_of(search).query == {"q": "{q}"}
    assert list(post.input["properties"]) == ["text"]
    assert request_of(post).body == {"text": "{text}"}
    # without a bearer auth scheme the parameter is the API's own business: kept
    plain = import_openapi(swagger(paths)).connector.actions["search"]
    assert plain.input["required"] == ["access_token"]


@pytest.mark.parametrize(("fmt", "style", "explode", "sent_as"), [
    ("csv", "form", False, None), (None, "form", False, None),
    ("ssv", "spaceDelimited", False, "space"), ("pipes", "pipeDelimited", False, "pipe"),
    ("multi", "form", True, "repeat"), ("tsv", "form", False, "tab"),
])
def test_collection_formats_become_query_styles_and_are_sent_so(
        fmt: str | None, style: str, explode: bool, sent_as: str | None) -> None:
    param: dict[str, Any] = {"in": "query", "name": "ids", "type": "array",
                             "items": {"type": "integer"}}
    if fmt is not None:
        param["collectionFormat"] = fmt
    conversion = convert_swagger2(swagger({"/a": {"get": op(parameters=[param])}}), "<dict>")
    out = conversion.document["paths"]["/a"]["get"]["parameters"][0]
    assert (out["style"], out["explode"]) == (style, explode)
    assert out["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert any("tsv" in w for w in conversion.warnings) == (fmt == "tsv")
    # the imported action writes a list argument the way the description says
    action = import_openapi(swagger({"/a": {"get": op(parameters=[param])}})).connector
    arrays = request_of(action.actions[next(iter(action.actions))]).query_arrays
    assert arrays == ({} if sent_as is None else {"ids": sent_as})


def test_components_come_from_definitions_parameters_and_responses_with_refs_rewritten() -> None:
    document = swagger(
        {"/items": {
            "parameters": [{"$ref": "#/parameters/limit"}],
            "get": op(operationId="list_items", responses={
                "200": {"$ref": "#/responses/Items"}}),
            "post": op(operationId="add_item", parameters=[{"$ref": "#/parameters/item"}]),
        }},
        definitions={"Item": {"type": "object", "properties": {
            "id": {"type": "integer"}, "parent": {"$ref": "#/definitions/Item"},
            "default": {"type": "object", "properties": {"kind": {"$ref": "#/definitions/Kind"}}}}},
            "Kind": {"type": "string", "enum": ["a", "b"], "x-nullable": True}},
        parameters={"limit": {"in": "query", "name": "limit", "type": "integer", "default": 20},
                    "item": {"in": "body", "name": "item", "schema": {"$ref": "#/definitions/Item"}}},
        responses={"Items": {"description": "items", "schema": {
            "type": "array", "items": {"$ref": "#/definitions/Item"}}}},
    )
    out = converted(document)
    components = out["components"]
    assert components["parameters"] == {"limit": {"name": "limit", "in": "query",
                                                  "schema": {"type": "integer", "default": 20}}}
    assert out["paths"]["/items"]["parameters"] == [{"$ref": "#/components/parameters/limit"}]
    assert out["paths"]["/items"]["get"]["responses"]["200"] == {
        "$ref": "#/components/responses/Items"}
    item = components["schemas"]["Item"]["properties"]
    assert item["parent"] == {"$ref": "#/components/schemas/Item"}
    # a property named "default" is a schema, not a default value: its refs are rewritten
    assert item["default"]["properties"]["kind"] == {"$ref": "#/components/schemas/Kind"}
    assert components["schemas"]["Kind"]["nullable"] is True
    # the body parameter is inlined into the operation: a 3.0 request body
    assert out["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"] == {
        "schema": {"$ref": "#/components/schemas/Item"}}
    result = import_openapi(document)
    assert result.skipped == []
    assert result.connector.actions["list_items"].input["properties"]["limit"] == {
        "type": "integer", "default": 20}
    round_trip(result)


def test_extensions_are_kept_where_they_stood() -> None:
    out = converted(swagger(
        {"/a": {"x-path": 1, "get": op(**{"x-op": 2}, parameters=[
            {"in": "query", "name": "q", "type": "string", "x-param": 3}])}},
        **{"x-top": 0}))
    assert out["x-top"] == 0
    assert out["paths"]["/a"]["x-path"] == 1
    assert out["paths"]["/a"]["get"]["x-op"] == 2
    assert out["paths"]["/a"]["get"]["parameters"][0]["x-param"] == 3


def test_response_headers_files_and_a_body_beside_form_fields_are_handled() -> None:
    conversion = convert_swagger2(swagger({
        "/download": {"get": op(operationId="download", produces=["application/pdf"],
                                responses={"200": {
                                    "description": "the file", "schema": {"type": "file"},
                                    "headers": {"X-Rate-Limit": {"type": "integer",
                                                                 "description": "left"}}}})},
        "/both": {"post": op(operationId="both", parameters=[
            {"in": "body", "name": "b", "schema": {"type": "object"}},
            {"in": "formData", "name": "f", "type": "string"}])},
        "/c": {"get": op(operationId="c", schemes=["http"])},
    }), "<dict>")
    download = conversion.document["paths"]["/download"]["get"]["responses"]["200"]
    assert download["content"] == {"application/pdf": {
        "schema": {"type": "string", "format": "binary"}}}
    assert download["headers"] == {"X-Rate-Limit": {"schema": {"type": "integer"},
                                                    "description": "left"}}
    assert conversion.skipped == [("POST /both", "has both a body parameter and formData "
                                                 "parameters (Swagger 2.0 allows one or the other)")]
    assert conversion.warnings == ["GET /c: its own schemes are not kept; it is called on the "
                                   "connector's base URL"]


def test_the_document_given_is_never_changed() -> None:
    document = json.loads(SLACK.read_text(encoding="utf-8"))
    before = copy.deepcopy(document)
    import_openapi(document)
    assert document == before


def test_a_yaml_swagger_document_imports_from_text() -> None:
    text = yaml.safe_dump(swagger({"/a": {"get": op(operationId="get_a")}}))
    assert text.startswith("basePath") or "swagger: '2.0'" in text
    assert list(import_openapi(text).connector.actions) == ["get_a"]


@pytest.mark.slow  # two CLI subprocesses
async def test_patchwire_connector_import_accepts_a_swagger_20_document(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    target = cli.connectors / "slack.yaml"
    imported = await cli("connector", "import", str(SLACK), "-o", str(target))
    assert imported.code == 0, imported
    assert "imported slack_web_api: 174 action(s)" in imported.flat_err
    checked = await cli("connector", "check", str(target))
    assert checked.code == 0, checked


# -- hostile and broken documents ---------------------------------------------------------


def test_a_parameter_ref_loop_skips_the_operation_not_the_document() -> None:
    result = import_openapi(swagger(
        {"/a": {"get": op(operationId="a", parameters=[{"$ref": "#/parameters/p1"}])},
         "/b": {"get": op(operationId="b")}},
        parameters={"p1": {"$ref": "#/parameters/p2"}, "p2": {"$ref": "#/parameters/p1"}}))
    assert list(result.connector.actions) == ["b"]
    assert [(s.where, s.reason) for s in result.skipped] == [
        ("GET /a", "parameter $ref '#/parameters/p1': reference cycle")]


def test_a_schema_ref_loop_becomes_a_recursive_definition_not_a_hang() -> None:
    result = import_openapi(swagger(
        {"/a": {"post": op(operationId="a", parameters=[
            {"in": "body", "name": "b", "schema": {"$ref": "#/definitions/A"}}])},
         "/b": {"post": op(operationId="b", parameters=[
             {"in": "body", "name": "b", "schema": {"$ref": "#/definitions/Loop1"}}])}},
        definitions={"A": {"type": "object", "properties": {"child": {"$ref": "#/definitions/A"}}},
                     "Loop1": {"$ref": "#/definitions/Loop2"},
                     "Loop2": {"$ref": "#/definitions/Loop1"}}))
    a = result.connector.actions["a"]
    assert a.input["properties"]["child"] == {"$ref": "#/$defs/A"}
    Draft202012Validator.check_schema(a.input)
    # a pure alias loop describes nothing: the operation imports or is skipped, with a reason
    assert "b" in result.connector.actions or [s.where for s in result.skipped] == ["POST /b"]


def test_refs_to_outside_the_document_skip_only_their_operations() -> None:
    result = import_openapi(swagger(
        {"/a": {"get": op(operationId="a", parameters=[
            {"$ref": "https://evil.example/params.json#/limit"}])},
         "/b": {"post": op(operationId="b", parameters=[
             {"in": "body", "name": "b", "schema": {"$ref": "../../etc/passwd#/x"}}])},
         "/c": {"get": op(operationId="c")}}))
    assert list(result.connector.actions) == ["c"]
    reasons = {s.where: s.reason for s in result.skipped}
    assert "points outside the document" in reasons["GET /a"]
    assert "external $ref '../../etc/passwd#/x' is not supported" in reasons["POST /b"]


def test_an_absurd_collection_format_is_a_warning_and_taken_as_csv() -> None:
    conversion = convert_swagger2(swagger({"/a": {"get": op(parameters=[
        {"in": "query", "name": "ids", "type": "array", "items": {"type": "string"},
         "collectionFormat": "semicolons'; DROP TABLE" * 50}])}}), "<dict>")
    param = conversion.document["paths"]["/a"]["get"]["parameters"][0]
    assert (param["style"], param["explode"]) == ("form", False)
    [warning] = conversion.warnings
    assert "collectionFormat" in warning and "taken as csv" in warning
    assert len(warning) < 300  # the absurd value is cut, not echoed whole


def test_a_huge_base_path_is_refused_naming_the_field() -> None:
    with pytest.raises(OpenAPIImportError, match=rf"basePath: is 1000001 characters long; "
                                                 rf"more than {MAX_BASE_PATH}") as caught:
        import_openapi(swagger({}, basePath="/" + "a" * 1_000_000))
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(("change", "message"), [
    ({"swagger": "1.2"}, r"swagger: Swagger 1\.2 is not supported"),
    ({"paths": ["/a"]}, r"paths: must be a mapping of path to path item, not a list"),
    ({"paths": None}, r"paths: must be a mapping .* not missing"),
    ({"definitions": []}, r"definitions: must be a mapping, not a list"),
    ({"host": "https://api.example.com/v1"}, r"host: 'https://api.example.com/v1' is not a "
                                             r"host name"),
    ({"host": "api.example.com\r\nX-Evil: 1"}, r"host: .* is not a host name"),
    ({"basePath": "v1 /x"}, r"basePath: 'v1 /x' must start with '/'"),
    ({"schemes": ["gopher"]}, r"schemes: 'gopher' is not one of http, https"),
    ({"consumes": "application/json"}, r"consumes: must be a list of media types"),
])
def test_a_malformed_document_gets_a_typed_error_saying_what_and_where(
        change: dict[str, Any], message: str) -> None:
    document = {**swagger({}), **change}
    with pytest.raises(OpenAPIImportError, match=r"^<dict>: " + message):
        import_openapi(document)


def test_a_schema_nested_absurdly_deep_is_a_typed_error_not_a_crash() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(5000):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(OpenAPIImportError, match=r"definitions\.Deep: schema nested deeper"):
        import_openapi(swagger({}, definitions={"Deep": schema}))


# -- the largest real-world Swagger 2.0 document --------------------------------------------


@pytest.mark.slow
@pytest.mark.realworld
def test_the_largest_real_swagger_20_document_imports_every_operation() -> None:
    if not OPENSHIFT.is_file():
        message = f"{OPENSHIFT} is missing: run scripts/fetch-openapi-fixtures.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    started = time.perf_counter()
    result = import_openapi(OPENSHIFT)
    elapsed = time.perf_counter() - started
    spec = result.connector
    print(f"\n{OPENSHIFT.name}: {len(spec.actions)} actions in {elapsed:.2f} s")  # not asserted
    assert len(spec.actions) == 1201
    assert [s.where for s in result.skipped] == ["components.securitySchemes.Oauth2Implicit"]
    assert spec.auth.type == "api_key"  # BearerToken: an apiKey in the Authorization header
    pods = spec.actions["list_core_v1_namespaced_pod"].pagination
    assert pods is not None
    assert (pods.style, pods.cursor_param, pods.next_cursor, pods.items, pods.limit_param) == (
        "cursor", "continue", "metadata.continue", "items", "limit")
    # (every input is checked against the meta-schema by the import itself)


# -- end to end: an imported connector over real HTTP -------------------------------------


SHOP = {
    "swagger": "2.0",
    "info": {"title": "Shop", "version": "1"},
    "basePath": "/api",
    "consumes": ["application/x-www-form-urlencoded", "application/json"],
    "produces": ["application/json"],
    "securityDefinitions": {"key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
    "security": [{"key": []}],
    "paths": {
        "/orders.create": {"post": {
            "operationId": "orders.create",
            "parameters": [
                {"in": "formData", "name": "item", "type": "string", "required": True},
                {"in": "formData", "name": "quantity", "type": "integer"},
                {"in": "formData", "name": "tags", "type": "array",
                 "items": {"type": "string"}}],
            "responses": {"200": {"description": "created", "schema": {
                "type": "object", "properties": {"ok": {"type": "boolean"}}}}}}},
        "/orders.list": {"get": {
            "operationId": "orders.list",
            "parameters": [
                {"in": "query", "name": "limit", "type": "integer"},
                {"in": "query", "name": "cursor", "type": "string"}],
            "responses": {"200": {"description": "a page", "schema": {
                "type": "object", "properties": {
                    "orders": {"type": "array", "items": {"type": "object"}},
                    "response_metadata": {"$ref": "#/definitions/Meta"}}}}}}},
    },
    "definitions": {"Meta": {"type": "object",
                             "properties": {"next_cursor": {"type": "string"}}}},
}


async def test_an_imported_swagger_connector_sends_form_bodies_and_walks_cursor_pages(
        tmp_path: Path) -> None:
    seen: list[tuple[str, str, dict[str, str], str]] = []
    orders = [{"id": n} for n in range(1, 6)]

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append(("POST", request.path, {k: str(v) for k, v in form.items()},
                     request.headers.get("X-Api-Key", "")))
        return web.json_response({"ok": True})

    async def listing(request: web.Request) -> web.Response:
        seen.append(("GET", request.path, dict(request.query),
                     request.headers.get("X-Api-Key", "")))
        start = int(request.query.get("cursor", "0"))
        size = int(request.query.get("limit", "2"))
        page = orders[start:start + size]
        following = start + size
        # Slack's way: an empty next_cursor on the last page
        next_cursor = str(following) if following < len(orders) else ""
        return web.json_response({"ok": True, "orders": page,
                                  "response_metadata": {"next_cursor": next_cursor}})

    app = web.Application()
    app.router.add_post("/api/orders.create", create)
    app.router.add_get("/api/orders.list", listing)

    result = import_openapi(SHOP, base_url="{url}/api")
    spec = load_connector_text(result.to_yaml(), "shop.yaml")  # as `connector import` writes it
    assert spec.actions["orders_list"].pagination is not None
    async with serve(app) as url:
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("shop", "main", {"url": url, "api_key": "k-123"})
            created = await pw.call("shop.orders_create", {"item": "tea", "quantity": 2})
            records = [r async for r in pw.paginate("shop.orders_list", {"limit": 2})]

    assert created == {"ok": True}
    assert seen[0] == ("POST", "/api/orders.create", {"item": "tea", "quantity": "2"}, "k-123")
    assert records == orders
    pages = [(q.get("cursor"), q.get("limit")) for method, _, q, _ in seen if method == "GET"]
    assert pages == [(None, "2"), ("2", "2"), ("4", "2")]
    assert all(key == "k-123" for *_, key in seen)


async def test_an_imported_oauth2_client_credentials_connector_sends_its_bearer_token(
        tmp_path: Path) -> None:
    """Slack's shape: OAuth2, and a `token` form parameter the auth layer covers."""
    tokens_issued: list[str] = []
    seen: list[tuple[str, dict[str, str]]] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        assert form.get("grant_type") == "client_credentials"
        tokens_issued.append("tok-1")
        return web.json_response({"access_token": "tok-1", "token_type": "Bearer",
                                  "expires_in": 3600})

    async def post(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append((request.headers.get("Authorization", ""),
                     {k: str(v) for k, v in form.items()}))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_post("/api/chat.post", post)
    document = swagger(
        {"/chat.post": {"post": op(operationId="chat.post", parameters=[
            {"in": "formData", "name": "token", "type": "string", "required": True},
            {"in": "formData", "name": "text", "type": "string", "required": True}])}},
        securityDefinitions={"o": {"type": "oauth2", "flow": "application",
                                   "tokenUrl": "{url}/oauth/token",
                                   "scopes": {"chat:write": "post"}}})
    spec = load_connector_text(import_openapi(document, base_url="{url}/api").to_yaml(),
                               "chat.yaml")
    assert spec.actions["chat_post"].input["required"] == ["text"]
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("test_api", "main", {"url": url, "client_id": "c",
                                                     "client_secret": "s"})
        answer = await pw.call("test_api.chat_post", {"text": "hello"})
    assert answer == {"ok": True}
    assert tokens_issued == ["tok-1"]
    assert seen == [("Bearer tok-1", {"text": "hello"})]
