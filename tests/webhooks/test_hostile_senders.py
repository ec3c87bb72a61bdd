"""The webhook receiver against hostile senders, over real HTTP (uvicorn on loopback):
malformed timestamps, replays under a new delivery id, bodies that trickle in, and
handshake answers a browser could be made to sniff as something else."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.config import Settings, load_settings
from patchwire.errors import ConfigError
from patchwire.server import create_app
from patchwire.webhooks import SchemeSettings, sign
from patchwire.webhooks._sources import WebhookSources
from tests.helpers import local_settings
from tests.server.live import serving

#: a generic HMAC source that signs a timestamp header (``{timestamp}.{body}``)
GENERIC = SchemeSettings(scheme="hmac", header="X-Signature", signed_content="{timestamp}.{body}",
                         timestamp_header="X-Timestamp", id_header="X-Event-Id")
SCHEMES: dict[str, SchemeSettings] = {
    "standard": SchemeSettings(scheme="standard"),
    "stripe": SchemeSettings(scheme="stripe"),
    "slack": SchemeSettings(scheme="slack"),
    "github": SchemeSettings(scheme="github"),
    "shopify": SchemeSettings(scheme="shopify"),
    "hmac": GENERIC,
}


def secret_for(scheme: str) -> str:
    if scheme == "standard":
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    return f"{scheme}-secret-{os.urandom(8).hex()}"


@dataclass
class Receiver:
    url: str
    http: aiohttp.ClientSession
    settings: Settings
    secrets: dict[str, str]

    async def post(self, source: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}/hooks/{source}", data=body,
                                  headers={"content-type": "application/json", **headers}) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except json.JSONDecodeError:
                return r.status, text

    def signed_headers(self, source: str, body: bytes, event_id: str = "evt_1",
                       at: float | None = None) -> dict[str, str]:
        return sign(SCHEMES[source], self.secrets[source], body,
                    timestamp=time.time() if at is None else at, event_id=event_id)

    async def get(self, path: str) -> Any:
        async with self.http.get(self.url + path) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def inbox(self, source: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = await self.get(f"/api/v1/webhooks/inbox?source={source}")
        return events


@asynccontextmanager
async def receiver_on(settings: Settings) -> AsyncIterator[Receiver]:
    """The app on loopback with one source per scheme, each named after its scheme."""
    secrets = {name: secret_for(name) for name in SCHEMES}
    async with Patchwire(settings) as setup:
        sources = WebhookSources(setup)
        for name, scheme in SCHEMES.items():
            await sources.add(name, scheme, [secrets[name]])
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Receiver(url, http, settings, secrets)


@pytest.fixture
async def receiver(store_url: str, tmp_path: Path) -> AsyncIterator[Receiver]:
    async with receiver_on(local_settings(tmp_path / "home", database_url=store_url)) as r:
        yield r


# -- a) malformed timestamps ----------------------------------------------------------------

#: where each timestamped scheme carries its timestamp, and how to put a value there
TIMESTAMP_AT: dict[str, str] = {
    "standard": "webhook-timestamp",
    "slack": "X-Slack-Request-Timestamp",
    "hmac": "X-Timestamp",
    "stripe": "Stripe-Signature",
}
MALFORMED_TIMESTAMPS = {
    "400 nines": "9" * 400,
    "5000 digits": "1" * 5000,  # past int()'s own digit limit
    "past year 9999": "99999999999999999999",
    "negative": "-1700000000",
    "fractional": "1700000000.5",
    "exponent": "1.7e9",
    "not a number": "soon",
    "infinity": "inf",
    "non-ASCII digits": "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",
    "empty": "",
}


def with_timestamp(scheme: str, headers: dict[str, str], value: str) -> dict[str, str]:
    name = TIMESTAMP_AT[scheme]
    if scheme == "stripe":  # t=<value> inside the signature header, before the v1 MAC
        v1 = headers[name].split(",v1=", 1)[1]
        return {**headers, name: f"t={value},v1={v1}"}
    return {**headers, name: value}


@pytest.mark.parametrize("scheme", list(TIMESTAMP_AT))
async def test_a_malformed_timestamp_is_refused_400_and_nothing_is_stored(
        receiver: Receiver, scheme: str) -> None:
    # every malformed form against one server (a server per case would cost a second each)
    body = json.dumps({"id": "evt_ts", "event_id": "Ev1", "type": "order.created"}).encode()
    for case, value in MALFORMED_TIMESTAMPS.items():
        headers = with_timestamp(scheme, receiver.signed_headers(scheme, body), value)
        status, answer = await receiver.post(scheme, body, headers)
        assert status == 400, (case, answer)
        assert answer["reason"] in ("malformed_timestamp", "missing_timestamp"), (case, answer)
        assert "timestamp" in answer["detail"], case
    assert await receiver.inbox(scheme) == []
    rejections = await receiver.get(f"/api/v1/webhooks/rejections?source={scheme}")
    assert sorted(r["status"] for r in rejections) == [400] * len(MALFORMED_TIMESTAMPS)


# -- d) handshake answers --------------------------------------------------------------------


async def test_handshake_answers_are_plain_text_that_a_browser_must_not_sniff(
        receiver: Receiver) -> None:
    challenge = "%3Chtml%3E%3Cscript%3Ealert(1)%3C/script%3E"  # printable: echoed as is
    async with receiver.http.get(
            f"{receiver.url}/hooks/github?hub.mode=subscribe&hub.challenge={challenge}") as r:
        assert (r.status, await r.text()) == (200, "<html><script>alert(1)</script>")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Type"].split(";")[0] == "text/plain"
    body = json.dumps({"type": "url_verification", "challenge": "ch4ll3nge"}).encode()
    async with receiver.http.post(f"{receiver.url}/hooks/slack", data=body, headers={
            "content-type": "application/json", **receiver.signed_headers("slack", body)}) as r:
        assert (r.status, await r.text()) == (200, "ch4ll3nge")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Type"].split(";")[0] == "text/plain"


# -- c) bodies that never finish -------------------------------------------------------------

#: the bound on every wait for the server's answer (the body timeout is 0.2 s)
ANSWER_WITHIN_S = 5.0


async def raw_request(url: str, head: bytes) -> tuple[asyncio.StreamReader,
                                                      asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    await writer.drain()
    return reader, writer


def post_head(url: str, source: str, length: int) -> bytes:
    return (f"POST /hooks/{source} HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


async def test_a_body_that_stalls_gets_408_and_the_connection_closed(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "home", webhook_body_timeout=0.2)
    async with receiver_on(settings) as receiver:
        reader, writer = await raw_request(receiver.url,
                                           post_head(receiver.url, "github", 100) + b'{"a":')
        try:
            # everything the server says, up to its closing the connection
            answer = await asyncio.wait_for(reader.read(), ANSWER_WITHIN_S)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"body_timeout" in answer
        [rejected] = await receiver.get("/api/v1/webhooks/rejections?source=github")
        assert (rejected["reason"], rejected["status"], rejected["body_bytes"]) == (
            "body_timeout", 408, 5)
        assert await receiver.inbox("github") == []


async def test_a_body_that_trickles_in_is_cut_off_by_a_total_not_an_idle_timeout(
        tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "home", webhook_body_timeout=0.2)
    async with receiver_on(settings) as receiver:
        reader, writer = await raw_request(receiver.url,
                                           post_head(receiver.url, "github", 10_000))
        answer = b""
        try:
            async with asyncio.timeout(ANSWER_WITHIN_S):
                # a byte every 20 ms: never idle for the 0.2 s, never done either
                while not answer:
                    writer.write(b" ")
                    with contextlib.suppress(TimeoutError):
                        # read(n) returns what has come: a cancelled wait loses nothing
                        answer = await asyncio.wait_for(reader.read(65536), 0.02)
                answer += await reader.read()  # the rest, up to the server's close
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer.lower()


def test_the_body_timeout_is_a_setting_of_positive_seconds() -> None:
    settings = load_settings(environ={"PATCHWIRE_WEBHOOK_BODY_TIMEOUT": "2.5"},
                             toml_path=Path("/nonexistent/patchwire.toml"))
    assert settings.webhook_body_timeout == 2.5
    assert Settings().webhook_body_timeout == 10.0
    for bad in ("0", "-1", "inf", "nan", "soon"):
        with pytest.raises(ConfigError, match="webhook_body_timeout must be a positive"):
            load_settings(environ={"PATCHWIRE_WEBHOOK_BODY_TIMEOUT": bad},
                          toml_path=Path("/nonexistent/patchwire.toml"))
