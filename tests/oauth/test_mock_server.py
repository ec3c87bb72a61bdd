"""The token client against oauth2-mock-server (npm), an OAuth2 server nobody here wrote.

``scripts/ci-oauth-mock.sh`` installs it into ``.fixtures-cache/node``; without it these
tests are skipped, unless ``CI`` is set (``tests.support.oauth_mock``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from patchwire.auth import OAuth2Client, new_authorization
from patchwire.connectors.spec import OAuth2Auth
from patchwire.errors import OAuthError
from patchwire.http import HttpCore
from tests.support.clocks import FakeClock
from tests.support.oauth import oauth_connector
from tests.support.oauth_mock import oauth2_mock_server

#: slow (the npm oauth2-mock-server): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

REDIRECT = "http://127.0.0.1:1/callback"


@pytest.fixture
async def mock_server() -> AsyncIterator[str]:
    """oauth2-mock-server on a free loopback port; yields its base URL."""
    async with oauth2_mock_server() as url:
        yield url


def mock_client(url: str, http: HttpCore, flow: str) -> OAuth2Client:
    auth = oauth_connector(flow).auth
    assert isinstance(auth, OAuth2Auth)
    # the mock serves /authorize and /token at its root, not under /oauth
    auth = auth.model_copy(update={"token_url": f"{url}/token",
                                   "authorize_url": f"{url}/authorize"})
    return OAuth2Client(auth, {"client_id": "pw-client", "client_secret": "pw-secret"},
                        http=http, clock=FakeClock())


async def test_client_credentials_works_against_oauth2_mock_server(
    mock_server: str, http: HttpCore
) -> None:
    tokens = await mock_client(mock_server, http, "client_credentials").client_credentials()
    assert tokens.access_token.count(".") == 2  # the mock issues JWTs
    assert tokens.expires_at is not None and tokens.refresh_token is None


async def test_code_flow_with_pkce_and_refresh_work_against_oauth2_mock_server(
    mock_server: str, http: HttpCore
) -> None:
    client = mock_client(mock_server, http, "authorization_code")
    url, state, pkce = new_authorization(client, REDIRECT)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
            s.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        answer = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    assert answer["state"] == state and pkce is not None
    tokens = await client.exchange_code(answer["code"], redirect_uri=REDIRECT,
                                        code_verifier=pkce.verifier)
    assert tokens.access_token and tokens.refresh_token
    refreshed = await client.refresh(tokens)
    assert refreshed.access_token and refreshed.refresh_token


async def test_oauth2_mock_server_refuses_a_wrong_pkce_verifier(
    mock_server: str, http: HttpCore
) -> None:
    client = mock_client(mock_server, http, "authorization_code")
    url, _, _ = new_authorization(client, REDIRECT)
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False) as resp:
        code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    with pytest.raises(OAuthError) as err:
        await client.exchange_code(code, redirect_uri=REDIRECT, code_verifier="x" * 43)
    assert err.value.status is not None and err.value.status >= 400
    assert "x" * 43 not in str(err.value)
