"""The JWT bearer grant (RFC 7523, ``flow: jwt_bearer``): the assertion is made from the
connector's templates and the connection's key, and checked by a loopback token endpoint
with PyJWT's ``decode`` and the public key — signature, audience and the claims RFC 7523
§3 requires — including Google's service-account form (JSON key, ``scope`` claim)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.errors import OAuthError, SpecError
from patchwire.http import HttpCore
from tests.support.cli import Cli
from tests.support.clocks import FakeClock
from tests.support.servers import serve
from tests.support.settings import local_settings
from tests.support.token_servers import (
    JWT_BEARER,
    REQUIRED_CLAIMS,
    JwtTokenState,
    ec_key,
    jwt_token_server,
    oauth2_client,
    rsa_key,
)

EPOCH = 1_750_000_000.0
SCOPES = ["https://www.googleapis.com/auth/drive.readonly",
          "https://www.googleapis.com/auth/calendar"]

GOOGLE = """
name: gdrive
base_url: "{token_host}"
settings:
  token_host: {}
  service_account: {secret: true, description: "the service account's JSON key"}
auth:
  type: oauth2
  flow: jwt_bearer
  token_url: "{token_host}/token"
  scopes: [https://www.googleapis.com/auth/drive.readonly, https://www.googleapis.com/auth/calendar]
  assertion:
    service_account: "{service_account}"
    scope_in: claim
actions:
  me: {request: {method: GET, path: /me}}
"""

PLAIN = """
name: partner
base_url: "{token_host}"
settings:
  token_host: {}
  issuer: {}
  private_key: {secret: true}
auth:
  type: oauth2
  flow: jwt_bearer
  token_url: "{token_host}/token"
  scopes: [read]
  assertion:
    issuer: "{issuer}"
    subject: "user-42"
    private_key: "{private_key}"
    key_id: "key-2025"
    algorithm: ES256
    lifetime: 300
    claims: {tenant: "{issuer}"}
actions:
  me: {request: {method: GET, path: /me}}
"""


def service_account(private_key: str) -> str:
    """A key file as Google's console hands it out (fields beyond these are ignored)."""
    return json.dumps({
        "type": "service_account", "project_id": "patchwire-test",
        "private_key_id": "4f1e2d3c", "private_key": private_key,
        "client_email": "robot@patchwire-test.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token"})


async def test_a_google_service_account_key_makes_an_assertion_the_endpoint_verifies(
    http: HttpCore,
) -> None:
    pem, public = rsa_key()
    clock = FakeClock(EPOCH)
    async with jwt_token_server(public, ["RS256"], clock) as (url, state):
        tokens = await oauth2_client(GOOGLE, {"token_host": url, "service_account":
                                       service_account(pem)}, http, clock).renew(None)
    assert tokens.access_token == "at-1" and tokens.expires_at == EPOCH + 3600
    claims, header = state.claims[0], state.headers[0]
    assert all(name in claims for name in REQUIRED_CLAIMS)
    assert claims["iss"] == claims["sub"] == "robot@patchwire-test.iam.gserviceaccount.com"
    assert claims["aud"] == f"{url}/token"
    assert claims["iat"] == int(EPOCH) and claims["exp"] == int(EPOCH) + 3600
    assert claims["scope"] == " ".join(SCOPES)  # Google: scopes in the claim set
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "4f1e2d3c"}
    form = state.forms[0]
    assert form["grant_type"] == JWT_BEARER and "scope" not in form
    assert "client_id" not in form  # the assertion identifies the client (RFC 7523 §3.1)


async def test_declared_claims_an_ec_key_and_form_scopes_follow_the_connector(
    http: HttpCore,
) -> None:
    pem, public = ec_key()
    clock = FakeClock(EPOCH)
    async with jwt_token_server(public, ["ES256"], clock) as (url, state):
        await oauth2_client(PLAIN, {"token_host": url, "issuer": "partner-7", "private_key": pem},
                     http, clock).renew(None)
    claims = state.claims[0]
    assert (claims["iss"], claims["sub"], claims["tenant"]) == ("partner-7", "user-42",
                                                                "partner-7")
    assert claims["exp"] - claims["iat"] == 300
    assert state.headers[0]["kid"] == "key-2025" and state.headers[0]["alg"] == "ES256"
    assert state.forms[0]["scope"] == "read"


async def test_each_token_request_signs_a_fresh_assertion(http: HttpCore) -> None:
    pem, public = ec_key()
    clock = FakeClock(EPOCH)
    async with jwt_token_server(public, ["ES256"], clock) as (url, state):
        grant = oauth2_client(PLAIN, {"token_host": url, "issuer": "p", "private_key": pem}, http,
                       clock)
        await grant.renew(None)
        clock.advance(3000)
        await grant.renew(None)
    first, second = state.claims
    assert first["jti"] != second["jti"]  # never replayable (RFC 7523 §3, item 7)
    assert second["iat"] == first["iat"] + 3000


async def test_an_assertion_signed_by_another_key_is_refused_by_the_endpoint(
    http: HttpCore,
) -> None:
    pem, _ = rsa_key()
    _, other_public = rsa_key()
    async with jwt_token_server(other_public, ["RS256"], FakeClock(EPOCH)) as (url, _state):
        with pytest.raises(OAuthError) as caught:
            await oauth2_client(GOOGLE, {"token_host": url, "service_account": service_account(pem)},
                         http, FakeClock(EPOCH)).renew(None)
    assert caught.value.error == "invalid_grant" and caught.value.status == 400
    assert "PRIVATE KEY" not in str(caught.value)


async def test_an_unusable_key_is_a_typed_error_that_never_shows_the_key(
    http: HttpCore,
) -> None:
    garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----"
    grant = oauth2_client(PLAIN, {"token_host": "http://127.0.0.1:1", "issuer": "p",
                           "private_key": garbage}, http, FakeClock(EPOCH))
    with pytest.raises(OAuthError) as caught:
        await grant.renew(None)
    assert caught.value.error == "invalid_setting" and "ES256" in caught.value.message
    assert "c2VjcmV0" not in str(caught.value)


async def test_a_service_account_value_that_is_not_json_is_a_typed_error(
    http: HttpCore,
) -> None:
    grant = oauth2_client(GOOGLE, {"token_host": "http://127.0.0.1:1",
                            "service_account": "not json at all: s3cr3t"}, http, FakeClock())
    with pytest.raises(OAuthError) as caught:
        await grant.renew(None)
    assert "not JSON" in caught.value.message and "s3cr3t" not in str(caught.value)


def test_a_jwt_bearer_flow_without_an_assertion_is_a_load_error() -> None:
    text = GOOGLE.split("  assertion:")[0] + "actions: {}\n"
    with pytest.raises(SpecError) as caught:
        load_connector_text(text, "c.yaml")
    assert "assertion is required" in str(caught.value)


def test_an_assertion_placeholder_naming_no_setting_is_a_load_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_connector_text(PLAIN.replace('"{issuer}"\n    subject', '"{isuser}"\n    subject'),
                            "c.yaml")
    assert "isuser" in str(caught.value)


async def test_calls_through_a_service_account_carry_its_token_and_no_secret_is_recorded(
    tmp_path: Path,
) -> None:
    pem, public = rsa_key()
    state = JwtTokenState(public, ["RS256"])
    app = state.app()
    seen: list[str] = []

    async def me(request: Any) -> Any:
        from aiohttp import web

        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"ok": True})

    app.router.add_get("/me", me)
    async with serve(app) as url:
        state.audience = f"{url}/token"
        spec: ConnectorSpec = load_connector_text(GOOGLE, "gdrive.yaml")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            key = service_account(pem)
            await pw.add_connection("gdrive", "acme", {"token_host": url,
                                                       "service_account": key})
            assert await pw.call("gdrive.me", connection="acme") == {"ok": True}
            assert await pw.call("gdrive.me", connection="acme") == {"ok": True}
            records = repr([c.to_dict() for c in await pw.recent_calls(limit=10)])
    assert seen == ["Bearer at-1", "Bearer at-1"] and state.issued == 1
    for secret in ("at-1", "PRIVATE KEY", pem.splitlines()[1]):
        assert secret not in records


@pytest.mark.slow
async def test_a_service_account_key_file_piped_to_connection_add_is_kept_whole(
    tmp_path: Path,
) -> None:
    pem, public = rsa_key()
    state = JwtTokenState(public, ["RS256"])
    app = state.app()

    async def me(request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"auth": request.headers.get("Authorization")})

    app.router.add_get("/me", me)
    async with serve(app) as url:
        state.audience = f"{url}/token"
        cli = Cli(tmp_path)
        (cli.connectors / "gdrive.yaml").write_text(GOOGLE)
        key_file = json.dumps(json.loads(service_account(pem)), indent=2)  # many lines
        added = await cli("connection", "add", "gdrive", "--name", "ops", "--set",
                          f"token_host={url}", "--set-stdin", "service_account",
                          stdin=key_file + "\n")
        assert added.code == 0, added
        called = await cli("call", "gdrive.me", "--connection", "ops")
    assert called.code == 0 and "Bearer at-1" in called.out, called
    assert pem.splitlines()[1] not in cli.transcript()


def test_a_private_key_in_a_setting_not_declared_secret_is_a_load_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_connector_text(PLAIN.replace("private_key: {secret: true}", "private_key: {}"),
                            "c.yaml")
    assert "{private_key} is a credential" in str(caught.value)
    assert "auth.assertion.private_key" in str(caught.value)
