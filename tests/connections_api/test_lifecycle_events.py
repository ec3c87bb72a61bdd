"""Connections' lifecycle events reach a real subscriber on loopback, signed (Standard
Webhooks): created, updated and deleted from the API and the facade; needs_reauth when the
provider refuses a refresh (the sandbox's OAuth server) or the upstream refuses a token
just renewed; unhealthy and recovered with hysteresis (the sandbox's chaos switches), once
per change however many processes see it. No payload holds a secret."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import (
    CircuitOpenError,
    ReauthRequired,
    UpstreamError,
    UpstreamResponseError,
)
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.webhooks import DeliveryWorker, WebhookOutbox
from tests.support.api import Api
from tests.support.connections import send
from tests.support.leaks import leaks_in
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, oauth_connector
from tests.support.servers import serve, serving
from tests.support.settings import local_settings


@dataclass
class Sink:
    """A subscriber's endpoint on loopback: keeps every request it is sent."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(({k.lower(): v for k, v in request.headers.items()},
                              await request.read()))
        return web.Response(status=204)

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every event received, its signature verified with the subscription's secret."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = Sink()
    app = web.Application()
    app.router.add_post("/hooks", state.handle)
    async with serve(app) as url:
        state.url = f"{url}/hooks"
        yield state


async def subscribe(pw: Patchwire, sink: Sink) -> str:
    return (await WebhookOutbox.of(pw).create_subscription(sink.url, ["connection.*"])).secret


async def deliver(pw: Patchwire) -> None:
    """Write what is pending (call records, state changes, events), then send it all."""
    await pw.flush()
    worker = DeliveryWorker(WebhookOutbox.of(pw))
    try:
        await worker.run_once()
    finally:
        await worker.stop()


def of(events: list[dict[str, Any]], connection: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e["type"], e["data"]) for e in events if e["data"]["connection"] == connection]


# -- created, updated, deleted -----------------------------------------------------------------


async def test_changes_made_over_the_api_are_delivered_signed_and_without_secrets(
        api: Api, sink: Sink) -> None:
    async with Patchwire(api.settings) as pw:
        secret = await subscribe(pw, sink)
        key = "k-" + api.canary[::-1]
        status, _, _ = await send(api, "POST", "/api/v1/connections", json={
            "connector": "shop", "name": "u7-shop", "end_user": "u7", "label": "work",
            "settings": {"sandbox_url": api.sandbox.url, "api_key": key}})
        assert status == 201
        for change in ({"label": "personal"}, {"is_default": True},
                       {"settings": {"api_key": key + "2"}}):
            status, _, _ = await send(api, "PATCH", "/api/v1/connections/u7-shop",
                                      json=change)
            assert status == 200
        status, _, _ = await send(api, "DELETE", "/api/v1/connections/u7-shop")
        assert status == 204
        await deliver(pw)
    events = of(sink.events(secret), "u7-shop")
    assert [t for t, _ in events] == ["connection.created", "connection.updated",
                                      "connection.updated", "connection.updated",
                                      "connection.deleted"]
    assert events[0][1] == {"connection": "u7-shop", "connector": "shop", "end_user": "u7",
                            "label": "work"}
    assert [d.get("changed") for _, d in events[1:4]] == [["label"], ["is_default"],
                                                         ["api_key"]]
    for _, body in sink.received:
        assert leaks_in(body, key) == [] and leaks_in(body, key + "2") == []


async def test_the_facade_publishes_the_same_events_as_the_api(
        tmp_path: Path, sandbox: Sandbox, canary: str, sink: Sink) -> None:
    async with Patchwire(local_settings(tmp_path / "home")) as pw:
        secret = await subscribe(pw, sink)
        await pw.add_connection("shop", "ops", {"sandbox_url": sandbox.url,
                                                "api_key": canary})
        await pw.update_connection("ops", {}, label="ops")
        await pw.remove_connection("ops")
        await deliver(pw)
    assert [t for t, _ in of(sink.events(secret), "ops")] == [
        "connection.created", "connection.updated", "connection.deleted"]


# -- needs_reauth ------------------------------------------------------------------------------


async def authorize(pw: Patchwire, name: str) -> None:
    """The code flow as a person's browser would follow it (the sandbox consents)."""
    opened: list[asyncio.Task[int]] = []

    async def browse(url: str) -> int:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            await resp.read()
            return resp.status

    def on_url(url: str) -> None:
        assert parse_qs(urlsplit(url).query)["state"]
        opened.append(asyncio.ensure_future(browse(url)))

    await pw.authorize(name, on_url=on_url, consent_timeout=10)
    assert await opened[0] == 200


async def test_a_refused_refresh_is_told_once_and_authorising_again_clears_it(
        tmp_path: Path, sink: Sink) -> None:
    registry = ConnectorRegistry([oauth_connector()])
    async with (Sandbox(seed=0) as sandbox,
                Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw):
        secret = await subscribe(pw, sink)
        await pw.add_connection("oauthy", "u1-cal", {
            "sandbox_url": sandbox.url, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}, end_user="u1")
        await authorize(pw, "u1-cal")
        await pw.call("oauthy.me", connection="u1-cal")
        oauth = sandbox.state.oauth
        for _ in range(2):  # revoked by the provider: each refusal, one event in all
            for refresh in list(oauth._refresh):
                oauth.revoke_family_of(refresh)
            oauth.expire_access_tokens()
            with pytest.raises(ReauthRequired):
                await pw.call("oauthy.me", connection="u1-cal")
            with pytest.raises(ReauthRequired):
                await pw.call("oauthy.me", connection="u1-cal")
            await deliver(pw)
            assert (await pw.get_connection("u1-cal")).needs_reauth is True
            await authorize(pw, "u1-cal")  # the end user connects again
            assert (await pw.get_connection("u1-cal")).needs_reauth is False
            await pw.call("oauthy.me", connection="u1-cal")
        await deliver(pw)
    reauth = [(t, d) for t, d in of(sink.events(secret), "u1-cal")
              if t == "connection.needs_reauth"]
    assert reauth == [("connection.needs_reauth", {
        "connection": "u1-cal", "connector": "oauthy", "end_user": "u1",
        "label": None})] * 2
    for _, body in sink.received:
        assert CLIENT_SECRET.encode() not in body and b"access_token" not in body


async def test_a_token_refused_again_right_after_its_refresh_needs_reauth(
        tmp_path: Path, sink: Sink) -> None:
    issued: list[str] = []

    async def token(request: web.Request) -> web.Response:
        issued.append(f"t{len(issued)}")
        return web.json_response({"access_token": issued[-1], "token_type": "Bearer",
                                  "expires_in": 3600})

    async def userinfo(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_token"}, status=401)  # never anyone

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/oauth/userinfo", userinfo)
    registry = ConnectorRegistry([oauth_connector("client_credentials", "robot")])
    async with (serve(app) as url,
                Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw):
        secret = await subscribe(pw, sink)
        await pw.add_connection("robot", "bot", {"sandbox_url": url, "client_id": CLIENT_ID,
                                                 "client_secret": CLIENT_SECRET})
        for _ in range(2):
            with pytest.raises(UpstreamResponseError) as refused:
                await pw.call("robot.me", connection="bot")
            assert refused.value.status == 401
        await deliver(pw)
        assert (await pw.get_connection("bot")).needs_reauth is True
    assert len(issued) >= 2  # the call renewed its token before giving up
    assert [t for t, _ in of(sink.events(secret), "bot")
            if t == "connection.needs_reauth"] == ["connection.needs_reauth"]


# -- unhealthy and recovered -------------------------------------------------------------------


@pytest.fixture
def steady_shop() -> ConnectorRegistry:
    """The sandbox shop with its breaker out of the way (so only the success rate
    decides) and no retries of the sandbox's injected 500s."""
    shop = ConnectorRegistry.load().get("shop")
    data = shop.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["breaker"] = {"min_calls": 1000}
    return ConnectorRegistry([type(shop).model_validate(data)])


async def calls(pw: Patchwire, sandbox: Sandbox, outcomes: str, name: str = "u1-shop"
                ) -> None:
    """One call per character: ``x`` fails (the sandbox answers 500), ``.`` succeeds."""
    for outcome in outcomes:
        if outcome == "x":
            sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(500,))
            with pytest.raises(UpstreamError):
                await pw.call("shop.list_orders", connection=name)
        else:
            sandbox.clear_chaos("shop")
            await pw.call("shop.list_orders", connection=name)


async def test_failing_calls_make_a_connection_unhealthy_once_and_it_recovers_once(
        tmp_path: Path, sandbox: Sandbox, canary: str, sink: Sink,
        steady_shop: ConnectorRegistry) -> None:
    async with Patchwire(local_settings(tmp_path / "home"), connectors=steady_shop) as pw:
        secret = await subscribe(pw, sink)
        await pw.add_connection("shop", "u1-shop", {"sandbox_url": sandbox.url,
                                                    "api_key": canary}, end_user="u1")
        await calls(pw, sandbox, "x" * 12)
        await deliver(pw)
        assert (await pw.get_connection("u1-shop")).health == "unhealthy"
        # half of them failing, back and forth: neither better nor worse enough to flip
        await calls(pw, sandbox, ".x" * 20)
        await deliver(pw)
        assert (await pw.get_connection("u1-shop")).health == "unhealthy"
        await calls(pw, sandbox, "." * 20)
        await deliver(pw)
        assert (await pw.get_connection("u1-shop")).health is None
        await calls(pw, sandbox, ".x" * 20)  # and alternating does not break it again
        await deliver(pw)
    events = of(sink.events(secret), "u1-shop")
    assert [(t, d.get("reason")) for t, d in events if t != "connection.created"] == [
        ("connection.unhealthy", "success_rate"), ("connection.recovered", "success_rate")]
    unhealthy = events[1][1]
    assert (unhealthy["end_user"], unhealthy["connector"]) == ("u1", "shop")
    assert unhealthy["success_rate"] < 0.5 and unhealthy["calls"] == 10


async def test_an_open_breaker_makes_its_connections_unhealthy(
        tmp_path: Path, sandbox: Sandbox, canary: str, sink: Sink) -> None:
    shop = ConnectorRegistry.load().get("shop")
    data = shop.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["breaker"] = {"min_calls": 3, "open_for": 3600}
    data["retry"] = {"attempts": 1}
    registry = ConnectorRegistry([type(shop).model_validate(data)])
    async with Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw:
        secret = await subscribe(pw, sink)
        await pw.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                 "api_key": canary})
        sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(503,))
        for _ in range(3):
            with pytest.raises(UpstreamResponseError):
                await pw.call("shop.list_orders", connection="acme")
        with pytest.raises(CircuitOpenError):
            await pw.call("shop.list_orders", connection="acme")
        await deliver(pw)
    assert [(t, d["reason"]) for t, d in of(sink.events(secret), "acme")
            if t == "connection.unhealthy"] == [("connection.unhealthy", "breaker_open")]


async def test_two_processes_seeing_a_connection_fail_tell_of_it_once(
        tmp_path: Path, store_url: str, sandbox: Sandbox, canary: str, sink: Sink,
        steady_shop: ConnectorRegistry) -> None:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with (Patchwire(settings, connectors=steady_shop) as one,
                Patchwire(settings, connectors=steady_shop) as two):
        secret = await subscribe(one, sink)
        await one.add_connection("shop", "u1-shop", {"sandbox_url": sandbox.url,
                                                     "api_key": canary}, end_user="u1")
        await asyncio.gather(calls(one, sandbox, "x" * 10), calls(two, sandbox, "x" * 10))
        await two.flush()
        await deliver(one)
    assert [t for t, _ in of(sink.events(secret), "u1-shop")] == [
        "connection.created", "connection.unhealthy"]


def test_event_payloads_are_json_with_names_only() -> None:
    from patchwire.runtime._connection_events import event_data
    from patchwire.store import ConnectionRecord

    rec = ConnectionRecord.new("n", "shop", end_user="u1", secrets="sealed-token")
    assert json.loads(json.dumps(event_data(rec))) == {
        "connection": "n", "connector": "shop", "end_user": "u1", "label": None}


async def test_the_api_shows_an_oauth2_connections_token_status_never_the_token(
        tmp_path: Path) -> None:
    registry = ConnectorRegistry([oauth_connector()])
    settings = local_settings(tmp_path / "home")
    async with (Sandbox(seed=0) as sandbox,
                Patchwire(settings, connectors=registry) as pw,
                serving(create_app(Patchwire(settings, connectors=registry))) as url,
                aiohttp.ClientSession() as http):
        await pw.add_connection("oauthy", "cal", {"sandbox_url": sandbox.url,
                                                  "client_id": CLIENT_ID,
                                                  "client_secret": CLIENT_SECRET})

        async def shown() -> tuple[dict[str, Any], bytes]:
            async with http.get(f"{url}/api/v1/connections/cal") as resp:
                raw = await resp.read()
                return json.loads(raw), raw

        before, _ = await shown()
        assert before["token"] == {"valid": False, "expires_at": None,
                                   "needs_reauth": False}
        await authorize(pw, "cal")
        granted, raw = await shown()
        assert granted["token"]["valid"] is True and granted["token"]["expires_at"]
        for token in [*sandbox.state.oauth._access, *sandbox.state.oauth._refresh]:
            assert token.encode() not in raw
        for refresh in list(sandbox.state.oauth._refresh):
            sandbox.state.oauth.revoke_family_of(refresh)
        sandbox.state.oauth.expire_access_tokens()
        with pytest.raises(ReauthRequired):
            await pw.call("oauthy.me", connection="cal")
        await pw.flush()
        refused, _ = await shown()
        assert refused["token"]["valid"] is False
        assert refused["token"]["needs_reauth"] is True and refused["needs_reauth"] is True
