"""HMAC request signatures over a declared canonical string (``hmac_signature`` auth),
verified through the whole call path by loopback servers that recompute each signature
their own way from what arrived: a Coinbase-style exchange (base64 key, timestamp +
method + request target + body, base64 HMAC-SHA256) and a generic newline-joined scheme
(HMAC-SHA512 over method, path, query, timestamp, nonce and the body's SHA-256, hex)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.auth import build_signer
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.spec import HmacSignatureAuth
from patchwire.errors import RequestRenderError, SpecError
from patchwire.http import PreparedRequest
from tests.support.docs import fenced_blocks
from tests.support.servers import serve
from tests.support.settings import local_settings

SECRET = b"exchange-secret-\x00\xff-bytes"
SECRET_B64 = base64.b64encode(SECRET).decode()
GENERIC_KEY = "generic-signing-key-7d8f3e4a"

#: how each upstream computes the signature it expects: (request, body) -> signature
Check = Callable[[web.Request, bytes], str]


def coinbase_style(request: web.Request, body: bytes) -> str:
    prehash = (request.headers["CB-ACCESS-TIMESTAMP"] + request.method + request.raw_path
               + body.decode())
    return base64.b64encode(hmac.new(SECRET, prehash.encode(), hashlib.sha256).digest()
                            ).decode()


def generic(request: web.Request, body: bytes) -> str:
    path, _, query = request.raw_path.partition("?")
    canonical = "\n".join([request.method, path, query, request.headers["X-Timestamp"],
                           request.headers["X-Nonce"], hashlib.sha256(body).hexdigest()])
    return hmac.new(GENERIC_KEY.encode(), canonical.encode(), hashlib.sha512).hexdigest()


class Upstream:
    def __init__(self, check: Check, header: str) -> None:
        self.check, self.header = check, header
        self.seen: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            ok = hmac.compare_digest(self.check(request, body),
                                     request.headers.get(self.header, ""))
            path, _, query = request.raw_path.partition("?")
            self.seen.append({"ok": ok, "path": unquote(path), "body": body,
                              "query": parse_qsl(query, keep_blank_values=True),
                              "headers": dict(request.headers)})
            if not ok:
                return web.json_response({"message": "bad signature"}, status=401)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", handle)  # line breaks too
        return app


ACTIONS = """
retry: {attempts: 2, backoff_initial: 0}
actions:
  list_orders:
    input:
      type: object
      required: [product]
      properties: {product: {type: string}, status: {type: string}}
    request:
      path: /products/{product}/orders
      query: {status: "{status}"}
  place_order:
    input:
      type: object
      properties: {size: {type: string}, note: {type: string}}
    request:
      method: POST
      path: /orders
      body: {size: "{size}", note: "{note}"}
"""

COINBASE = """
name: exchange
base_url: "{url}"
settings:
  url: {}
  api_key: {}
  api_secret: {secret: true}
  passphrase: {secret: true}
auth:
  type: hmac_signature
  key: "{api_secret}"
  key_encoding: base64
  algorithm: sha256
  canonical: "{timestamp}{method}{target}{body}"
  encoding: base64
  headers:
    CB-ACCESS-KEY: "{api_key}"
    CB-ACCESS-SIGN: "{signature}"
    CB-ACCESS-TIMESTAMP: "{timestamp}"
    CB-ACCESS-PASSPHRASE: "{passphrase}"
""" + ACTIONS

GENERIC = """
name: ledger
base_url: "{url}"
settings:
  url: {}
  signing_key: {secret: true}
auth:
  type: hmac_signature
  algorithm: sha512
  canonical: "{method}\\n{path}\\n{query}\\n{timestamp}\\n{nonce}\\n{body_sha256}"
  timestamp: iso8601
  headers:
    X-Signature: "{signature}"
    X-Timestamp: "{timestamp}"
    X-Nonce: "{nonce}"
""" + ACTIONS


@asynccontextmanager
async def connected(tmp_path: Path, connector: str, app: web.Application,
                    **values: str) -> AsyncIterator[tuple[Patchwire, str]]:
    async with serve(app) as url:
        spec = load_connector_text(connector, "connector.yaml")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection(spec.name, "main", {"url": url, **values})
            yield pw, spec.name


AWKWARD = {"product": "BTC USD/é+&?#;=", "status": "open closed&x=1#f ☃ *'()!$,:@"}


async def test_a_coinbase_style_signature_verifies_upstream(tmp_path: Path) -> None:
    upstream = Upstream(coinbase_style, "CB-ACCESS-SIGN")
    async with connected(tmp_path, COINBASE, upstream.app(), api_key="key-1",
                         api_secret=SECRET_B64, passphrase="pass-1") as (pw, name):
        assert await pw.call(f"{name}.list_orders", AWKWARD) == {"ok": True}
        assert await pw.call(f"{name}.place_order", {"size": "0.5", "note": 'naïve "x"'}) == {
            "ok": True}
        assert await pw.call(f"{name}.list_orders", {"product": "eth"}) == {"ok": True}
    assert [s["ok"] for s in upstream.seen] == [True, True, True]
    listed = upstream.seen[0]
    assert listed["path"] == "/products/" + AWKWARD["product"] + "/orders"
    assert dict(listed["query"]) == {"status": AWKWARD["status"]}
    assert listed["headers"]["CB-ACCESS-KEY"] == "key-1"


async def test_a_generic_newline_joined_signature_verifies_upstream(tmp_path: Path) -> None:
    upstream = Upstream(generic, "X-Signature")
    async with connected(tmp_path, GENERIC, upstream.app(),
                         signing_key=GENERIC_KEY) as (pw, name):
        await pw.call(f"{name}.list_orders", AWKWARD)
        await pw.call(f"{name}.place_order", {"size": "1"})
        await pw.call(f"{name}.place_order", {"size": "1"})
    assert [s["ok"] for s in upstream.seen] == [True, True, True]
    # each request its own nonce
    assert len({s["headers"]["X-Nonce"] for s in upstream.seen}) == 3


async def test_an_argument_with_a_line_break_cannot_add_a_line_to_what_is_signed(
        tmp_path: Path) -> None:
    upstream = Upstream(generic, "X-Signature")
    sneaky = "open\nGET\n/admin\r\nX-Evil: 1"
    async with connected(tmp_path, GENERIC, upstream.app(),
                         signing_key=GENERIC_KEY) as (pw, name):
        await pw.call(f"{name}.list_orders", {"product": "p\r\n..", "status": sneaky})
    (seen,) = upstream.seen
    # the line breaks went percent-encoded into the query: signed and received as one value
    assert seen["ok"] and dict(seen["query"]) == {"status": sneaky}
    assert seen["path"] == "/products/p\r\n../orders" and "X-Evil" not in seen["headers"]


async def test_a_redirect_to_another_origin_carries_no_signature_or_key_headers(
        tmp_path: Path) -> None:
    elsewhere: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        elsewhere.append(dict(request.headers))
        return web.json_response({"ok": True})

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", record)
    async with serve(other) as other_url:
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(other_url + "/collect")

        hostile = web.Application()  # an upstream sending the call elsewhere
        hostile.router.add_route("*", "/{tail:.*}", redirect)
        async with connected(tmp_path, COINBASE, hostile, api_key="key-1",
                             api_secret=SECRET_B64, passphrase="pass-1") as (pw, name):
            await pw.call(f"{name}.list_orders", {"product": "x"})
    (seen,) = elsewhere
    assert not {"CB-ACCESS-KEY", "CB-ACCESS-SIGN", "CB-ACCESS-PASSPHRASE",
                "CB-ACCESS-TIMESTAMP"} & set(seen)


async def test_a_multipart_body_whose_hash_is_signed_is_refused_before_sending(
        tmp_path: Path) -> None:
    upstream = Upstream(generic, "X-Signature")
    connector = GENERIC + """
  upload:
    input: {type: object, properties: {name: {type: string}}}
    request:
      method: POST
      path: /files
      body_type: multipart
      body: {name: "{name}"}
"""
    async with connected(tmp_path, connector, upstream.app(),
                         signing_key=GENERIC_KEY) as (pw, name):
        with pytest.raises(RequestRenderError) as info:
            await pw.call(f"{name}.upload", {"name": "a"})
    assert "multipart" in str(info.value) and not upstream.seen
    assert GENERIC_KEY not in str(info.value)


def sign_at(auth: HmacSignatureAuth, values: dict[str, str], now: float) -> dict[str, str]:
    signer = build_signer(auth, values)
    assert signer is not None
    req = PreparedRequest("GET", "https://api.example.com/v1/x?b=2&a=1", {})
    signer.sign(req, now)
    return req.headers


@pytest.mark.parametrize(("kind", "expected"), [
    ("unix", "1767225600"), ("unix_ms", "1767225600250"),
    ("iso8601", "2026-01-01T00:00:00Z"), ("http_date", "Thu, 01 Jan 2026 00:00:00 GMT")])
def test_each_timestamp_format_is_written_and_signed(kind: Any, expected: str) -> None:
    auth = HmacSignatureAuth(type="hmac_signature", key="{k}", canonical="{timestamp}|{target}",
                             timestamp=kind,
                             headers={"X-Sig": "{signature}", "X-Ts": "{timestamp}"})
    headers = sign_at(auth, {"k": "key"}, 1_767_225_600.25)
    assert headers["X-Ts"] == expected
    assert headers["X-Sig"] == hmac.new(b"key", f"{expected}|/v1/x?b=2&a=1".encode(),
                                        hashlib.sha256).hexdigest()


def test_a_hex_key_is_decoded_and_a_sha1_signature_can_be_base64() -> None:
    auth = HmacSignatureAuth(type="hmac_signature", key="{k}", key_encoding="hex",
                             algorithm="sha1", encoding="base64", canonical="{method} {path}",
                             headers={"Authorization": "HMAC {signature}"})
    headers = sign_at(auth, {"k": "00ff10"}, 0)
    mac = hmac.new(bytes.fromhex("00ff10"), b"GET /v1/x", hashlib.sha1).digest()
    assert headers["Authorization"] == "HMAC " + base64.b64encode(mac).decode()


async def test_a_key_that_is_not_the_declared_encoding_is_named_not_shown(
        tmp_path: Path) -> None:
    upstream = Upstream(coinbase_style, "CB-ACCESS-SIGN")
    async with connected(tmp_path, COINBASE, upstream.app(), api_key="k",
                         api_secret="not base64 at all!", passphrase="p") as (pw, name):
        with pytest.raises(RequestRenderError) as info:
            await pw.call(f"{name}.list_orders", {"product": "x"})
    assert "api_secret" in str(info.value) and "not base64 at all" not in str(info.value)
    assert not upstream.seen


async def test_a_setting_with_a_line_break_cannot_become_a_header_line(tmp_path: Path) -> None:
    upstream = Upstream(coinbase_style, "CB-ACCESS-SIGN")
    async with connected(tmp_path, COINBASE, upstream.app(), api_key="k\r\nX-Evil: 1",
                         api_secret=SECRET_B64, passphrase="p") as (pw, name):
        with pytest.raises(RequestRenderError) as info:
            await pw.call(f"{name}.list_orders", {"product": "x"})
    assert "line break" in str(info.value) and not upstream.seen


def test_a_canonical_string_naming_an_unknown_value_is_refused_where_it_is_written() -> None:
    with pytest.raises(SpecError) as info:
        load_connector_text(GENERIC.replace("{body_sha256}", "{body_md5}"), "ledger.yaml")
    (problem,) = info.value.problems
    assert problem.path == "auth.canonical" and "{body_md5}" in problem.message
    assert problem.line is not None


def test_headers_that_never_carry_the_signature_are_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_connector_text(GENERIC.replace('X-Signature: "{signature}"', 'X-Sig: "{nonce}"'),
                            "ledger.yaml")
    assert "{signature}" in str(info.value)


def test_a_signing_key_from_a_setting_not_declared_secret_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_connector_text(GENERIC.replace("signing_key: {secret: true}", "signing_key: {}"),
                            "ledger.yaml")
    assert "secret: true" in str(info.value)


def test_every_example_of_the_signing_docs_loads() -> None:
    blocks = fenced_blocks("connectors/auth-signing.md")
    loaded = [load_connector_text(block, f"auth-signing.md#{i}") for i, block in
              enumerate(blocks)]
    assert sorted(spec.auth.type for spec in loaded) == [
        "aws_sigv4", "hmac_signature", "hmac_signature", "oauth1"]
