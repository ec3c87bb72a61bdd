"""OAuth 1.0a (``oauth1`` auth): signatures checked against RFC 5849's published examples
and, through the whole call path, by oauthlib's server side (``ResourceEndpoint``,
``SignatureOnlyEndpoint``) on a loopback server reading what arrived."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from oauthlib.oauth1 import (  # type: ignore[import-untyped]
    RequestValidator,
    ResourceEndpoint,
    SignatureOnlyEndpoint,
)
from yarl import URL

from patchwire import Patchwire
from patchwire.auth._oauth1 import OAuth1Signer
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.spec import OAuth1Auth
from patchwire.errors import CallError, RequestRenderError, SpecError
from patchwire.http import PreparedRequest, instant_retries
from tests.support.conformance import conformance_path
from tests.support.leaks import new_canary
from tests.support.servers import serve
from tests.support.settings import local_settings


@cache
def rfc() -> dict[str, dict[str, str]]:
    examples: dict[str, dict[str, str]] = json.loads(
        conformance_path("oauth1", "rfc5849-examples.json").read_text("utf-8"))
    return examples


def oauth_params(authorization: str) -> dict[str, str]:
    assert authorization.startswith("OAuth ")
    out = {}
    for part in authorization[len("OAuth "):].split(","):
        name, _, value = part.strip().partition("=")
        out[name] = unquote(value.strip('"'))
    return out


def rfc_signer(example: dict[str, str]) -> OAuth1Signer:
    auth = OAuth1Auth(type="oauth1", consumer_key="{ck}", consumer_secret="{cs}",
                      token="{t}", token_secret="{ts}", realm=example["realm"],
                      version=False)  # the RFC's examples send no oauth_version
    values = {"ck": example["consumer_key"], "cs": example["consumer_secret"],
              "t": example["token"], "ts": example["token_secret"]}
    return OAuth1Signer(auth, values, nonce=lambda: example["nonce"])


def test_the_rfcs_authenticated_photo_request_gets_the_rfcs_signature() -> None:
    example = rfc()["section_1_2_resource_request"]
    req = PreparedRequest(example["method"], example["uri"], {})
    rfc_signer(example).sign(req, float(example["timestamp"]))
    params = oauth_params(req.headers["Authorization"])
    assert params["oauth_signature"] == example["signature"]
    assert params["realm"] == "Photos" and params["oauth_nonce"] == "chapoH"
    assert "oauth_version" not in params


def test_the_rfcs_example_request_is_signed_over_the_rfcs_base_string() -> None:
    example = rfc()["section_3_4_1_request"]
    req = PreparedRequest(example["method"], example["uri"],
                          {"Content-Type": example["content_type"]},
                          data=example["body"].encode())
    rfc_signer(example).sign(req, float(example["timestamp"]))
    key = f"{example['consumer_secret']}&{example['token_secret']}".encode()
    expected = base64.b64encode(hmac.new(key, example["base_string"].encode(),
                                         hashlib.sha1).digest()).decode()
    assert oauth_params(req.headers["Authorization"])["oauth_signature"] == expected
    assert req.data == example["body"].encode()  # header placement leaves the body be


# -- generated requests, verified by oauthlib's provider side -------------------------------

segment = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"),
                  min_size=1, max_size=10).filter(lambda s: s not in (".", ".."))
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(segments=st.lists(segment, min_size=1, max_size=3),
       params=st.dictionaries(text.filter(bool), text, max_size=4),
       form=st.none() | st.dictionaries(text.filter(bool), text, min_size=1, max_size=3),
       method=st.sampled_from(["HMAC-SHA1", "HMAC-SHA256", "PLAINTEXT"]))
def test_generated_requests_verify_at_an_oauthlib_provider(
        segments: list[str], params: dict[str, str], form: dict[str, str] | None,
        method: Any) -> None:
    auth = OAuth1Auth(type="oauth1", consumer_key="{ck}", consumer_secret="{cs}",
                      token="{t}", token_secret="{ts}",
                      signature_method=method)
    signer = OAuth1Signer(auth, {"ck": CONSUMER_KEY, "cs": CONSUMER_SECRET, "t": TOKEN,
                                 "ts": TOKEN_SECRET})
    url = str(URL("https://api.example.com").with_path("/" + "/".join(segments)))
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    req = PreparedRequest("POST" if form else "GET", url, headers, params=params or None,
                          data=urlencode(form).encode() if form else None)
    signer.sign(req, time.time())
    # the provider reads the request line as sent: the URL the transports parse
    ok, _ = ResourceEndpoint(Validator()).validate_protected_resource_request(
        str(URL(req.url)), req.method, req.data.decode() if req.data else None, req.headers)
    assert ok


# -- through the call path, verified by oauthlib's server side -----------------------------

CONSUMER_KEY = "patchwire-consumer"
CONSUMER_SECRET = "consumer-secret-kd94hf93k423kf44"
TOKEN = "access-token-nnch734d00sl2jdk"
TOKEN_SECRET = "token-secret-pfkkdhi9sl3r4s00"


@cache
def rsa_keys() -> tuple[str, str]:
    """(private PEM, public PEM) of a throwaway RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class Validator(RequestValidator):  # type: ignore[misc]
    """The provider's records: one consumer, one access token, nonces seen."""

    def __init__(self, consumer_secret: str = CONSUMER_SECRET,
                 token_secret: str = TOKEN_SECRET) -> None:
        super().__init__()
        self.consumer_secret = consumer_secret
        self.token_secret = token_secret
        self.nonces: set[tuple[str, str, str]] = set()

    enforce_ssl = False  # a loopback server
    allowed_signature_methods = ("HMAC-SHA1", "HMAC-SHA256", "RSA-SHA1", "PLAINTEXT")
    dummy_client = "dummy-client"
    dummy_access_token = "dummy-token"

    def check_client_key(self, client_key: str) -> bool:
        return True

    def check_access_token(self, token: str) -> bool:
        return True

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        return client_key == CONSUMER_KEY

    def get_client_secret(self, client_key: str, request: Any) -> str:
        return self.consumer_secret

    def get_rsa_key(self, client_key: str, request: Any) -> str:
        return rsa_keys()[1]

    def validate_access_token(self, client_key: str, token: str, request: Any) -> bool:
        return token == TOKEN

    def get_access_token_secret(self, client_key: str, token: str, request: Any) -> str:
        return self.token_secret

    def validate_realms(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def validate_timestamp_and_nonce(self, client_key: str, timestamp: str, nonce: str,
                                     request: Any, request_token: str | None = None,
                                     access_token: str | None = None) -> bool:
        seen = (client_key, timestamp, nonce)
        if seen in self.nonces:
            return False
        self.nonces.add(seen)
        return True


class Provider:
    """A loopback upstream verifying each request with oauthlib, from the raw request
    line, the headers and the body as they arrived."""

    def __init__(self, *, two_legged: bool = False, echo: bool = False,
                 unavailable: int = 0) -> None:
        self.unavailable = unavailable  # answer this many verified requests with 503
        self.validator = Validator()
        self.endpoint = (SignatureOnlyEndpoint(self.validator) if two_legged
                         else ResourceEndpoint(self.validator))
        self.two_legged = two_legged
        self.echo = echo
        self.seen: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = (await request.read()).decode()
            uri = f"http://{request.host}{request.raw_path}"
            headers = dict(request.headers)
            if self.two_legged:
                ok, _ = self.endpoint.validate_request(uri, request.method, body or None,
                                                       headers)
            else:
                ok, _ = self.endpoint.validate_protected_resource_request(
                    uri, request.method, body or None, headers)
            authz = request.headers.get("Authorization")
            oauth = oauth_params(authz) if authz else {}
            if "oauth_body_hash" in oauth:  # the body-hash extension covers a JSON body
                ok = ok and oauth["oauth_body_hash"] == base64.b64encode(
                    hashlib.sha1(body.encode()).digest()).decode()
            raw_path, _, raw_query = request.raw_path.partition("?")
            self.seen.append({"ok": ok, "path": unquote(raw_path), "body": body,
                              "query": parse_qsl(raw_query, keep_blank_values=True),
                              "oauth": oauth})
            if ok and self.unavailable:
                self.unavailable -= 1
                return web.json_response({"message": "try again"}, status=503)
            if self.echo:  # a hostile upstream repeating what it was sent
                return web.json_response({"message": f"refused {authz}"}, status=401)
            if not ok:
                return web.json_response({"message": "invalid signature"}, status=401)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


CONNECTOR = """
name: tumblr
base_url: "{url}"
settings:
  url: {}
  consumer_key: {}
  consumer_secret: {secret: true, required: false}
  token: {required: false}
  token_secret: {secret: true, required: false}
  rsa_key: {secret: true, required: false}
auth:
  type: oauth1
  consumer_key: "{consumer_key}"
  AUTH
retry: {attempts: 2, backoff_initial: 0}
actions:
  search:
    input:
      type: object
      required: [blog]
      properties: {blog: {type: string}, q: {type: string}, tag: {type: string}}
    request:
      path: /blogs/{blog}/posts
      query: {q: "{q}", tag: "{tag}"}
  post:
    input:
      type: object
      required: [blog]
      properties: {blog: {type: string}, text: {type: string}}
    request:
      method: POST
      path: /blogs/{blog}/posts
      body: {text: "{text}"}
  post_form:
    input:
      type: object
      required: [blog]
      properties: {blog: {type: string}, text: {type: string}}
    request:
      method: POST
      path: /blogs/{blog}/form
      body_type: form
      body: {text: "{text}", kind: "note"}
"""

HMAC_THREE_LEGGED = """consumer_secret: "{consumer_secret}"
  token: "{token}"
  token_secret: "{token_secret}"
"""


@asynccontextmanager
async def oauth1_connection(tmp_path: Path, app: web.Application, auth: str,
                            **values: str) -> AsyncIterator[Patchwire]:
    async with serve(app) as url:
        spec = load_connector_text(CONNECTOR.replace("AUTH\n", auth), "tumblr.yaml")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("tumblr", "main", {
                "url": url, "consumer_key": CONSUMER_KEY, **values})
            yield pw


THREE_LEGGED_VALUES = {"consumer_secret": CONSUMER_SECRET, "token": TOKEN,
                       "token_secret": TOKEN_SECRET}
AWKWARD = {"blog": "café au lait/ünï+&?#;=", "q": "x y+z&oauth_token=evil#e é ☃ *'()!$,:@",
           "tag": "~-._ \t%41"}


@pytest.mark.parametrize("method", ["HMAC-SHA1", "HMAC-SHA256", "PLAINTEXT"])
async def test_hmac_signed_calls_verify_at_an_oauthlib_provider(
        tmp_path: Path, method: str) -> None:
    provider = Provider()
    auth = HMAC_THREE_LEGGED + f"  signature_method: {method}\n"
    async with oauth1_connection(tmp_path, provider.app(), auth,
                                 **THREE_LEGGED_VALUES) as pw:
        assert await pw.call("tumblr.search", AWKWARD) == {"ok": True}
        assert await pw.call("tumblr.post", {"blog": "b", "text": 'naïve "json"'}) == {
            "ok": True}
        assert await pw.call("tumblr.post_form", {"blog": "b", "text": "a b+c&d=é"}) == {
            "ok": True}
    search, post, form = provider.seen
    assert search["ok"] and post["ok"] and form["ok"]
    # what was signed is what the arguments meant
    assert search["path"] == "/blogs/" + AWKWARD["blog"] + "/posts"
    assert dict(search["query"]) == {"q": AWKWARD["q"], "tag": AWKWARD["tag"]}
    assert search["oauth"]["oauth_token"] == TOKEN
    assert "oauth_body_hash" in post["oauth"] and "oauth_body_hash" not in form["oauth"]


async def test_rsa_sha1_signed_calls_verify_with_the_public_key(tmp_path: Path) -> None:
    provider = Provider(two_legged=True)
    auth = 'signature_method: RSA-SHA1\n  rsa_key: "{rsa_key}"\n'
    async with oauth1_connection(tmp_path, provider.app(), auth,
                                 rsa_key=rsa_keys()[0]) as pw:
        await pw.call("tumblr.search", AWKWARD)
        await pw.call("tumblr.post", {"blog": "b", "text": "ü"})
    assert [s["ok"] for s in provider.seen] == [True, True]
    assert provider.seen[0]["oauth"]["oauth_signature_method"] == "RSA-SHA1"


async def test_parameters_in_the_query_or_a_form_body_verify_too(tmp_path: Path) -> None:
    for placement, action, args in (("query", "tumblr.search", AWKWARD),
                                    ("body", "tumblr.post_form", {"blog": "b", "text": "é&"})):
        provider = Provider()
        auth = HMAC_THREE_LEGGED + f"  placement: {placement}\n"
        async with oauth1_connection(tmp_path / placement, provider.app(), auth,
                                     **THREE_LEGGED_VALUES) as pw:
            assert await pw.call(action, args) == {"ok": True}
        (seen,) = provider.seen
        assert seen["ok"] and not seen["oauth"]
        carried = dict(seen["query"]) if placement == "query" else dict(
            parse_qsl(seen["body"]))
        assert carried["oauth_token"] == TOKEN and "oauth_signature" in carried


async def test_a_body_placement_refuses_a_json_body_with_a_typed_error(tmp_path: Path) -> None:
    provider = Provider()
    auth = HMAC_THREE_LEGGED + "  placement: body\n"
    async with oauth1_connection(tmp_path, provider.app(), auth, **THREE_LEGGED_VALUES) as pw:
        with pytest.raises(RequestRenderError) as info:
            await pw.call("tumblr.post", {"blog": "b", "text": "x"})
    assert "form" in str(info.value) and not provider.seen
    assert CONSUMER_SECRET not in str(info.value)


async def test_a_retry_repeats_the_nonce_which_a_provider_remembering_nonces_refuses(
        tmp_path: Path) -> None:
    """As documented: the HTTP core resends the signed request; a provider that keeps
    every nonce answers the repeat 401, which is not retried: the call fails visibly."""
    provider = Provider(unavailable=1)
    with instant_retries():
        async with oauth1_connection(tmp_path, provider.app(), HMAC_THREE_LEGGED,
                                     **THREE_LEGGED_VALUES) as pw:
            with pytest.raises(CallError) as info:
                await pw.call("tumblr.search", {"blog": "b"})
    first, second = provider.seen
    assert first["ok"] and not second["ok"]
    assert first["oauth"]["oauth_nonce"] == second["oauth"]["oauth_nonce"]
    assert info.value.code == "auth_error"


async def test_a_wrong_secret_is_refused_by_the_provider(tmp_path: Path) -> None:
    provider = Provider()
    values = {**THREE_LEGGED_VALUES, "token_secret": "not-the-token-secret"}
    with instant_retries():
        async with oauth1_connection(tmp_path, provider.app(), HMAC_THREE_LEGGED,
                                     **values) as pw:
            with pytest.raises(CallError):
                await pw.call("tumblr.search", {"blog": "b"})
    assert provider.seen and not provider.seen[0]["ok"]


async def test_plaintext_secrets_echoed_by_the_upstream_stay_out_of_errors_and_the_call_log(
        tmp_path: Path) -> None:
    consumer_secret, token_secret = new_canary("consumer"), new_canary("token")
    provider = Provider(echo=True)
    auth = HMAC_THREE_LEGGED + "  signature_method: PLAINTEXT\n"
    with instant_retries():
        async with oauth1_connection(
                tmp_path, provider.app(), auth, consumer_secret=consumer_secret,
                token=TOKEN, token_secret=token_secret) as pw:
            with pytest.raises(CallError) as info:
                await pw.call("tumblr.search", {"blog": "b"})
            calls = await pw.recent_calls()
    # PLAINTEXT sends both secrets as the signature: the upstream saw them...
    assert consumer_secret in provider.seen[0]["oauth"]["oauth_signature"]
    # ...but its echo of them reaches neither the error nor the call log
    for secret in (consumer_secret, token_secret):
        assert secret not in str(info.value)
        assert secret not in (calls[0].error_message or "")


async def test_an_rsa_key_that_does_not_parse_is_reported_without_showing_it(
        tmp_path: Path) -> None:
    provider = Provider(two_legged=True)
    bad_key = "-----BEGIN PRIVATE KEY-----\n" + new_canary("key") + "\n-----END PRIVATE KEY-----"
    auth = 'signature_method: RSA-SHA1\n  rsa_key: "{rsa_key}"\n'
    async with oauth1_connection(tmp_path, provider.app(), auth, rsa_key=bad_key) as pw:
        with pytest.raises(RequestRenderError) as info:
            await pw.call("tumblr.search", {"blog": "b"})
    assert "RSA-SHA1 key does not parse" in str(info.value)
    assert bad_key.split("\n")[1] not in str(info.value) and not provider.seen


def test_a_consumer_secret_from_a_setting_not_declared_secret_is_refused() -> None:
    text = CONNECTOR.replace("AUTH\n", HMAC_THREE_LEGGED).replace(
        "consumer_secret: {secret: true, required: false}", "consumer_secret: {}")
    with pytest.raises(SpecError) as info:
        load_connector_text(text, "tumblr.yaml")
    (problem,) = info.value.problems
    assert problem.path == "auth.consumer_secret" and "secret: true" in problem.message


def test_rsa_sha1_without_a_key_is_refused_when_the_connector_loads() -> None:
    with pytest.raises(SpecError) as info:
        load_connector_text(CONNECTOR.replace("AUTH\n", "signature_method: RSA-SHA1\n"),
                            "tumblr.yaml")
    assert "rsa_key" in str(info.value)
