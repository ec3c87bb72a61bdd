"""The token client against the sandbox's /oauth server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import aiohttp
import pytest

from patchwire.auth import TokenSet, new_authorization
from patchwire.errors import OAuthError, ReauthRequired
from patchwire.http import HttpCore
from patchwire.sandbox import Sandbox
from tests.support.clocks import FakeClock
from tests.support.oauth import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT,
    authorize,
    client_for,
    code_flow_tokens,
)


async def test_client_credentials_grant_yields_a_token_with_absolute_expiry(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    sandbox.state.oauth.access_token_ttl = 300
    tokens = await client_for(sandbox, http, clock, flow="client_credentials").client_credentials()
    assert tokens.access_token and tokens.refresh_token is None
    assert tokens.expires_at == clock.now + 300
    assert tokens.scope == "profile email"
    assert sandbox.state.oauth.stats.token_requests["client_credentials"] == 1


async def test_code_flow_with_pkce_ends_in_tokens_that_open_the_protected_endpoint(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    tokens = await code_flow_tokens(client_for(sandbox, http, clock))
    assert tokens.refresh_token
    async with aiohttp.ClientSession() as s, s.get(
        f"{sandbox.url}/oauth/userinfo",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["client_id"] == CLIENT_ID


async def test_a_public_client_completes_the_code_flow_with_pkce_alone(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    tokens = await code_flow_tokens(
        client_for(sandbox, http, clock, client_id="patchwire-public", secret=None))
    assert tokens.access_token


async def test_a_wrong_verifier_is_an_invalid_grant_naming_no_secret(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    client = client_for(sandbox, http, clock)
    url, _, _ = new_authorization(client, REDIRECT)
    code = (await authorize(url))["code"]
    wrong = "w" * 43
    with pytest.raises(OAuthError) as err:
        await client.exchange_code(code, redirect_uri=REDIRECT, code_verifier=wrong)
    assert err.value.error == "invalid_grant" and err.value.status == 400
    text = f"{err.value} {err.value!r} {err.value.to_dict()}"
    for secret in (code, wrong, CLIENT_SECRET):
        assert secret not in text


async def test_an_expired_access_token_is_refused_by_the_protected_endpoint(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    sandbox.state.oauth.access_token_ttl = 60
    tokens = await code_flow_tokens(client_for(sandbox, http, clock))
    clock.advance(61)
    async with aiohttp.ClientSession() as s, s.get(
        f"{sandbox.url}/oauth/userinfo",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    ) as resp:
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_a_refresh_response_without_a_refresh_token_keeps_the_old_one(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    client = client_for(sandbox, http, clock)
    first = await code_flow_tokens(client)
    clock.advance(10)
    second = await client.refresh(first)
    assert second.access_token != first.access_token
    assert second.refresh_token == first.refresh_token
    assert second.expires_at == clock.now + sandbox.state.oauth.access_token_ttl
    assert sandbox.state.oauth.stats.refreshes == 1


async def test_with_rotation_reusing_an_old_refresh_token_revokes_the_family(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    sandbox.state.oauth.rotate_refresh_tokens = True
    client = client_for(sandbox, http, clock)
    first = await code_flow_tokens(client)
    second = await client.refresh(first)
    assert second.refresh_token not in (None, first.refresh_token)
    with pytest.raises(ReauthRequired) as err:
        await client.refresh(first)
    assert err.value.error == "invalid_grant"
    assert first.refresh_token and first.refresh_token not in str(err.value)
    with pytest.raises(ReauthRequired):
        await client.refresh(second)  # the whole family is gone
    assert sandbox.state.oauth.stats.refresh_reuse == 1


async def test_wrong_client_secret_is_an_invalid_client_error_without_the_secret(
    sandbox: Sandbox, http: HttpCore, clock: FakeClock
) -> None:
    client = client_for(sandbox, http, clock, flow="client_credentials", secret="nope-wrong-1")
    with pytest.raises(OAuthError) as err:
        await client.client_credentials()
    assert err.value.error == "invalid_client" and err.value.status == 401
    assert "nope-wrong-1" not in str(err.value)


def test_a_token_set_repr_shows_no_token() -> None:
    tokens = TokenSet("access-secret-1", "refresh-secret-2", 1.0, "s")
    assert "access-secret-1" not in repr(tokens) and "refresh-secret-2" not in str(tokens)
