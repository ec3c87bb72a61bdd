"""OAuth2's password grant (RFC 6749 §4.3) and device authorization grant (RFC 8628).

The password grant runs against oauth2-mock-server (npm), a provider nobody here wrote;
the device grant against a loopback server playing RFC 8628's token endpoint answers
(authorization_pending, slow_down, expired_token, access_denied) with a fake clock and a
fake sleep, so polling is checked to the second without waiting."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from patchwire.auth import (
    DeviceAuthorization,
    TokenKeeper,
    TokenSet,
    Vault,
    connection_aad,
)
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import OAuthError, ReauthRequired, SpecError
from patchwire.http import HttpCore
from patchwire.store import ConnectionRecord, Store
from tests.support.cli import Cli
from tests.support.clocks import FakeClock
from tests.support.leaks import new_canary
from tests.support.oauth_mock import oauth2_mock_server
from tests.support.servers import serve
from tests.support.token_servers import DEVICE_GRANT, DeviceState, oauth2_client

EPOCH = 1_750_000_000.0

PASSWORD = """
name: legacy
base_url: "{issuer}"
settings:
  issuer: {}
  client_id: {}
  client_secret: {secret: true, required: false}
  username: {}
  password: {secret: true}
auth:
  type: oauth2
  flow: password
  token_url: "{issuer}/token"
  scopes: [openid, orders]
actions:
  me: {request: {method: GET, path: /userinfo}}
"""

DEVICE = """
name: tv
base_url: "{server}"
settings:
  server: {}
  client_id: {}
auth:
  type: oauth2
  flow: device_code
  device_authorization_url: "{server}/device"
  token_url: "{server}/token"
  scopes: [profile]
actions:
  me: {request: {method: GET, path: /me}}
"""


# -- password ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_password_grant_gets_tokens_for_the_user_from_oauth2_mock_server(
    http: HttpCore,
) -> None:
    async with oauth2_mock_server() as url:
        grant = oauth2_client(PASSWORD, {"issuer": url, "client_id": "pw-client",
                                        "client_secret": "pw-secret", "username": "alice",
                                        "password": "correct horse"}, http, FakeClock(EPOCH))
        tokens = await grant.renew(None)
        # the mock issues JWTs naming whom they are for: the password grant's username
        claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
        assert claims["sub"] == "alice" and claims["scope"] == "openid orders"
        assert tokens.refresh_token and tokens.expires_at is not None
        # renewing uses the refresh token first (the mock answers it with "johndoe")
        renewed = await grant.renew(tokens)
        renewed_claims = jwt.decode(renewed.access_token, options={"verify_signature": False})
        assert renewed_claims["sub"] == "johndoe"


@dataclasses.dataclass
class PasswordServer:
    password: str
    forms: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()

        async def token(request: web.Request) -> web.StreamResponse:
            form = {k: str(v) for k, v in (await request.post()).items()}
            self.forms.append(form)
            if form.get("grant_type") == "refresh_token":
                return web.json_response({"error": "invalid_grant"}, status=400)
            if form.get("password") != self.password:
                # a careless server repeating what it was sent
                return web.json_response({"error": "invalid_grant", "error_description":
                                          f"wrong password {form.get('password')}"},
                                         status=400)
            return web.json_response({"access_token": f"pw-at-{len(self.forms)}",
                                      "expires_in": 600, "refresh_token": "pw-rt"})

        app.router.add_post("/token", token)
        return app


async def test_a_wrong_password_is_a_typed_error_that_never_shows_it(http: HttpCore) -> None:
    wrong = new_canary("password")
    server = PasswordServer(password="right")
    async with serve(server.app()) as url:
        grant = oauth2_client(PASSWORD, {"issuer": url, "client_id": "c", "username": "bob",
                                        "password": wrong}, http, FakeClock(EPOCH))
        with pytest.raises(OAuthError) as caught:
            await grant.renew(None)
    assert caught.value.error == "invalid_grant" and not isinstance(caught.value,
                                                                    ReauthRequired)
    assert wrong not in str(caught.value) and "***" in str(caught.value)
    assert server.forms[0] == {"grant_type": "password", "username": "bob",
                               "password": wrong, "scope": "openid orders", "client_id": "c"}


async def test_a_refused_refresh_falls_back_to_the_password(http: HttpCore) -> None:
    server = PasswordServer(password="right")
    async with serve(server.app()) as url:
        grant = oauth2_client(PASSWORD, {"issuer": url, "client_id": "c", "username": "bob",
                                        "password": "right"}, http, FakeClock(EPOCH))
        tokens = await grant.renew(TokenSet("old", "stale-rt", EPOCH - 1))
    assert [f["grant_type"] for f in server.forms] == ["refresh_token", "password"]
    assert tokens.access_token == "pw-at-2"


def test_the_password_flow_needs_username_and_password_settings() -> None:
    text = PASSWORD.replace("  username: {}\n", "")
    with pytest.raises(SpecError) as caught:
        load_connector_text(text, "c.yaml")
    assert "{username}" in str(caught.value)


# -- device code -----------------------------------------------------------------------------


@pytest.fixture
def device_state() -> DeviceState:
    return DeviceState()


@pytest.fixture
async def device_server(device_state: DeviceState) -> AsyncIterator[str]:
    async with serve(device_state.app()) as url:
        yield url


class FakeSleep:
    """Records each wait and moves the fake clock by it instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


async def device_flow(url: str, http: HttpCore, clock: FakeClock, sleep: FakeSleep,
                      **kwargs: Any) -> tuple[DeviceAuthorization, TokenSet]:
    grant = oauth2_client(DEVICE, {"server": url, "client_id": "tv-app"}, http, clock)
    device = await grant.device_authorization()
    return device, await grant.poll_device_token(device, sleep=sleep, **kwargs)


async def test_polling_waits_the_interval_and_five_seconds_more_after_each_slow_down(
    http: HttpCore, device_server: str, device_state: DeviceState,
) -> None:
    device_state.script = ["authorization_pending", "slow_down", "authorization_pending",
                           "slow_down"]
    clock = FakeClock(EPOCH)
    sleep = FakeSleep(clock)
    device, tokens = await device_flow(device_server, http, clock, sleep)
    assert (device.user_code, device.verification_uri) == ("WDJB-MJHT",
                                                           "https://example.com/device")
    assert sleep.waits == [5, 5, 10, 10, 15]  # RFC 8628 §3.5
    assert tokens.access_token == "device-at-1" and tokens.refresh_token == "device-rt-1"
    assert device_state.device_requests == [{"client_id": "tv-app", "scope": "profile"}]
    assert all(f["grant_type"] == DEVICE_GRANT and f["client_id"] == "tv-app"
               for f in device_state.token_forms)


async def test_an_expired_device_code_ends_the_polling_with_a_typed_error(
    http: HttpCore, device_server: str, device_state: DeviceState,
) -> None:
    device_state.script = ["authorization_pending", "expired_token"]
    clock = FakeClock(EPOCH)
    with pytest.raises(OAuthError) as caught:
        await device_flow(device_server, http, clock, FakeSleep(clock))
    assert caught.value.error == "expired_token" and device_state.polls == 2
    assert "dev-code-secret" not in str(caught.value)


async def test_a_denied_request_ends_the_polling(
    http: HttpCore, device_server: str, device_state: DeviceState,
) -> None:
    device_state.script = ["access_denied"]
    clock = FakeClock(EPOCH)
    with pytest.raises(OAuthError) as caught:
        await device_flow(device_server, http, clock, FakeSleep(clock))
    assert caught.value.error == "access_denied"


async def test_polling_stops_when_the_code_expires_even_if_the_server_never_says_so(
    http: HttpCore, device_server: str, device_state: DeviceState,
) -> None:
    device_state.script = ["authorization_pending"] * 10_000
    device_state.expires_in = 60
    clock = FakeClock(EPOCH)
    sleep = FakeSleep(clock)
    with pytest.raises(OAuthError) as caught:
        await device_flow(device_server, http, clock, sleep)
    assert caught.value.error == "expired_token"
    assert device_state.polls == 12 and sum(sleep.waits) == 60


@pytest.mark.parametrize("answer", [
    {"user_code": "\x1b]8;;https://evil.example\x07CODE"},  # a terminal escape sequence
    {"user_code": "<script>alert(1)</script>"},
    {"verification_uri": "javascript:alert(1)"},
    {"verification_uri": "https://example.com/\x1b[2J"},
    {"interval": "never"},
    {"expires_in": 10**12},
    {"device_code": None},
])
async def test_a_hostile_device_authorization_answer_is_refused_before_anyone_sees_it(
    http: HttpCore, device_server: str, device_state: DeviceState, answer: dict[str, Any],
) -> None:
    device_state.device_answer = {
        "device_code": "d", "user_code": "ABCD-EFGH", "verification_uri":
        "https://example.com/device", "expires_in": 600, **answer}
    grant = oauth2_client(DEVICE, {"server": device_server, "client_id": "tv-app"}, http,
                         FakeClock(EPOCH))
    with pytest.raises(OAuthError) as caught:
        await grant.device_authorization()
    assert caught.value.error == "invalid_response"
    assert "\x1b" not in str(caught.value) and "<script>" not in str(caught.value)


async def test_the_keeper_stores_device_tokens_and_renews_them_with_the_refresh_token(
    http: HttpCore, device_server: str, device_state: DeviceState, tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'pw.db'}")
    try:
        vault = Vault({"k": base64.urlsafe_b64decode(Vault.generate_key())}, "k")
        spec = load_connector_text(DEVICE, "tv.yaml")
        clock = FakeClock(EPOCH)
        kept = TokenKeeper(store, vault, ConnectorRegistry([spec]), http, clock=clock)
        rec = ConnectionRecord.new("living-room", "tv", settings={"server": device_server,
                                                                  "client_id": "tv-app"})
        await store.add_connection(rec)
        with pytest.raises(ReauthRequired):  # no tokens yet: a person must approve first
            await kept.tokens("living-room")
        shown: list[DeviceAuthorization] = []
        await kept.authorize_device("living-room", on_code=shown.append,
                                    sleep=FakeSleep(clock))
        assert [d.user_code for d in shown] == ["WDJB-MJHT"]
        assert (await kept.tokens("living-room")).access_token == "device-at-1"
        clock.advance(3600)
        assert (await kept.tokens("living-room")).access_token == "device-at-2"
        stored = await store.get_connection("living-room")
        assert "device-rt-2" not in stored.secrets
        assert vault.decrypt_json(stored.secrets, aad=connection_aad(rec.id))[
            "refresh_token"] == "device-rt-2"
    finally:
        await store.close()


@pytest.mark.slow
async def test_connection_add_prints_the_code_polls_and_stores_the_tokens(
    tmp_path: Path, device_server: str, device_state: DeviceState,
) -> None:
    device_state.interval = 1  # the command really waits between polls
    device_state.script = ["authorization_pending"]
    cli = Cli(tmp_path)
    (cli.connectors / "tv.yaml").write_text(DEVICE)
    added = await cli("connection", "add", "tv", "--name", "tv1", "--set",
                      f"server={device_server}", "--set", "client_id=tv-app")
    assert added.code == 0, added
    assert "https://example.com/device" in added.out and "code: WDJB-MJHT" in added.out
    assert "authorised tv1" in added.flat_out and device_state.polls == 2
    called = await cli("call", "tv.me", "--connection", "tv1")
    assert called.code == 0 and "living room" in called.out, called
    assert "device-at-1" not in cli.transcript() and "device-rt-1" not in cli.transcript()


@pytest.mark.slow
async def test_connection_add_keeps_nothing_when_nobody_approves(
    tmp_path: Path, device_server: str, device_state: DeviceState,
) -> None:
    device_state.interval = 1
    device_state.script = ["access_denied"]
    cli = Cli(tmp_path)
    (cli.connectors / "tv.yaml").write_text(DEVICE)
    added = await cli("connection", "add", "tv", "--name", "tv1", "--set",
                      f"server={device_server}", "--set", "client_id=tv-app")
    assert added.code == 1 and "not saved" in added.flat_err and "access_denied" in \
        added.flat_err
    listed = await cli("connection", "list", "--json")
    assert listed.json() == []



@pytest.mark.parametrize(("answer", "error"), [
    (lambda: web.Response(text="<html>login</html>", content_type="text/html"),
     "invalid_response"),
    (lambda: web.Response(body=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                          content_type="application/json"), "transport"),
    (lambda: web.json_response({"access_token": "a", "expires_in": "never"}),
     "invalid_response"),
    (lambda: web.json_response({"token": "not where RFC 6749 puts it"}), "invalid_response"),
])
async def test_a_hostile_token_endpoint_answer_is_a_typed_error(
    http: HttpCore, answer: Any, error: str,
) -> None:
    app = web.Application()

    async def token(request: web.Request) -> web.StreamResponse:
        await request.post()
        response: web.StreamResponse = answer()
        return response

    app.router.add_post("/token", token)
    password = new_canary("password")
    async with serve(app) as url:
        grant = oauth2_client(PASSWORD, {"issuer": url, "client_id": "c", "username": "bob",
                                        "password": password}, http, FakeClock(EPOCH))
        with pytest.raises(OAuthError) as caught:
            await grant.renew(None)
    assert caught.value.error == error and password not in str(caught.value)


async def test_a_token_without_expiry_from_the_password_grant_is_kept_until_refused(
    http: HttpCore,
) -> None:
    app = web.Application()

    async def token(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": "forever"})

    app.router.add_post("/token", token)
    async with serve(app) as url:
        tokens = await oauth2_client(PASSWORD, {"issuer": url, "client_id": "c",
                                               "username": "bob", "password": "p"},
                                    http, FakeClock(EPOCH)).renew(None)
    assert tokens.access_token == "forever" and tokens.expires_at is None


@pytest.mark.slow
async def test_connection_connect_authorises_a_device_code_connection_again(
    tmp_path: Path, device_server: str, device_state: DeviceState,
) -> None:
    device_state.interval = 1
    cli = Cli(tmp_path)
    (cli.connectors / "tv.yaml").write_text(DEVICE)
    connected = await cli("connection", "connect", "tv", "--name", "tv1", "--set",
                          f"server={device_server}", "--set", "client_id=tv-app")
    assert connected.code == 0, connected
    assert "code: WDJB-MJHT" in connected.out and "authorised tv1" in connected.flat_out
    device_state.script = ["expired_token"]
    again = await cli("connection", "connect", "tv", "--name", "tv1")
    assert again.code == 1 and "not authorised" in again.flat_err
    listed = await cli("connection", "list", "--json")
    assert [c["name"] for c in listed.json()] == ["tv1"]  # kept: it existed before
