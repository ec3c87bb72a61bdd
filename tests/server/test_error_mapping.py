"""Every Patchwire error that reaches the REST API is a problem (``application/problem+json``)
with a status that says whose it is to fix and a message saying what is wrong — never a
bare 500. Over real HTTP (uvicorn on 127.0.0.1), on SQLite."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.errors import (
    BlockedDestinationError,
    CircuitOpenError,
    FlowInputError,
    InputValidationError,
    NotConnected,
    PatchwireError,
    SpecError,
    SpecProblem,
    UpstreamResponseError,
    ValidationProblem,
    WebhookRejected,
)
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.servers import serving
from tests.support.settings import local_settings

PROBLEM = "application/problem+json"
#: every package that defines an error class of its own
ERROR_MODULES = ("patchwire.errors", "patchwire.expressions", "patchwire.calls",
                 "patchwire.server", "patchwire.sync", "patchwire.tools", "patchwire.webhooks")
#: a secret the tests' OAuth2 connection holds; no answer may show it
CLIENT_SECRET = "cs-never-shown-4f1d"


def every_error_class() -> list[type[PatchwireError]]:
    for module in ERROR_MODULES:
        importlib.import_module(module)

    def below(cls: type[PatchwireError]) -> Iterator[type[PatchwireError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    found = {c for c in below(PatchwireError)
             if c.__module__.startswith("patchwire.") and not c.__name__.startswith("_")}
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


def an_instance(cls: type[PatchwireError]) -> PatchwireError:
    """One error of ``cls``, built as the code raising it builds it."""
    if issubclass(cls, SpecError):
        return cls([SpecProblem("flows/broken.yaml", 4, "steps[0].transfrom",
                                "unknown step kind")])
    if issubclass(cls, FlowInputError):
        return cls("the input does not match", [ValidationProblem("$.name", "required")])
    if issubclass(cls, InputValidationError):
        return cls([ValidationProblem("$.limit", "must be an integer")])
    if issubclass(cls, WebhookRejected):
        return cls("bad_signature")
    if issubclass(cls, BlockedDestinationError):
        return cls("refused", host="metadata.internal", address="169.254.169.254",
                   reason="cloud metadata")
    if issubclass(cls, CircuitOpenError):
        return cls("the circuit is open", probe_at=0.0, retry_after=30.0)
    if issubclass(cls, UpstreamResponseError):
        return cls("the upstream refused", status=503)
    if issubclass(cls, NotConnected):
        return cls("no shop account connected", connector="shop", end_user="u1")
    return cls("what went wrong")


ERRORS = every_error_class()


@pytest.fixture(scope="module")
def raising() -> dict[str, PatchwireError]:
    return {cls.__name__: an_instance(cls) for cls in ERRORS}


def test_the_sweep_meets_the_errors_of_every_kind() -> None:
    names = {cls.__name__ for cls in ERRORS}
    # the tree of errors.py and the packages' own: a module that stops importing cannot
    # silently shrink this test
    assert {"SpecError", "ConfigError", "ExpressionError", "StoreError", "VaultError",
            "EngineUnavailable", "OAuthError", "ReauthRequired", "OpenAPIImportError",
            "WebhookRejected", "WebhookSourceExists", "ChatError", "UnknownRun",
            "TransportError", "InvalidSubscription"} <= names, names


@dataclass
class Served:
    url: str
    http: aiohttp.ClientSession

    async def problem(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.request(method, self.url + path, **kw) as resp:
            assert resp.content_type == PROBLEM, (resp.status, await resp.text())
            return resp.status, await resp.json()


@pytest.fixture
async def served(tmp_path: Path, raising: dict[str, PatchwireError]) -> AsyncIterator[Served]:
    app = create_app(Patchwire(local_settings(tmp_path / "home")))
    add_raising_route(app, raising)
    async with (serving(app) as url,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http):
        yield Served(url, http)


def add_raising_route(app: FastAPI, raising: dict[str, PatchwireError]) -> None:
    """A route of the real app that raises the error named in its path, as a route whose
    work failed would."""

    @app.get("/api/v1/raise/{name}")
    async def raise_it(name: str) -> None:
        raise raising[name]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
async def test_every_patchwire_error_is_a_problem_with_a_status_other_than_500(
        served: Served, cls: type[PatchwireError]) -> None:
    status, body = await served.problem("GET", f"/api/v1/raise/{cls.__name__}")

    assert status != 500, body
    assert body["status"] == status and body["title"] == cls.__name__
    assert body["type"] == f"https://patchwire.dev/errors/{cls.code}"
    assert isinstance(body["detail"], str) and body["detail"].strip(), body


async def test_a_spec_error_is_a_422_listing_each_problem_with_its_file_and_line(
        served: Served) -> None:
    status, body = await served.problem("GET", "/api/v1/raise/SpecError")

    assert status == 422
    assert body["detail"] == "1 problem found"
    assert body["problems"] == [{
        "file": "flows/broken.yaml", "line": 4, "path": "steps[0].transfrom",
        "message": "unknown step kind",
        "where": "flows/broken.yaml:4 at steps[0].transfrom: unknown step kind"}]


async def test_an_invalid_expression_of_a_new_webhook_source_is_a_400_naming_it(
        served: Served) -> None:
    status, body = await served.problem("POST", "/api/v1/webhook-sources", json={
        "name": "shop", "scheme": {"scheme": "github"}, "secrets": ["s3cret-value-1"],
        "event_type": "payload.(("})

    assert status == 400, body
    assert body["type"].endswith("/config_error")
    assert "event type expression is invalid" in body["detail"]
    assert "s3cret-value-1" not in str(body)


# -- OAuth2: what a token endpoint or a missing grant makes of a call ------------------------


def oauth_connector(flow: str, token_path: str) -> ConnectorSpec:
    auth: dict[str, Any] = {"type": "oauth2", "flow": flow,
                            "token_url": "{sandbox_url}" + token_path}
    if flow == "authorization_code":
        auth["authorize_url"] = "{sandbox_url}/oauth/authorize"
    return ConnectorSpec.model_validate({
        "name": "oauthy",
        "base_url": "{sandbox_url}/oauth",
        "settings": {"sandbox_url": {}, "client_id": {},
                     "client_secret": {"secret": True, "required": False}},
        "auth": auth,
        "retry": {"attempts": 1},
        "actions": {"me": {"request": {"method": "GET", "path": "/userinfo"}}},
    })


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0) as running:
        yield running


async def call_oauthy(tmp_path: Path, sandbox: Sandbox, spec: ConnectorSpec
                      ) -> tuple[int, dict[str, Any]]:
    settings = local_settings(tmp_path / "home")
    async with Patchwire(settings, connectors=ConnectorRegistry([spec])) as setup:
        await setup.add_connection("oauthy", "acme", {
            "sandbox_url": sandbox.url, "client_id": "patchwire-test",
            "client_secret": CLIENT_SECRET})
    app = create_app(Patchwire(settings, connectors=ConnectorRegistry([spec])))
    async with (serving(app) as url,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http):
        served = Served(url, http)
        status, body = await served.problem("POST", "/api/v1/actions/oauthy.me/call",
                                            json={"input": {}})
    assert CLIENT_SECRET not in str(body)
    return status, body


async def test_a_call_on_a_connection_never_authorised_is_a_424_saying_to_connect_it(
        tmp_path: Path, sandbox: Sandbox) -> None:
    status, body = await call_oauthy(tmp_path, sandbox,
                                     oauth_connector("authorization_code", "/oauth/token"))

    assert status == 424, body
    assert body["type"].endswith("/reauth_required")
    assert "patchwire connection connect" in body["detail"]
    assert body["oauth_error"] == "no_tokens" and body["connection"] == "acme"


async def test_a_token_endpoint_failing_a_call_is_a_502_naming_the_oauth_error(
        tmp_path: Path, sandbox: Sandbox) -> None:
    status, body = await call_oauthy(tmp_path, sandbox,
                                     oauth_connector("client_credentials", "/no/such/token"))

    assert status == 502, body
    assert body["type"].endswith("/oauth_error")
    assert body["oauth_error"] == "http_404" and body["upstream_status"] == 404
    assert "/no/such/token" in body["detail"]
