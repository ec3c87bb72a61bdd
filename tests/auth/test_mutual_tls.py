"""Mutual TLS (``client_certificate:``): each connection presents its own certificate,
loaded from the vault's PEM text, to a loopback server that requires one — and never
another connection's, even over kept-alive connections; without one the server's refusal
is a typed transport error."""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import RequestRenderError, SpecError, TransportError
from patchwire.http import (
    ClientCertificateError,
    HttpCore,
    MockTransport,
    PreparedRequest,
    RawResponse,
    client_tls_context,
)
from patchwire.testing import instant_retries
from tests.support.settings import LOOPBACK, local_settings
from tests.support.token_servers import Pki, make_pki, mtls_server, server_context

CONNECTOR = """
name: bank
base_url: "{bank_url}"
settings:
  bank_url: {}
  client_cert: {secret: true, description: PEM certificate}
  client_key: {secret: true, description: PEM private key}
  bank_ca: {description: the bank's CA certificate (PEM)}
client_certificate:
  cert: "{client_cert}"
  key: "{client_key}"
  ca: "{bank_ca}"
retry: {attempts: 2}
actions:
  whoami: {request: {method: GET, path: /whoami}}
"""


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("acme", "globex")


@pytest.fixture
async def bank(pki: Pki, tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    async with mtls_server(server_context(pki, tmp_path)) as served:
        yield served


@pytest.fixture
async def patchwire(tmp_path: Path, bank: tuple[str, list[str]], pki: Pki
                    ) -> AsyncIterator[Patchwire]:
    url, _ = bank
    async with Patchwire(local_settings(tmp_path / "home"),
                         connectors=ConnectorRegistry([load_connector_text(CONNECTOR,
                                                                           "bank.yaml")])) as pw:
        for name in ("acme", "globex"):
            await pw.add_connection("bank", name, {
                "bank_url": url, "client_cert": pki.clients[name].cert,
                "client_key": pki.clients[name].key, "bank_ca": pki.ca.cert})
        yield pw


async def test_each_connection_presents_its_own_certificate_even_interleaved(
    patchwire: Patchwire, bank: tuple[str, list[str]],
) -> None:
    _, seen = bank
    names = ["acme", "globex"] * 10
    results = await asyncio.gather(*(patchwire.call("bank.whoami", connection=n)
                                     for n in names))
    assert [r["cn"] for r in results] == names
    # and again, now that kept-alive connections to the same origin sit in the pool
    for name in ("globex", "acme", "globex"):
        assert (await patchwire.call("bank.whoami", connection=name))["cn"] == name
    assert len(seen) == 23


async def test_a_connection_without_a_certificate_is_refused_with_a_typed_transport_error(
    bank: tuple[str, list[str]], pki: Pki,
) -> None:
    url, seen = bank
    # trusts the bank's CA but has no certificate of its own to show
    anonymous = ssl.create_default_context(cadata=pki.ca.cert)
    http = HttpCore(allow_networks=LOOPBACK)
    try:
        with instant_retries(), pytest.raises(TransportError) as caught:
            await http.exchange(PreparedRequest("GET", f"{url}/whoami", tls=anonymous),
                                http.limits(load_connector_text(CONNECTOR, "b.yaml").timeouts))
    finally:
        await http.close()
    assert seen == []
    assert "connection error" in caught.value.message or "could not be read" in \
        caught.value.message


async def test_a_certificate_no_trusted_ca_signed_is_refused(
    tmp_path: Path, bank: tuple[str, list[str]], pki: Pki,
) -> None:
    url, seen = bank
    async with Patchwire(local_settings(tmp_path / "home2"),
                         connectors=ConnectorRegistry([load_connector_text(CONNECTOR,
                                                                           "bank.yaml")])) as pw:
        await pw.add_connection("bank", "mallory", {
            "bank_url": url, "client_cert": pki.stranger.cert,
            "client_key": pki.stranger.key, "bank_ca": pki.ca.cert})
        with instant_retries(), pytest.raises(TransportError):
            await pw.call("bank.whoami", connection="mallory")
    assert seen == []


async def test_a_key_that_does_not_load_is_a_typed_error_without_the_pem(
    tmp_path: Path, bank: tuple[str, list[str]], pki: Pki,
) -> None:
    url, _ = bank
    async with Patchwire(local_settings(tmp_path / "home3"),
                         connectors=ConnectorRegistry([load_connector_text(CONNECTOR,
                                                                           "bank.yaml")])) as pw:
        # acme's certificate with globex's key: they do not match
        await pw.add_connection("bank", "mixed", {
            "bank_url": url, "client_cert": pki.clients["acme"].cert,
            "client_key": pki.clients["globex"].key, "bank_ca": pki.ca.cert})
        with pytest.raises(RequestRenderError) as caught:
            await pw.call("bank.whoami", connection="mixed")
    message = str(caught.value)
    assert "client certificate and key cannot be loaded" in message
    assert "PRIVATE KEY" not in message and "CERTIFICATE" not in message


def test_the_context_is_cached_per_certificate_and_no_key_file_stays_behind(pki: Pki) -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    acme = pki.clients["acme"]
    first = client_tls_context(acme.cert, acme.key, ca=pki.ca.cert)
    assert client_tls_context(acme.cert, acme.key, ca=pki.ca.cert) is first
    other = pki.clients["globex"]
    assert client_tls_context(other.cert, other.key, ca=pki.ca.cert) is not first
    with pytest.raises(ClientCertificateError) as caught:
        client_tls_context(acme.cert, "-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n"
                           "-----END PRIVATE KEY-----\n")
    assert "bm9wZQ" not in str(caught.value)
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before
            if n.startswith("pw-client-")}
    assert left == set()


def test_a_client_certificate_placeholder_naming_no_setting_is_a_load_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_connector_text(CONNECTOR.replace('key: "{client_key}"', 'key: "{client_kee}"'),
                            "bank.yaml")
    assert "client_kee" in str(caught.value) and "client_certificate" in str(caught.value)


async def test_an_optional_ca_setting_left_unset_trusts_the_system_cas_only(
    tmp_path: Path, bank: tuple[str, list[str]], pki: Pki,
) -> None:
    url, seen = bank
    text = CONNECTOR.replace("  bank_ca: {description:", "  bank_ca: {required: false, description:")
    async with Patchwire(local_settings(tmp_path / "home4"),
                         connectors=ConnectorRegistry([load_connector_text(text, "b.yaml")])
                         ) as pw:
        await pw.add_connection("bank", "acme", {
            "bank_url": url, "client_cert": pki.clients["acme"].cert,
            "client_key": pki.clients["acme"].key})
        # the certificate loads; the test CA is not trusted, so the bank's is not either
        with instant_retries(), pytest.raises(TransportError) as caught:
            await pw.call("bank.whoami", connection="acme")
    assert "certificate" in caught.value.message.lower() and seen == []


@pytest.mark.parametrize("auth", [
    """auth:
  type: token_exchange
  request: {method: POST, url: /login, body: {}}
  headers: {Authorization: "Bearer {token}"}
""",
    """auth:
  type: oauth2
  flow: client_credentials
  token_url: "{bank_url}/login"
  client_id: patchwire
  client_secret: ""
""",
], ids=["token_exchange", "oauth2"])
async def test_the_token_request_presents_the_connections_certificate_too(
    tmp_path: Path, bank: tuple[str, list[str]], pki: Pki, auth: str,
) -> None:
    url, seen = bank
    text = CONNECTOR.replace("actions:", auth + "actions:")
    async with Patchwire(local_settings(tmp_path / "home5"),
                         connectors=ConnectorRegistry([load_connector_text(text, "b.yaml")])
                         ) as pw:
        await pw.add_connection("bank", "globex", {
            "bank_url": url, "client_cert": pki.clients["globex"].cert,
            "client_key": pki.clients["globex"].key, "bank_ca": pki.ca.cert})
        assert (await pw.call("bank.whoami", connection="globex"))["cn"] == "globex"
    assert seen == ["login:globex", "globex"]


def test_a_client_key_in_a_setting_not_declared_secret_is_a_load_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_connector_text(CONNECTOR.replace("client_key: {secret: true,", "client_key: {"),
                            "bank.yaml")
    assert "{client_key} is a credential" in str(caught.value)


async def test_a_redirect_keeps_the_certificate_for_its_origin_only() -> None:
    seen: list[tuple[str, ssl.SSLContext | None]] = []

    def upstream(request: PreparedRequest) -> RawResponse:
        seen.append((request.url, request.tls))
        moves = {"https://api.example.com/a": "/b", "https://api.example.com/b":
                 "https://files.example.net/c"}
        if request.url in moves:
            return MockTransport.response(302, headers={"Location": moves[request.url]})
        return MockTransport.json({"ok": True})

    context = ssl.create_default_context()
    http = HttpCore(transport=MockTransport(upstream))
    try:
        raw = await http.exchange(PreparedRequest("GET", "https://api.example.com/a",
                                                  tls=context),
                                  http.limits(load_connector_text(CONNECTOR, "b.yaml")
                                              .timeouts))
    finally:
        await http.close()
    assert raw.status == 200
    assert seen == [("https://api.example.com/a", context),
                    ("https://api.example.com/b", context),  # same origin: still presented
                    ("https://files.example.net/c", None)]  # another origin: not shown
