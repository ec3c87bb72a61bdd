"""An upstream that echoes a credential, in any encoding, reveals it nowhere.

A real upstream on 127.0.0.1 answers 400 with the Authorization header it received and
the connection's secret in every common encoding, some padded so the secret sits across
the cut of the body excerpt. The secret must then be absent, in every encoding, from the
exception, the call log (the store's files), the REST API's call and tool-call records
and what a model reads.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.auth import OAuth2Client
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import OAuthError, UpstreamResponseError
from patchwire.http import HttpCore, Redactor, excerpt
from patchwire.server import create_app
from patchwire.tools import ToolInvoker
from tests.support.leaks import encoded_forms, leaks_in_files, new_canary
from tests.support.servers import serve, serving
from tests.support.settings import LOOPBACK, local_settings

USER = "ana"

CONNECTOR = """
name: echoer
base_url: "{url}"
settings: {url: {}, username: {}, password: {secret: true}}
auth: {type: basic}
retry: {attempts: 1}
actions:
  echo:
    input: {type: object, properties: {mode: {type: string}}, required: [mode]}
    request: {path: "/echo/{mode}"}
    tool: {confirm: false}
"""


def all_encodings(secret: str) -> dict[str, bytes]:
    """Every form of ``secret`` that must not be readable: as is, hex, percent-encoded,
    base64 and base64url (alone or inside a longer value, any alignment), and the
    ``Basic`` credentials built from it."""
    forms = encoded_forms(secret)
    basic = base64.b64encode(f"{USER}:{secret}".encode())
    forms["basic"] = basic
    forms["basic-url"] = basic.replace(b"+", b"-").replace(b"/", b"_")
    forms["quote-plus"] = quote_plus(secret).encode()
    return forms


def leaks(text: str | bytes, secret: str) -> list[str]:
    blob = text.encode() if isinstance(text, str) else text
    return [name for name, form in all_encodings(secret).items() if form in blob]


def echoed_forms(secret: str, authorization: str) -> str:
    """The secret as a careless upstream might echo it back."""
    raw = secret.encode()
    b64 = [base64.b64encode(prefix + raw).decode() for prefix in (b"", b"x", b"xy")]
    return " ".join([
        f"authorization={authorization}", secret, raw.hex(), raw.hex().upper(),
        quote(secret, safe=""), quote_plus(secret), *b64,
        *(b.replace("+", "-").replace("/", "_").rstrip("=") for b in b64),
        base64.urlsafe_b64encode(f"{USER}:{secret}".encode()).decode(),
    ])


def make_upstream(secret: str) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        mode = request.match_info["mode"]
        authorization = request.headers.get("Authorization", "")
        if mode == "json":
            text = echoed_forms(secret, authorization)
            return web.json_response({"message": f"rejected {text}", "detail": text},
                                     status=400)
        if mode.startswith("padded-"):
            # whitespace collapses in an excerpt: a secret past the cut of the raw body
            # lands inside the excerpt's characters
            pad = int(mode.removeprefix("padded-"))
            return web.Response(text=" " * pad + secret + " tail", status=400)
        return web.Response(text="rejected " + echoed_forms(secret, authorization),
                            status=400)

    app = web.Application()
    app.router.add_get("/echo/{mode}", echo)
    return app


@pytest.fixture
def secret() -> str:
    return new_canary("basicpw")


@pytest.fixture
async def echoer(tmp_path: Path, secret: str) -> AsyncIterator[tuple[Patchwire, Path]]:
    """Patchwire with connection ``acme`` to the echoing upstream, and its home."""
    home = tmp_path / "home"
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "echoer.yaml")])
    async with serve(make_upstream(secret)) as url, Patchwire(
            local_settings(home), connectors=registry) as pw:
        await pw.add_connection("echoer", "acme",
                                {"url": url, "username": USER, "password": secret})
        yield pw, home


@pytest.mark.parametrize("mode", ["text", "json"])
async def test_an_echoed_credential_is_redacted_in_every_encoding_from_the_error(
        echoer: tuple[Patchwire, Path], secret: str, mode: str) -> None:
    pw, _ = echoer
    with pytest.raises(UpstreamResponseError) as info:
        await pw.call("echoer.echo", {"mode": mode})
    error = info.value
    assert "***" in error.body_excerpt
    assert leaks(str(error) + error.body_excerpt + json.dumps(error.to_dict()), secret) == []


async def test_a_secret_across_the_cut_of_the_excerpt_leaves_no_prefix(
        echoer: tuple[Patchwire, Path], secret: str) -> None:
    pw, _ = echoer
    prefix = secret[:8]  # "basicpw-": any start of the secret is a leak
    for pad in range(1100, 1400, 3):
        with pytest.raises(UpstreamResponseError) as info:
            await pw.call("echoer.echo", {"mode": f"padded-{pad}"})
        assert prefix not in info.value.body_excerpt, pad


@pytest.mark.parametrize("limit", [120, 300])
def test_an_excerpt_never_shows_the_start_of_a_secret_it_cuts(limit: int) -> None:
    secret = "s3cr3t-" + "k" * 40
    redact = Redactor([secret])
    for pad in range(limit * 3, limit * 6):
        body = b" " * pad + secret.encode() + b"x" * 60
        assert "s3cr" not in excerpt(body, redact, limit), pad


async def test_the_call_log_and_the_store_hold_no_encoding_of_the_secret(
        echoer: tuple[Patchwire, Path], secret: str) -> None:
    pw, home = echoer
    for mode in ("text", "json", "padded-1190"):
        with pytest.raises(UpstreamResponseError):
            await pw.call("echoer.echo", {"mode": mode})
    records = await pw.recent_calls()
    assert len(records) == 3
    assert leaks(json.dumps([r.to_dict() for r in records], default=str), secret) == []
    await pw.close()
    assert leaks_in_files(home, secret) == {}


async def test_a_model_reads_no_encoding_of_the_secret(
        echoer: tuple[Patchwire, Path], secret: str) -> None:
    pw, _ = echoer
    invoker = ToolInvoker(pw)
    for mode in ("text", "json", "padded-1190"):
        result = await invoker.invoke("echoer_echo", {"mode": mode}, session_id="s")
        assert result.status == "error"
        assert leaks(result.text, secret) == [], mode
    audit = await invoker.tool_calls(session_id="s")
    assert leaks(json.dumps([a.to_dict() for a in audit], default=str), secret) == []


async def test_the_rest_api_shows_no_encoding_of_the_secret(
        tmp_path: Path, secret: str) -> None:
    home = tmp_path / "home"
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "echoer.yaml")])
    async with serve(make_upstream(secret)) as upstream:
        async with Patchwire(local_settings(home), connectors=registry) as setup:
            await setup.add_connection("echoer", "acme", {"url": upstream, "username": USER,
                                                          "password": secret})
        app = create_app(Patchwire(local_settings(home), connectors=registry))
        async with serving(app) as url, aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10)) as http:
            seen: list[str] = []
            for mode in ("text", "json", "padded-1190"):
                async with http.post(f"{url}/api/v1/actions/echoer.echo/call",
                                     json={"input": {"mode": mode}}) as resp:
                    assert resp.status >= 400
                    seen.append(await resp.text())
                async with http.post(f"{url}/api/v1/tools/echoer_echo/call",
                                     json={"arguments": {"mode": mode}}) as resp:
                    seen.append(await resp.text())
            for path in ("/api/v1/calls", "/api/v1/tool-calls"):
                async with http.get(url + path) as resp:
                    assert resp.status == 200
                    seen.append(await resp.text())
    assert "***" in seen[0] and "***" in seen[2]  # the echoes arrived, redacted
    assert [leaks(text, secret) for text in seen] == [[]] * len(seen)


def test_a_redactor_over_many_secrets_redacts_each_in_every_encoding() -> None:
    many = [new_canary(f"k{i}") for i in range(300)]  # beyond one regex: the log redactor
    redact = Redactor(many)
    for secret in (many[0], many[150], many[-1]):
        text = " | ".join(form.decode("utf-8") for form in all_encodings(secret).values())
        assert leaks(redact(text), secret) == []
    assert redact("nothing secret here") == "nothing secret here"


OAUTH = """
name: tokens
base_url: "{url}"
settings: {url: {}, client_id: {}, client_secret: {secret: true}}
auth: {type: oauth2, flow: client_credentials, token_url: "{url}/token"}
"""


async def test_a_token_endpoint_echoing_the_client_credentials_reveals_none_of_them(
        secret: str) -> None:
    async def token(request: web.Request) -> web.Response:
        echoed = request.headers.get("Authorization", "")
        return web.json_response({"error": "invalid_client",
                                  "error_description": f"refused {echoed}"}, status=401)

    app = web.Application()
    app.router.add_post("/token", token)
    spec = load_connector_text(OAUTH, "tokens.yaml")
    http = HttpCore(allow_networks=LOOPBACK)
    try:
        async with serve(app) as url:
            client = OAuth2Client(spec.auth, {"url": url, "client_id": USER,  # type: ignore[arg-type]
                                              "client_secret": secret}, http=http)
            with pytest.raises(OAuthError) as info:
                await client.client_credentials()
    finally:
        await http.close()
    assert "refused Basic ***" in info.value.message
    assert leaks(str(info.value) + json.dumps(info.value.to_dict()), secret) == []
