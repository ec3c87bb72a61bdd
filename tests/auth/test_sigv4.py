"""AWS Signature V4 (``aws_sigv4`` auth), checked against two implementations we did not
write: AWS's own signing test suite (aws-c-auth's vectors) and botocore's ``SigV4Auth``,
on generated requests and on requests that went through the whole call path to a
loopback server recomputing the signature from what it received."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from botocore.auth import S3SigV4Auth, SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchwire import Patchwire
from patchwire.auth import build_signer
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.spec import AwsSigV4Auth
from patchwire.errors import CallError, InputValidationError, RequestRenderError, SpecError
from patchwire.http import PreparedRequest, instant_retries
from tests.support.conformance import conformance_path
from tests.support.leaks import new_canary
from tests.support.servers import serve
from tests.support.settings import local_settings

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#: 2015-08-30T12:36:00Z, the suite's timestamp
SUITE_NOW = 1440938160.0


@cache
def suite() -> dict[str, dict[str, str]]:
    data = json.loads(conformance_path("aws-sigv4", "v4-suite.json").read_text("utf-8"))
    cases: dict[str, dict[str, str]] = data["cases"]
    return cases


def parse_request(text: str) -> tuple[str, str, str, list[tuple[str, str]], bytes]:
    """(method, path, query, headers, body) of a suite ``request.txt`` (its request line
    holds the path unencoded, spaces included; folded header lines continue a value)."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" HTTP/", 1)[0]
    path, _, query = target.partition("?")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, path, query, headers, body.encode()


def runnable_cases() -> list[str]:
    # omit_session_token: the token is added after signing, a client option we do not have
    return sorted(name for name, case in suite().items()
                  if not json.loads(case["context.json"]).get("omit_session_token"))


@pytest.mark.parametrize("name", runnable_cases())
def test_each_case_of_the_aws_signing_test_suite_gives_its_canonical_request_and_signature(
        name: str) -> None:
    from patchwire.auth._sigv4 import (  # the algorithm's steps, checked one by one
        canonical_request,
        signature,
        signing_key,
        string_to_sign,
    )

    case = suite()[name]
    context = json.loads(case["context.json"])
    method, path, query, headers, body = parse_request(case["request.txt"])
    amz_date = context["timestamp"].replace("-", "").replace(":", "")
    headers.append(("X-Amz-Date", amz_date))
    token = context["credentials"].get("token")
    if token:
        headers.append(("X-Amz-Security-Token", token))
    payload_hash = hashlib.sha256(body).hexdigest()
    if context["sign_body"]:
        headers.append(("X-Amz-Content-Sha256", payload_hash))
    canonical, signed = canonical_request(method, path, query, headers, payload_hash,
                                          normalize=context["normalize"])
    assert canonical == case["header-canonical-request.txt"]
    scope = f"{amz_date[:8]}/{context['region']}/{context['service']}/aws4_request"
    sts = string_to_sign(amz_date, scope, canonical)
    assert sts == case["header-string-to-sign.txt"]
    key = signing_key(context["credentials"]["secret_access_key"], amz_date[:8],
                      context["region"], context["service"])
    sig = signature(key, sts)
    assert sig == case["header-signature.txt"].strip()
    assert (f"Authorization:AWS4-HMAC-SHA256 Credential={AKID}/{scope}, "
            f"SignedHeaders={signed}, Signature={sig}") in case["header-signed-request.txt"]


def test_the_signer_signs_the_suites_vanilla_request_as_the_suite_does() -> None:
    case = suite()["get-vanilla-query"]
    signer = build_signer(AwsSigV4Auth(type="aws_sigv4", service="service",
                                       region="us-east-1"),
                          {"access_key_id": AKID, "secret_access_key": SECRET})
    assert signer is not None
    req = PreparedRequest("GET", "https://example.amazonaws.com/", {})
    signer.sign(req, SUITE_NOW)
    assert req.headers["X-Amz-Date"] == "20150830T123600Z"
    assert f"Signature={case['header-signature.txt'].strip()}" in req.headers["Authorization"]


# -- against botocore ---------------------------------------------------------------------


def botocore_signature(req: PreparedRequest, service: str, region: str, *,
                       token: str | None = None, s3: bool = False) -> str:
    """botocore's signature of ``req`` as signed (its X-Amz-* headers as ours), the query
    given decoded so that botocore encodes it its own way."""
    url, _, raw_query = req.url.partition("?")
    params = [(unquote(k), unquote(v))
              for k, _, v in (p.partition("=") for p in raw_query.split("&") if p)]
    headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
    aws = AWSRequest(method=req.method, url=url, headers=headers, data=req.data or b"",
                     params=params)
    aws.context["timestamp"] = req.headers["X-Amz-Date"]
    signer_class = S3SigV4Auth if s3 else SigV4Auth
    auth = signer_class(Credentials(AKID, SECRET, token), service, region)
    canonical = auth.canonical_request(aws)
    sig: str = auth.signature(auth.string_to_sign(aws, canonical), aws)
    return sig


def ours(req: PreparedRequest) -> str:
    return req.headers["Authorization"].rsplit("Signature=", 1)[1]


segment = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"),
                  min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
query_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=16)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20)


requests = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    "segments": st.lists(segment, min_size=1, max_size=4),
    "params": st.dictionaries(query_text.filter(bool), query_text, max_size=5),
    "body": st.binary(max_size=64),
    "extra": st.dictionaries(st.sampled_from(["X-Custom", "Content-Type", "X-Amz-Target"]),
                             header_value, max_size=3),
    "token": st.none() | st.just("FQoGZXIvYXdzE//session+token="),
})


def check_against_botocore(case: dict[str, Any]) -> None:
    from yarl import URL

    token = case["token"]
    values = {"access_key_id": AKID, "secret_access_key": SECRET, "token": token}
    auth = AwsSigV4Auth(type="aws_sigv4", service="execute-api", region="eu-west-3",
                        session_token="{token}" if token else None)
    signer = build_signer(auth, values)
    assert signer is not None
    # the path as the call path renders it: yarl percent-encodes it
    url = str(URL("https://api.example.com:8443").with_path("/" + "/".join(case["segments"])))
    method = case["method"]
    req = PreparedRequest(method, url, dict(case["extra"]), params=dict(case["params"]) or None,
                          data=case["body"] if method != "GET" else None)
    signer.sign(req, 1_767_000_000.0)
    assert req.params is None
    assert ours(req) == botocore_signature(req, "execute-api", "eu-west-3", token=token)


@settings(max_examples=40, deadline=None)  # the slow test below runs 2,000
@given(requests)
def test_signatures_match_botocore_on_generated_requests(case: dict[str, Any]) -> None:
    check_against_botocore(case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_signatures_match_botocore_on_two_thousand_generated_requests(
        case: dict[str, Any]) -> None:
    check_against_botocore(case)


def test_s3_signs_the_path_once_and_says_the_payload_hash() -> None:
    signer = build_signer(AwsSigV4Auth(type="aws_sigv4", service="s3", region="us-east-1"),
                          {"access_key_id": AKID, "secret_access_key": SECRET})
    assert signer is not None
    req = PreparedRequest("PUT", "https://bucket.s3.amazonaws.com/photos/a%20b.jpg",
                          {"Content-Type": "image/jpeg"}, data=b"\xff\xd8jpeg")
    signer.sign(req, 1_767_000_000.0)
    assert req.headers["X-Amz-Content-Sha256"] == hashlib.sha256(
        b"\xff\xd8jpeg").hexdigest()
    assert ours(req) == botocore_signature(req, "s3", "us-east-1", s3=True)


def test_an_unsigned_payload_is_announced_and_signed_as_such() -> None:
    signer = build_signer(AwsSigV4Auth(type="aws_sigv4", service="s3", region="us-east-1",
                                       sign_body=False),
                          {"access_key_id": AKID, "secret_access_key": SECRET})
    assert signer is not None
    req = PreparedRequest("PUT", "https://bucket.s3.amazonaws.com/big", {}, data=b"x" * 10)
    signer.sign(req, 1_767_000_000.0)
    assert req.headers["X-Amz-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert ours(req) == botocore_signature(req, "s3", "us-east-1", s3=True)


# -- through the call path, verified by a loopback server ---------------------------------

CONNECTOR = """
name: aws
base_url: "{url}"
settings:
  url: {}
  region: {default: eu-central-1}
  access_key_id: {}
  secret_access_key: {secret: true}
  session_token: {secret: true, required: false}
auth:
  type: aws_sigv4
  service: execute-api
  region: "{region}"
  session_token: "{session_token}"
retry: {attempts: 2, backoff_initial: 0}
actions:
  get_item:
    input:
      type: object
      required: [id]
      properties: {id: {type: string}, q: {type: string}, tag: {type: string}}
    request:
      path: /items/{id}
      query: {q: "{q}", tag: "{tag}"}
  list_items:
    input:
      type: object
      properties: {q: {type: string}}
    request:
      path: /items
      query: {q: "{q}"}
    pagination: {style: cursor, items: items, next_cursor: next, cursor_param: after}
  put_item:
    input:
      type: object
      required: [id]
      properties: {id: {type: string}, name: {type: string}}
    request:
      method: PUT
      path: /items/{id}
      body: {name: "{name}"}
"""


class Verifier:
    """A loopback upstream that checks each request's SigV4 signature with botocore,
    from what arrived: the raw request line, the headers it lists as signed, the body."""

    def __init__(self, token: str | None = None, echo: str | None = None,
                 unavailable: int = 0) -> None:
        self.token = token
        self.echo = echo
        self.unavailable = unavailable  # answer this many requests with 503 first
        self.seen: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            authz = request.headers.get("Authorization", "")
            fields = dict(part.strip().split("=", 1) for part in
                          authz.removeprefix("AWS4-HMAC-SHA256 ").split(","))
            signed = fields["SignedHeaders"].split(";")
            raw_path, _, raw_query = request.raw_path.partition("?")
            headers = {name: ",".join(request.headers.getall(name)) for name in signed}
            params = [(unquote(k), unquote(v)) for k, _, v in
                      (p.partition("=") for p in raw_query.split("&") if p)]
            aws = AWSRequest(method=request.method, url=f"http://{request.host}{raw_path}",
                             headers=headers, data=body, params=params)
            aws.context["timestamp"] = request.headers["X-Amz-Date"]
            region = fields["Credential"].split("/")[2]
            auth = SigV4Auth(Credentials(AKID, SECRET, self.token), "execute-api", region)
            expected = auth.signature(auth.string_to_sign(aws, auth.canonical_request(aws)),
                                      aws)
            ok = expected == fields["Signature"] and "host" in signed
            self.seen.append({"ok": ok, "params": params, "path": unquote(raw_path),
                              "headers": dict(request.headers)})
            if self.unavailable:
                self.unavailable -= 1
                return web.json_response({"message": "try again"}, status=503)
            if raw_path == "/graphql":  # an AppSync-like GraphQL endpoint
                variables = json.loads(body)["variables"]
                return web.json_response({"data": {"item": {"id": variables["id"]}}},
                                         status=200 if ok else 403)
            if raw_path == "/items":  # three pages of two, by cursor
                after = int(dict(params).get("after", "0"))
                return web.json_response({"items": [after + 1, after + 2],
                                          "next": str(after + 2) if after < 4 else None},
                                         status=200 if ok else 403)
            if self.echo is not None:  # a hostile upstream repeating what it was sent
                return web.json_response({"message": request.headers.get(self.echo)},
                                         status=403)
            if not ok:
                return web.json_response({"message": "SignatureDoesNotMatch"}, status=403)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@asynccontextmanager
async def aws_connection(tmp_path: Path, app: web.Application,
                         **values: str) -> AsyncIterator[Patchwire]:
    """A Patchwire whose connection ``main`` of the connector above reaches ``app``."""
    async with serve(app) as url:
        registry = ConnectorRegistry([load_connector_text(CONNECTOR, "aws.yaml")])
        async with Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw:
            await pw.add_connection("aws", "main", {
                "url": url, "access_key_id": AKID, "secret_access_key": SECRET, **values})
            yield pw


AWKWARD = {"id": "a b/ç+&?#%2F;=", "q": "x y+z&a=b/c?d#e é ☃ *'()!$,:@", "tag": "~-._ \t"}


async def test_a_call_with_awkward_characters_in_path_and_query_verifies_upstream(
        tmp_path: Path) -> None:
    verifier = Verifier()
    async with aws_connection(tmp_path, verifier.app()) as pw:
        assert await pw.call("aws.get_item", AWKWARD) == {"ok": True}
        assert await pw.call("aws.put_item", {"id": "ü", "name": 'naïve "json"'}) == {
            "ok": True}
    first, second = verifier.seen
    assert first["ok"] and second["ok"]
    # the server got the arguments intact: what was signed is what they meant
    assert dict(first["params"]) == {"q": AWKWARD["q"], "tag": AWKWARD["tag"]}
    assert first["path"] == "/items/" + AWKWARD["id"]


async def test_temporary_credentials_send_and_sign_the_session_token(tmp_path: Path) -> None:
    token = "FwoGZXIvYXdzEBYaDH//session+token=="
    verifier = Verifier(token=token)
    async with aws_connection(tmp_path, verifier.app(), session_token=token) as pw:
        await pw.call("aws.get_item", {"id": "1"})
    assert verifier.seen[0]["ok"]
    assert verifier.seen[0]["headers"]["X-Amz-Security-Token"] == token


async def test_every_page_of_a_walk_is_signed_with_its_own_cursor(tmp_path: Path) -> None:
    verifier = Verifier()
    async with aws_connection(tmp_path, verifier.app()) as pw:
        items = await pw.call("aws.list_items", {"q": "a b&c"}, paginate=True)
    assert items == [1, 2, 3, 4, 5, 6]
    assert [s["ok"] for s in verifier.seen] == [True, True, True]
    assert [dict(s["params"]).get("after") for s in verifier.seen] == [None, "2", "4"]


APPSYNC = """
name: appsync
protocol: graphql
graphql: {endpoint: /graphql}
base_url: "{url}"
settings:
  url: {}
  access_key_id: {}
  secret_access_key: {secret: true}
auth:
  type: aws_sigv4
  service: execute-api
  region: eu-west-3
actions:
  get_item:
    input: {type: object, required: [id], properties: {id: {type: string}}}
    graphql:
      document: "query Item($id: ID!) { item(id: $id) { id } }"
"""


async def test_a_graphql_operation_is_signed_like_any_request(tmp_path: Path) -> None:
    verifier = Verifier()
    async with serve(verifier.app()) as url:
        registry = ConnectorRegistry([load_connector_text(APPSYNC, "appsync.yaml")])
        async with Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw:
            await pw.add_connection("appsync", "main", {
                "url": url, "access_key_id": AKID, "secret_access_key": SECRET})
            assert await pw.call("appsync.get_item", {"id": "é 1"}) == {"id": "é 1"}
    assert verifier.seen[0]["ok"]


async def test_a_retry_sends_the_same_signature_which_still_verifies(tmp_path: Path) -> None:
    verifier = Verifier(unavailable=1)
    with instant_retries():
        async with aws_connection(tmp_path, verifier.app()) as pw:
            assert await pw.call("aws.get_item", {"id": "1", "q": "a b"}) == {"ok": True}
    first, second = verifier.seen
    assert first["ok"] and second["ok"]
    assert first["headers"]["Authorization"] == second["headers"]["Authorization"]


async def test_hostile_arguments_cannot_change_what_is_signed_or_sent(tmp_path: Path) -> None:
    verifier = Verifier()
    async with aws_connection(tmp_path, verifier.app()) as pw:
        with pytest.raises(InputValidationError):  # a path argument cannot climb
            await pw.call("aws.get_item", {"id": ".."})
        # a query argument smuggling a parameter, a fragment or a new header line stays
        # one value, signed as such
        sneaky = "1&X-Amz-Date=20000101T000000Z#\r\nX-Evil: 1"
        await pw.call("aws.get_item", {"id": "1", "q": sneaky})
    (seen,) = verifier.seen
    assert seen["ok"] and dict(seen["params"]) == {"q": sneaky}
    assert "X-Evil" not in seen["headers"]


async def test_a_secret_echoed_by_the_upstream_is_kept_out_of_errors_and_the_call_log(
        tmp_path: Path) -> None:
    token = new_canary("session")
    verifier = Verifier(token=token, echo="X-Amz-Security-Token")
    with instant_retries():
        async with aws_connection(tmp_path, verifier.app(), session_token=token) as pw:
            with pytest.raises(CallError) as info:
                await pw.call("aws.get_item", {"id": "1"})
            calls = await pw.recent_calls()
    assert token not in str(info.value)
    assert token not in (calls[0].error_message or "")
    assert SECRET not in str(info.value)


def test_a_key_from_a_setting_not_declared_secret_is_refused_where_it_is_written() -> None:
    text = CONNECTOR.replace("secret_access_key: {secret: true}", "secret_access_key: {}")
    with pytest.raises(SpecError) as info:
        load_connector_text(text, "aws.yaml")
    (problem,) = info.value.problems
    assert problem.path == "auth.secret_access_key" and "secret: true" in problem.message
    assert problem.line is not None


def test_a_region_naming_no_setting_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_connector_text(CONNECTOR.replace('region: "{region}"', 'region: "{zone}"'),
                            "aws.yaml")
    assert "{zone}" in str(info.value)


async def test_a_missing_secret_key_is_named_without_calling(tmp_path: Path) -> None:
    verifier = Verifier()
    async with serve(verifier.app()) as url:
        registry = ConnectorRegistry([load_connector_text(
            CONNECTOR.replace("secret_access_key: {secret: true}",
                              "secret_access_key: {secret: true, required: false}"),
            "aws.yaml")])
        async with Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw:
            await pw.add_connection("aws", "main", {"url": url, "access_key_id": AKID})
            with pytest.raises(RequestRenderError) as info:
                await pw.call("aws.get_item", {"id": "1"})
    assert "secret_access_key" in str(info.value) and not verifier.seen
