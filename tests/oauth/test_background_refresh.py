"""Background refresh: idle connections' tokens are renewed at least every 24 h, and a
failed refresh is recorded in the call log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.auth import TokenSet, Vault, connection_aad
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import OAuthError, ReauthRequired, StoreError
from patchwire.http import HttpCore
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store import ConnectionRecord, Store
from tests.support.clocks import FakeClock
from tests.support.oauth import CLIENT_ID, add_connection, granted, keeper, oauth_connector
from tests.support.settings import local_settings

DAY = 24 * 3600.0


@pytest.fixture
def long_lived(sandbox: Sandbox) -> Sandbox:
    """Access tokens valid for a week, so only the 24 h rule makes a refresh due."""
    sandbox.state.oauth.access_token_ttl = 7 * DAY
    return sandbox


async def stored_connection(
    store: Store, vault: Vault, registry: ConnectorRegistry, http: HttpCore,
    sandbox: Sandbox, clock: FakeClock,
) -> TokenSet:
    tokens = await granted(sandbox, http, clock)
    await add_connection(store, vault, sandbox)
    await keeper(store, vault, registry, http, clock).store_tokens("acme", tokens)
    return tokens


async def test_an_idle_connection_is_renewed_once_its_tokens_are_a_day_old(
    long_lived: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    sandbox = long_lived
    tokens = await stored_connection(sqlite_store, vault, registry, http, sandbox, clock)
    kept = keeper(sqlite_store, vault, registry, http, clock)
    clock.advance(DAY - 60)
    assert await kept.refresh_due() == []
    assert sandbox.state.oauth.stats.refreshes == 0
    clock.advance(60)
    assert await kept.refresh_due() == ["acme"]
    assert sandbox.state.oauth.stats.refreshes == 1
    rec = await sqlite_store.get_connection("acme")
    secrets = vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id))
    assert secrets["oauth2"]["renewed_at"] == clock.now
    assert secrets["access_token"] != tokens.access_token
    assert await kept.refresh_due() == []  # just renewed: not due again
    assert sandbox.state.oauth.stats.refreshes == 1


async def test_a_token_expiring_within_the_skew_is_due_whatever_its_age(
    sandbox: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    await stored_connection(sqlite_store, vault, registry, http, sandbox, clock)
    clock.advance(sandbox.state.oauth.access_token_ttl - 30)
    assert await keeper(sqlite_store, vault, registry, http, clock).refresh_due() == ["acme"]
    assert sandbox.state.oauth.stats.refreshes == 1


async def test_connections_without_tokens_or_needing_reauth_are_skipped(
    long_lived: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    await add_connection(sqlite_store, vault, long_lived, name="fresh")  # never authorised
    await stored_connection(sqlite_store, vault, registry, http, long_lived, clock)
    long_lived.state.oauth.fail_refresh = True
    clock.advance(DAY)
    kept = keeper(sqlite_store, vault, registry, http, clock)
    assert await kept.refresh_due() == []  # acme's refresh is refused
    assert await kept.needs_reauth("acme")
    long_lived.state.oauth.fail_refresh = False
    before = sum(long_lived.state.oauth.stats.token_requests.values())
    assert await kept.refresh_due() == []
    assert sum(long_lived.state.oauth.stats.token_requests.values()) == before


def listing_together(store: Store, barrier: asyncio.Barrier) -> None:
    """Each ``list_connections`` of ``store`` returns only once ``barrier`` is full: the
    callers all read the connections before any of them goes on to refresh."""
    listed = store.list_connections

    async def list_then_wait() -> list[ConnectionRecord]:
        records = await listed()
        await barrier.wait()
        return records

    store.list_connections = list_then_wait  # type: ignore[method-assign]


async def test_two_processes_running_the_background_refresh_together_refresh_once(
    tmp_path: Path, long_lived: Sandbox, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    first, second = await Store.open(url), await Store.open(url)
    try:
        await stored_connection(first, vault, registry, http, long_lived, clock)
        long_lived.state.oauth.rotate_refresh_tokens = True
        clock.advance(DAY)
        a = keeper(first, vault, registry, http, clock)
        b = keeper(second, vault, registry, http, clock)
        # All three find acme due before any refresh starts. Without the barrier a caller
        # whose listing is slow reads the tokens another one has already renewed, finds
        # nothing due and rightly answers [] (the next test): that was a flaky test.
        together = asyncio.Barrier(3)
        listing_together(first, together)
        listing_together(second, together)
        async with asyncio.timeout(15):
            results = await asyncio.gather(a.refresh_due(), b.refresh_due(), a.refresh_due())
        assert list(results) == [["acme"]] * 3  # each saw the tokens change...
        assert long_lived.state.oauth.stats.refreshes == 1  # ...from one refresh
        assert long_lived.state.oauth.stats.refresh_reuse == 0
    finally:
        await first.close()
        await second.close()


async def test_a_background_refresh_after_another_process_renewed_finds_nothing_due(
    tmp_path: Path, long_lived: Sandbox, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    first, second = await Store.open(url), await Store.open(url)
    try:
        await stored_connection(first, vault, registry, http, long_lived, clock)
        long_lived.state.oauth.rotate_refresh_tokens = True
        clock.advance(DAY)
        assert await keeper(first, vault, registry, http, clock).refresh_due() == ["acme"]
        assert await keeper(second, vault, registry, http, clock).refresh_due() == []
        assert long_lived.state.oauth.stats.refreshes == 1
    finally:
        await first.close()
        await second.close()


async def test_a_refused_refresh_is_reported_once_to_the_failure_hook(
    long_lived: Sandbox, sqlite_store: Store, vault: Vault, registry: ConnectorRegistry,
    http: HttpCore, clock: FakeClock,
) -> None:
    await stored_connection(sqlite_store, vault, registry, http, long_lived, clock)
    long_lived.state.oauth.fail_refresh = True
    clock.advance(DAY)
    seen: list[tuple[str, OAuthError]] = []
    kept = keeper(sqlite_store, vault, registry, http, clock)
    kept.on_failure = lambda rec, exc: seen.append((rec.name, exc))
    await kept.refresh_due()
    with pytest.raises(ReauthRequired):
        await kept.refresh("acme", rejected="x")  # already marked: not reported again
    assert [(name, type(exc)) for name, exc in seen] == [("acme", ReauthRequired)]


# -- through Patchwire ----------------------------------------------------------------------


@pytest.fixture
async def robot_pw(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, Sandbox]]:
    registry = ConnectorRegistry([oauth_connector("client_credentials", "robot"),
                                  oauth_connector()])
    async with (Sandbox(seed=0) as sandbox,
                Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw):
        yield pw, sandbox


async def test_a_refused_refresh_shows_in_the_call_log_as_an_oauth2_refresh_event(
    robot_pw: tuple[Patchwire, Sandbox],
) -> None:
    pw, sandbox = robot_pw
    expired = TokenSet("at-old-secret", "rt-unknown-secret", expires_at=1.0)
    await add_connection(pw.store, pw.vault, sandbox, tokens=expired)
    with pytest.raises(ReauthRequired):
        await pw.call("oauthy.me", connection="acme")
    assert await pw.needs_reauth("acme")
    calls = await pw.recent_calls()
    assert [(c.action, c.connection, c.status, c.error_class) for c in calls] == [
        ("oauthy.oauth2_refresh", "acme", "error", "reauth_required")]
    assert "secret" not in str(calls[0].to_dict())


async def test_a_failed_token_request_is_recorded_with_its_error_class(
    robot_pw: tuple[Patchwire, Sandbox],
) -> None:
    pw, sandbox = robot_pw
    wrong = "not-the-client-secret"
    await pw.add_connection("robot", "bot", {"sandbox_url": sandbox.url,
                                             "client_id": CLIENT_ID, "client_secret": wrong})
    with pytest.raises(OAuthError):
        await pw.call("robot.me", connection="bot")
    calls = await pw.recent_calls()
    assert [(c.action, c.status, c.http_status, c.error_class) for c in calls] == [
        ("robot.oauth2_refresh", "error", 401, "oauth_error")]
    assert wrong not in str(calls[0].to_dict())


class FakeSleep:
    """Records each requested sleep and returns only when the test says so."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self.asleep = asyncio.Event()
        self._wake = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        self.asleep.set()
        await self._wake.wait()
        self._wake.clear()

    async def next_nap(self) -> None:
        await asyncio.wait_for(self.asleep.wait(), 5)
        self.asleep.clear()

    def wake(self) -> None:
        self._wake.set()


async def test_the_background_refresh_runs_at_once_then_every_interval_until_close(
    robot_pw: tuple[Patchwire, Sandbox], monkeypatch: pytest.MonkeyPatch,
) -> None:
    pw, _ = robot_pw
    ages: list[float] = []
    failures = iter([StoreError("database is locked")])

    async def refresh_due(max_age: float) -> list[str]:
        ages.append(max_age)
        exc = next(failures, None)
        if exc is not None:
            raise exc  # a failed round must not end the loop
        return []

    monkeypatch.setattr(pw, "refresh_due", refresh_due)
    sleep = FakeSleep()
    task = pw.start_background_refresh(3600, max_age=DAY, sleep=sleep)
    assert pw.start_background_refresh(3600, sleep=sleep) is task  # idempotent
    await sleep.next_nap()
    assert ages == [DAY] and sleep.requested == [3600]
    sleep.wake()
    await sleep.next_nap()
    assert ages == [DAY, DAY] and sleep.requested == [3600, 3600]
    await pw.close()
    assert task.cancelled()


async def test_the_server_runs_the_background_refresh_for_its_lifetime(
    robot_pw: tuple[Patchwire, Sandbox],
) -> None:
    pw, _ = robot_pw
    app = create_app(pw, manage_lifecycle=False, background_refresh=3600)
    async with app.router.lifespan_context(app):
        task = pw.start_background_refresh()  # the one the lifespan started
        assert not task.done()
    assert task.done()
