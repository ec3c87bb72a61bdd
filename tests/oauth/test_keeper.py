"""Keeping tokens fresh: proactive refresh, forced refresh, single-flight, needs_reauth."""

from __future__ import annotations

import asyncio

import pytest

from patchwire.auth import Vault, connection_aad
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import ReauthRequired
from patchwire.http import HttpCore
from patchwire.sandbox import Sandbox
from patchwire.store import Store
from tests.support.clocks import FakeClock
from tests.support.oauth import (
    CLIENT_SECRET,
    add_connection,
    granted,
    keeper,
)


async def wait_for_refresh_request(sandbox: Sandbox) -> None:
    """Until the server holds a refresh request at its gate (bounded wait)."""
    await asyncio.wait_for(sandbox.state.oauth.refresh_arrived.wait(), 5)


async def test_a_token_far_from_expiry_is_used_without_a_token_request(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    tokens = await granted(sandbox, http, clock)
    await add_connection(sqlite_store, vault, sandbox, tokens=tokens)
    before = sum(sandbox.state.oauth.stats.token_requests.values())
    assert await keeper(sqlite_store, vault, registry, http, clock).access_token("acme") == \
        tokens.access_token
    assert sum(sandbox.state.oauth.stats.token_requests.values()) == before


async def test_a_token_expiring_within_the_skew_is_refreshed_and_stored_encrypted(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    tokens = await granted(sandbox, http, clock)
    rec = await add_connection(sqlite_store, vault, sandbox, tokens=tokens)
    clock.advance(sandbox.state.oauth.access_token_ttl - 30)  # inside the 60 s skew
    fresh = await keeper(sqlite_store, vault, registry, http, clock).tokens("acme")
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token == tokens.refresh_token
    stored = await sqlite_store.get_connection("acme")
    assert fresh.access_token not in stored.secrets and CLIENT_SECRET not in stored.secrets
    secrets = vault.decrypt_json(stored.secrets, aad=connection_aad(rec.id))
    assert secrets["access_token"] == fresh.access_token
    assert secrets["client_secret"] == CLIENT_SECRET
    assert secrets["oauth2"]["expires_at"] == fresh.expires_at


async def test_a_hundred_concurrent_callers_with_an_expired_token_cause_one_refresh(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    tokens = await granted(sandbox, http, clock)
    await add_connection(sqlite_store, vault, sandbox, tokens=tokens)
    clock.advance(sandbox.state.oauth.access_token_ttl + 1)
    sandbox.state.oauth.rotate_refresh_tokens = True  # a second refresh would revoke all
    gate = sandbox.state.oauth.refresh_gate = asyncio.Event()
    kept = keeper(sqlite_store, vault, registry, http, clock)
    callers = [asyncio.ensure_future(kept.access_token("acme")) for _ in range(100)]
    await wait_for_refresh_request(sandbox)
    gate.set()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*callers)
    assert len(set(results)) == 1 and results[0] != tokens.access_token
    assert sandbox.state.oauth.stats.refreshes == 1
    assert sandbox.state.oauth.stats.token_requests["refresh_token"] == 1
    assert sandbox.state.oauth.stats.refresh_reuse == 0


async def test_two_processes_sharing_the_store_refresh_once_between_them(
    store_url: str, sandbox: Sandbox, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    # two Store objects = two engines and pools, as two processes would have
    first, second = await Store.open(store_url), await Store.open(store_url)
    try:
        tokens = await granted(sandbox, http, clock)
        await add_connection(first, vault, sandbox, tokens=tokens)
        clock.advance(sandbox.state.oauth.access_token_ttl + 1)
        sandbox.state.oauth.rotate_refresh_tokens = True
        gate = sandbox.state.oauth.refresh_gate = asyncio.Event()
        a = keeper(first, vault, registry, http, clock)
        b = keeper(second, vault, registry, http, clock)
        in_a = [asyncio.ensure_future(a.access_token("acme")) for _ in range(50)]
        await wait_for_refresh_request(sandbox)
        in_b = [asyncio.ensure_future(b.access_token("acme")) for _ in range(50)]
        gate.set()
        async with asyncio.timeout(15):
            results = await asyncio.gather(*in_a, *in_b)
        assert len(set(results)) == 1
        assert sandbox.state.oauth.stats.token_requests["refresh_token"] == 1
        assert sandbox.state.oauth.stats.refresh_reuse == 0
    finally:
        await first.close()
        await second.close()


async def test_a_token_rejected_by_the_upstream_is_refreshed_once_across_keepers(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    tokens = await granted(sandbox, http, clock)
    await add_connection(sqlite_store, vault, sandbox, tokens=tokens)
    a = keeper(sqlite_store, vault, registry, http, clock)
    b = keeper(sqlite_store, vault, registry, http, clock)
    first = await a.refresh("acme", rejected=tokens.access_token)
    second = await b.refresh("acme", rejected=tokens.access_token)
    assert first.access_token == second.access_token != tokens.access_token
    assert sandbox.state.oauth.stats.refreshes == 1


async def test_a_refused_refresh_marks_the_connection_needs_reauth(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:
    tokens = await granted(sandbox, http, clock)
    await add_connection(sqlite_store, vault, sandbox, tokens=tokens)
    sandbox.state.oauth.fail_refresh = True
    clock.advance(sandbox.state.oauth.access_token_ttl + 1)
    kept = keeper(sqlite_store, vault, registry, http, clock)
    with pytest.raises(ReauthRequired) as err:
        await kept.access_token("acme")
    assert err.value.error == "invalid_grant"
    assert await kept.needs_reauth("acme")
    # later callers learn it from the store without bothering the token endpoint again
    requests = sandbox.state.oauth.stats.token_requests["refresh_token"]
    with pytest.raises(ReauthRequired) as again:
        await keeper(sqlite_store, vault, registry, http, clock).access_token("acme")
    assert sandbox.state.oauth.stats.token_requests["refresh_token"] == requests
    assert "connection connect" in str(again.value)
    everything = f"{err.value} {again.value} {caplog.text}"
    assert "needs to be authorised again" in caplog.text
    for secret in (tokens.access_token, tokens.refresh_token or "?", CLIENT_SECRET):
        assert secret not in everything


async def test_storing_new_tokens_clears_needs_reauth(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    tokens = await granted(sandbox, http, clock)
    await add_connection(sqlite_store, vault, sandbox, tokens=tokens)
    sandbox.state.oauth.fail_refresh = True
    kept = keeper(sqlite_store, vault, registry, http, clock)
    with pytest.raises(ReauthRequired):
        await kept.refresh("acme")
    sandbox.state.oauth.fail_refresh = False
    await kept.store_tokens("acme", await granted(sandbox, http, clock))
    assert not await kept.needs_reauth("acme")
    assert await kept.refresh("acme")


async def test_client_credentials_connections_get_their_first_token_on_demand(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    await add_connection(sqlite_store, vault, sandbox, name="bot", connector="robot")
    kept = keeper(sqlite_store, vault, registry, http, clock)
    results = await asyncio.gather(*(kept.access_token("bot") for _ in range(20)))
    assert len(set(results)) == 1
    assert sandbox.state.oauth.stats.token_requests["client_credentials"] == 1
