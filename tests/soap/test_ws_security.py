"""WS-Security UsernameToken declared in the connector (soap.ws_security): the password
comes from the connection's secret settings, reaches the service in the envelope's header
(as text or as a digest), and never appears in errors or the call log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patchwire.errors import AuthError, RequestRenderError
from tests.support.leaks import leaks_in, new_canary
from tests.support.soap import (
    USERNAME,
    SoapServer,
    imported_connector,
    soap_patchwire,
    spyne_server,
)

PASSWORD = new_canary("wss")


@pytest.fixture
def server() -> Iterator[SoapServer]:
    with spyne_server(password=PASSWORD) as running:
        yield running


def secured(server: SoapServer, directory: Path, *, digest: bool,
            required: bool = True) -> Path:
    extra: dict[str, Any] = {
        "settings": {"username": {"description": "the service account"},
                     "password": {"secret": True, "required": required}},
        "soap": {"ws_security": {"username": "{username}", "password": "{password}",
                                 "digest": digest}},
    }
    return imported_connector(directory, server.wsdl("/secure"), name="secure", extra=extra)


@pytest.mark.parametrize("digest", [False, True], ids=["password-text", "password-digest"])
async def test_a_username_token_from_the_connections_secrets_is_accepted_by_the_service(
        server: SoapServer, tmp_path: Path, digest: bool) -> None:
    connector = secured(server, tmp_path / "connectors", digest=digest)
    async with soap_patchwire(tmp_path / "home", connector,
                              {"username": USERNAME, "password": PASSWORD}) as pw:
        assert await pw.call("secure.whoami") == USERNAME
    token = server.security.seen[-1]
    assert token["username"] == USERNAME
    if digest:
        assert token["type"].endswith("#PasswordDigest") and token["nonce"]
        assert PASSWORD not in token["password"]
    else:
        assert token["password"] == PASSWORD


async def test_a_refused_username_token_is_an_auth_error_that_names_no_secret(
        server: SoapServer, tmp_path: Path) -> None:
    connector = secured(server, tmp_path / "connectors", digest=False)
    wrong = new_canary("wrong")
    async with soap_patchwire(tmp_path / "home", connector,
                              {"username": USERNAME, "password": wrong}) as pw:
        with pytest.raises(AuthError) as caught:
            await pw.call("secure.whoami")
        assert "FailedAuthentication" in caught.value.message
        records = await pw.recent_calls(action="secure.whoami")
    assert [r.error_class for r in records] == ["auth_error"]
    for text in (str(caught.value), caught.value.body_excerpt, repr(records)):
        assert leaks_in(text, wrong) == []


async def test_a_missing_ws_security_password_is_said_before_anything_is_sent(
        server: SoapServer, tmp_path: Path) -> None:
    connector = secured(server, tmp_path / "connectors", digest=True, required=False)
    async with soap_patchwire(tmp_path / "home", connector, {"username": USERNAME}) as pw:
        with pytest.raises(RequestRenderError, match="WS-Security password"):
            await pw.call("secure.whoami")
    assert server.security.seen == []
