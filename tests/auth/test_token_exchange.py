"""Two-step token exchange (``type: token_exchange``): credentials POSTed to a login
endpoint, the token answered kept by the token keeper — cached, renewed single-flight
ahead of expiry and after a refusal — and placed by the connector's templates."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.auth import TokenKeeper, Vault, connection_aad
from patchwire.calls import CallPath, CallRequest, ConnectionResolver
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.errors import ConfigError, OAuthError, SpecError
from patchwire.http import HttpCore
from patchwire.store import ConnectionRecord, Store
from tests.support.clocks import FakeClock
from tests.support.docs import fenced_blocks
from tests.support.leaks import new_canary
from tests.support.servers import serve
from tests.support.settings import local_settings
from tests.support.token_servers import ExchangeState

EPOCH = 1_750_000_000.0

CONNECTOR = """
name: sessions
base_url: "{api_url}"
settings:
  api_url: {}
  api_key: {secret: true}
  api_secret: {secret: true}
auth:
  type: token_exchange
  request:
    method: POST
    url: /auth/login
    body: {key: "{api_key}", secret: "{api_secret}"}
  response:
    token: data.session
    expires_in: data.ttl
  headers:
    X-Session: "{token}"
retry: {attempts: 1}
actions:
  me:
    request: {method: GET, path: /api/me}
"""


def connector(**changes: Any) -> ConnectorSpec:
    spec = load_connector_text(CONNECTOR, "sessions.yaml")
    if changes:
        document = spec.model_dump(by_alias=True)
        document["auth"].update(changes)
        spec = ConnectorSpec.model_validate(document)
    return spec


@pytest.fixture
def state() -> ExchangeState:
    return ExchangeState(key="key-" + new_canary(), secret=new_canary("secret"))


@pytest.fixture
async def upstream(state: ExchangeState) -> AsyncIterator[str]:
    async with serve(state.app()) as url:
        yield url


@pytest.fixture
def vault() -> Vault:
    return Vault({"test": base64.urlsafe_b64decode(Vault.generate_key())}, "test")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'pw.db'}")
    yield opened
    await opened.close()


async def add(store: Store, vault: Vault, url: str, state: ExchangeState,
              name: str = "acme") -> None:
    rec = ConnectionRecord.new(name, "sessions", settings={"api_url": url})
    secrets = {"api_key": state.key, "api_secret": state.secret}
    await store.add_connection(dataclasses.replace(
        rec, secrets=vault.encrypt_json(secrets, aad=connection_aad(rec.id))))


def keeper(store: Store, vault: Vault, http: HttpCore, clock: FakeClock,
           spec: ConnectorSpec | None = None) -> TokenKeeper:
    return TokenKeeper(store, vault, ConnectorRegistry([spec or connector()]), http,
                       skew=60.0, clock=clock)


async def test_the_token_is_fetched_once_and_reused_until_it_nears_expiry(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    await add(store, vault, upstream, state)
    clock = FakeClock(EPOCH)
    kept = keeper(store, vault, http, clock)
    first = await kept.tokens("acme")
    assert first.access_token == "session-0" and first.expires_at == EPOCH + state.ttl
    assert state.seen_bodies == [{"key": state.key, "secret": state.secret}]
    clock.advance(state.ttl - 61)  # still outside the 60 s skew
    assert (await kept.tokens("acme")).access_token == "session-0"
    assert state.logins == 1
    clock.advance(2)  # inside the skew: renewed before it lapses
    assert (await kept.tokens("acme")).access_token == "session-1"
    assert state.logins == 2


async def test_fifty_concurrent_callers_needing_a_token_cause_one_login(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    await add(store, vault, upstream, state)
    kept = keeper(store, vault, http, FakeClock(EPOCH))
    state.gate = asyncio.Event()
    callers = [asyncio.ensure_future(kept.access_token("acme")) for _ in range(50)]
    await asyncio.wait_for(state.arrived.wait(), 5)
    state.gate.set()
    async with asyncio.timeout(10):
        tokens = await asyncio.gather(*callers)
    assert set(tokens) == {"session-0"}
    assert state.logins == 1


async def test_two_keepers_sharing_the_store_log_in_once_between_them(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    await add(store, vault, upstream, state)
    clock = FakeClock(EPOCH)
    one, other = keeper(store, vault, http, clock), keeper(store, vault, http, clock)
    assert await one.access_token("acme") == "session-0"
    # the second process finds the token the first stored (encrypted) under the row lock
    assert await other.access_token("acme") == "session-0"
    assert state.logins == 1


async def test_two_processes_needing_a_token_at_once_log_in_once_between_them(
    store_url: str, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    # two Store objects = two engines and pools, as two processes would have
    first, second = await Store.open(store_url), await Store.open(store_url)
    try:
        await add(first, vault, upstream, state)
        clock = FakeClock(EPOCH)
        a, b = keeper(first, vault, http, clock), keeper(second, vault, http, clock)
        state.gate = asyncio.Event()
        in_a = [asyncio.ensure_future(a.access_token("acme")) for _ in range(20)]
        await asyncio.wait_for(state.arrived.wait(), 5)  # a holds the row lock, logging in
        in_b = [asyncio.ensure_future(b.access_token("acme")) for _ in range(20)]
        state.gate.set()
        async with asyncio.timeout(15):
            tokens = await asyncio.gather(*in_a, *in_b)
        assert set(tokens) == {"session-0"} and state.logins == 1
    finally:
        await first.close()
        await second.close()


async def test_the_token_is_kept_encrypted_and_the_credentials_kept(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    await add(store, vault, upstream, state)
    await keeper(store, vault, http, FakeClock(EPOCH)).tokens("acme")
    rec = await store.get_connection("acme")
    assert "session-0" not in rec.secrets and state.secret not in rec.secrets
    secrets = vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id))
    assert secrets["access_token"] == "session-0"
    assert secrets["api_secret"] == state.secret


@pytest.fixture
async def patchwire(tmp_path: Path, upstream: str, state: ExchangeState
                    ) -> AsyncIterator[Patchwire]:
    async with Patchwire(local_settings(tmp_path / "home"),
                         connectors=ConnectorRegistry([connector()])) as pw:
        await pw.add_connection("sessions", "acme", {"api_url": upstream,
                                                     "api_key": state.key,
                                                     "api_secret": state.secret})
        yield pw


async def test_calls_carry_the_token_where_the_connector_places_it(
    patchwire: Patchwire, state: ExchangeState,
) -> None:
    assert await patchwire.call("sessions.me", connection="acme") == {
        "user": "acme", "session_number": "0"}
    await patchwire.call("sessions.me", connection="acme")
    assert state.logins == 1 and state.me == {200: 2}


async def test_a_refused_token_is_renewed_once_for_all_callers_and_the_calls_succeed(
    patchwire: Patchwire, state: ExchangeState,
) -> None:
    await patchwire.call("sessions.me", connection="acme")
    state.valid.clear()  # the upstream ended the session early
    results = await asyncio.gather(*(patchwire.call("sessions.me", connection="acme")
                                     for _ in range(20)))
    assert {r["session_number"] for r in results} == {"1"}
    assert state.logins == 2


async def test_secrets_and_tokens_never_reach_the_call_log(
    patchwire: Patchwire, state: ExchangeState,
) -> None:
    await patchwire.call("sessions.me", connection="acme")
    state.valid.clear()
    await patchwire.call("sessions.me", connection="acme")
    text = repr([c.to_dict() for c in await patchwire.recent_calls(limit=50)])
    for secret in (state.key, state.secret, "session-0", "session-1"):
        assert secret not in text


# -- hostile token endpoints ------------------------------------------------------------------


async def exchange_error(store: Store, vault: Vault, http: HttpCore, upstream: str,
                         state: ExchangeState, spec: ConnectorSpec | None = None
                         ) -> OAuthError:
    await add(store, vault, upstream, state)
    with pytest.raises(OAuthError) as caught:
        await keeper(store, vault, http, FakeClock(EPOCH), spec).tokens("acme")
    return caught.value


async def test_garbage_from_the_login_endpoint_is_a_typed_error(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.Response(text="<html>welcome</html>", content_type="text/html")
    error = await exchange_error(store, vault, http, upstream, state)
    assert error.error == "invalid_response" and "not a JSON object" in error.message


async def test_an_answer_without_the_token_is_a_typed_error(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.json_response({"data": {"session": {"nested": True}}})
    error = await exchange_error(store, vault, http, upstream, state)
    assert error.error == "invalid_response" and "no token" in error.message


async def test_a_huge_answer_is_cut_off_not_read_into_memory(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.Response(body=b"{" + b" " * (3 * 1024 * 1024) + b"}",
                                        content_type="application/json")
    error = await exchange_error(store, vault, http, upstream, state)
    assert error.error == "transport" and "larger than" in error.message


async def test_a_token_with_a_line_break_is_refused_as_it_would_forge_headers(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.json_response(
        {"data": {"session": "abc\r\nX-Admin: true", "ttl": 60}})
    error = await exchange_error(store, vault, http, upstream, state)
    assert error.error == "invalid_response" and "line breaks" in error.message


async def test_a_nonsense_expiry_is_a_typed_error(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.json_response({"data": {"session": "s", "ttl": "soon"}})
    error = await exchange_error(store, vault, http, upstream, state)
    assert error.error == "invalid_response" and "expires_in" in error.message


async def test_a_token_without_expiry_is_used_until_refused(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.json_response({"data": {"session": "forever"}})
    await add(store, vault, upstream, state)
    clock = FakeClock(EPOCH)
    kept = keeper(store, vault, http, clock)
    tokens = await kept.tokens("acme")
    assert tokens.access_token == "forever" and tokens.expires_at is None
    clock.advance(10 * 86400)
    assert (await kept.tokens("acme")).access_token == "forever"
    assert state.logins == 1


async def test_an_expiry_given_as_an_iso_time_is_read(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.answer = lambda: web.json_response(
        {"data": {"session": "s"}, "valid_until": "2025-06-15T16:00:00Z"})
    spec = connector(response={"token": "data.session", "expires_at": "valid_until",
                               "expires_in": None})
    await add(store, vault, upstream, state)
    tokens = await keeper(store, vault, http, FakeClock(EPOCH), spec).tokens("acme")
    assert tokens.expires_at == 1_750_003_200.0


async def test_refused_credentials_echoed_by_the_upstream_are_redacted(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    state.key = "another"  # the connection's key is now wrong; the answer echoes it
    await add(store, vault, upstream, dataclasses.replace(state, key="stale-" + new_canary()))
    with pytest.raises(OAuthError) as caught:
        await keeper(store, vault, http, FakeClock(EPOCH)).tokens("acme")
    error = caught.value
    assert error.status == 401 and "HTTP 401" in error.message
    assert state.secret not in str(error) and "stale-" not in str(error)


async def test_a_setting_moving_the_login_host_is_refused_before_sending(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    await add(store, vault, "http://127.0.0.1:1/steal?", state)
    spec = connector(request={"method": "POST", "url": "https://{api_url}/auth/login",
                              "body": {"key": "{api_key}"}})
    with pytest.raises(OAuthError) as caught:
        await keeper(store, vault, http, FakeClock(EPOCH), spec).tokens("acme")
    assert caught.value.error == "invalid_setting"
    assert state.logins == 0


def test_a_placeholder_naming_no_setting_is_a_load_error_with_its_place() -> None:
    text = CONNECTOR.replace('secret: "{api_secret}"', 'secret: "{api_secert}"')
    with pytest.raises(SpecError) as caught:
        load_connector_text(text, "sessions.yaml")
    assert "api_secert" in str(caught.value) and "sessions.yaml:" in str(caught.value)


def test_a_broken_response_expression_is_a_load_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_connector_text(CONNECTOR.replace("token: data.session", 'token: "data.("'),
                            "sessions.yaml")
    assert "response" in str(caught.value)


def test_every_example_of_the_token_auth_docs_loads() -> None:
    blocks = fenced_blocks("connectors/auth-tokens.md")
    loaded = [load_connector_text(block, f"auth-tokens.md#{i}") for i, block in
              enumerate(blocks)]
    kinds = sorted(getattr(spec.auth, "flow", spec.auth.type) for spec in loaded)
    assert kinds == ["api_key", "device_code", "jwt_bearer", "password", "token_exchange"]
    assert [spec.name for spec in loaded if spec.client_certificate is not None] == ["bank"]


async def test_no_credential_or_token_reaches_the_logs(
    patchwire: Patchwire, state: ExchangeState, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await patchwire.call("sessions.me", connection="acme")
    state.valid.clear()  # refused: renewed once
    await patchwire.call("sessions.me", connection="acme")
    state.valid.clear()
    state.secret = "rotated"  # now the login is refused, and the answer echoes the body
    with pytest.raises(OAuthError):
        await patchwire.call("sessions.me", connection="acme")
    assert caplog.records  # the renewals were logged
    for secret in (state.key, "session-0", "session-1"):
        assert secret not in caplog.text
    assert "secret-" not in caplog.text  # the connection's (now wrong) secret canary


async def test_a_form_login_with_templated_headers_and_a_query_token_work(
    tmp_path: Path, state: ExchangeState,
) -> None:
    seen: dict[str, Any] = {}
    app = web.Application()

    async def login(request: web.Request) -> web.StreamResponse:
        seen["form"] = dict(await request.post())
        seen["client"] = request.headers.get("X-Client")
        return web.json_response({"token": "q-token", "expires_at": 4_102_444_800})

    async def items(request: web.Request) -> web.StreamResponse:
        seen["query"] = dict(request.query)
        return web.json_response([1, 2])

    app.router.add_post("/v1/session", login)
    app.router.add_get("/v1/items", items)
    text = """
name: formy
base_url: "{api_url}/v1"
settings:
  api_url: {}
  client: {}
  user: {}
  password: {secret: true}
auth:
  type: token_exchange
  request:
    url: "{api_url}/v1/session"
    headers: {X-Client: "{client}"}
    body_type: form
    body: {username: "{user}", password: "{password}", remember: true}
  response: {token: token, expires_at: expires_at, expires_in: null}
  headers: {}
  query: {session: "{token}"}
actions:
  items: {request: {method: GET, path: /items, query: {limit: 5}}}
"""
    async with serve(app) as url, Patchwire(
            local_settings(tmp_path / "home"),
            connectors=ConnectorRegistry([load_connector_text(text, "formy.yaml")])) as pw:
        await pw.add_connection("formy", "acme", {"api_url": url, "client": "patchwire",
                                                  "user": "ann", "password": state.secret})
        assert await pw.call("formy.items", connection="acme") == [1, 2]
        records = repr([c.to_dict() for c in await pw.recent_calls(limit=5)])
    assert "q-token" not in records and state.secret not in records  # the URL is redacted
    assert seen["form"] == {"username": "ann", "password": state.secret, "remember": "true"}
    assert seen["client"] == "patchwire"
    assert seen["query"] == {"limit": "5", "session": "q-token"}


async def test_credentials_are_proved_before_any_connection_is_saved(
    store: Store, vault: Vault, http: HttpCore, upstream: str, state: ExchangeState,
) -> None:
    # as the connect page proves an end user's credentials: a resolver over an unsaved
    # record, its tokens from the values alone
    spec = connector()
    registry = ConnectorRegistry([spec])
    record = ConnectionRecord.new("pending", "sessions", settings={"api_url": upstream})
    secrets = {"api_key": state.key, "api_secret": state.secret}
    kept = TokenKeeper(store, vault, registry, http, clock=FakeClock(EPOCH))

    class Unsaved:
        async def get_connection(self, name: str) -> ConnectionRecord:
            return record

        async def list_connections(self, connector: str | None = None,
                                   end_user: str | None = None) -> list[ConnectionRecord]:
            return [record]

    resolver = ConnectionResolver(Unsaved(), registry, lambda _: dict(secrets),
                                  tokens=kept.unsaved(record, secrets))
    path = CallPath(registry, resolver, http, lambda _: None)
    outcome = await path.execute(CallRequest("sessions.me", {}, "pending"))
    assert outcome.result == {"user": "acme", "session_number": "0"}
    assert state.logins == 1 and await store.list_connections() == []
    state.valid.clear()  # refused: renewed once, in memory
    assert (await path.execute(CallRequest("sessions.me", {}, "pending"))).result[
        "session_number"] == "1"
    # without a token source the resolver says so, typed
    bare = CallPath(registry, ConnectionResolver(Unsaved(), registry,
                                                 lambda _: dict(secrets)), http, lambda _: None)
    with pytest.raises(ConfigError) as caught:
        await bare.execute(CallRequest("sessions.me", {}, "pending"))
    assert "obtains a token (token_exchange)" in str(caught.value)
