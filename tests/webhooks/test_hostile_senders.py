"""The webhook receiver against hostile senders, over real HTTP (uvicorn on loopback):
malformed timestamps, replays under a new delivery id, bodies that trickle in, and
handshake answers a browser could be made to sniff as something else."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy import Table, update

from patchwire import Patchwire
from patchwire.config import Settings, load_settings
from patchwire.errors import ConfigError
from patchwire.ids import new_id
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.store._webhook_models import WebhookInboxRow
from patchwire.webhooks import SchemeSettings, sign
from patchwire.webhooks._inbox import Inbox
from patchwire.webhooks._sources import WebhookSources
from tests.support.servers import serving
from tests.support.settings import local_settings
from tests.support.store import migrate

_INBOX = cast(Table, WebhookInboxRow.__table__)
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


# -- b) replays under a new delivery id ------------------------------------------------------


def github_headers(secret: str, body: bytes, delivery: str) -> dict[str, str]:
    """What GitHub sends: the body's HMAC-SHA256 in hex; the delivery id beside it."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}", "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": "issues"}


def shopify_headers(secret: str, body: bytes, webhook_id: str) -> dict[str, str]:
    """What Shopify sends: the body's HMAC-SHA256 in base64; the webhook id beside it."""
    mac = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Hmac-Sha256": mac, "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Topic": "orders/create"}


UNSIGNED_IDS = {"github": github_headers, "shopify": shopify_headers}


@pytest.mark.parametrize("scheme", list(UNSIGNED_IDS))
async def test_a_captured_body_replayed_under_a_new_delivery_id_is_acknowledged_not_stored(
        receiver: Receiver, scheme: str) -> None:
    headers = UNSIGNED_IDS[scheme]
    secret = receiver.secrets[scheme]
    body = json.dumps({"action": "opened", "order": {"id": 1001}}).encode()
    first = await receiver.post(scheme, body, headers(secret, body, "delivery-1"))
    replayed = await receiver.post(scheme, body, headers(secret, body, "delivery-2"))
    assert first[0] == 202, first
    # 2xx, so a sender retrying would stop; but no second event
    assert replayed == (200, {"status": "duplicate", "event_id": "delivery-2"})
    other = json.dumps({"action": "opened", "order": {"id": 1002}}).encode()
    assert (await receiver.post(scheme, other, headers(secret, other, "delivery-3")))[0] == 202
    events = await receiver.inbox(scheme)
    assert sorted(e["event_id"] for e in events) == ["delivery-1", "delivery-3"]


async def test_a_body_seen_longer_ago_than_the_replay_window_counts_again(
        receiver: Receiver) -> None:
    secret = receiver.secrets["github"]
    body = json.dumps({"action": "synchronize", "number": 7}).encode()
    assert (await receiver.post("github", body, github_headers(secret, body, "d-1")))[0] == 202
    # eight days pass for the stored event (the default window is seven)
    url = receiver.settings.effective_database_url
    async with await Store.open(url) as store, store.engine.begin() as conn:
        await conn.execute(update(_INBOX).values(received_at=_INBOX.c.received_at - 8 * 86_400))
    assert (await receiver.post("github", body, github_headers(secret, body, "d-2")))[0] == 202
    assert (await receiver.post("github", body, github_headers(secret, body, "d-3")))[0] == 200
    assert sorted(e["event_id"] for e in await receiver.inbox("github")) == ["d-1", "d-2"]


async def test_a_slack_request_without_an_event_id_replayed_within_the_tolerance_is_a_duplicate(
        receiver: Receiver) -> None:
    # slash commands and interactivity carry no event_id: the signed content (timestamp and
    # body) tells a replay, and a new command in another second is a new event
    body = b"command=%2Fdeploy&text=prod&user_id=U1"
    now = time.time()
    signed = receiver.signed_headers("slack", body, at=now)
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert (await receiver.post("slack", body, {**signed, **form}))[0] == 202
    assert (await receiver.post("slack", body, {**signed, **form}))[0] == 200
    later = receiver.signed_headers("slack", body, at=now + 1)
    assert (await receiver.post("slack", body, {**later, **form}))[0] == 202
    assert len(await receiver.inbox("slack")) == 2


async def test_schemes_that_sign_their_event_id_keep_deduplicating_by_it(
        receiver: Receiver) -> None:
    body = json.dumps({"type": "order.created", "data": {"id": 5}}).encode()
    # Standard Webhooks signs webhook-id: the same body under two ids is two events
    for msg_id in ("msg_a", "msg_b", "msg_a"):
        await receiver.post("standard", body, receiver.signed_headers("standard", body, msg_id))
    assert sorted(e["event_id"] for e in await receiver.inbox("standard")) == ["msg_a", "msg_b"]


async def test_the_inbox_forgets_a_digest_exactly_after_the_replay_window(
        tmp_path: Path, store_url: str) -> None:
    async with Patchwire(local_settings(tmp_path / "home", database_url=store_url)) as pw:
        inbox = Inbox(pw, replay_window=60.0)
        t0 = 1_700_000_000.0

        def row(event_id: str, at: float, digest: str | None = "d" * 64) -> tuple[Any, ...]:
            return (new_id(), "gh", event_id, None, "{}", "{}", at, "pending", 0, at, None, None,
                    digest)

        try:
            assert await inbox.ingest(row("e1", t0))
            assert not await inbox.ingest(row("e2", t0 + 59.9))  # within the window
            assert await inbox.ingest(row("e3", t0 + 60.1))  # past it: new again
            assert not await inbox.ingest(row("e4", t0 + 100))  # ... and remembered anew
            assert await inbox.ingest(row("e5", t0 + 100, digest=None))  # no digest: by id
            # two rows with one digest in one commit: the first wins
            first, second = await asyncio.gather(inbox.ingest(row("e6", t0 + 200, "f" * 64)),
                                                 inbox.ingest(row("e7", t0 + 200, "f" * 64)))
            assert (first, second) == (True, False)
            assert sorted(e.event_id or "" for e in await inbox.list_events(source="gh")) == [
                "e1", "e3", "e5", "e6"]
        finally:
            await inbox.stop()


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


def test_the_body_timeout_and_the_replay_window_are_settings_of_positive_seconds() -> None:
    settings = load_settings(environ={"PATCHWIRE_WEBHOOK_BODY_TIMEOUT": "2.5",
                                      "PATCHWIRE_WEBHOOK_REPLAY_WINDOW": "3600"},
                             toml_path=Path("/nonexistent/patchwire.toml"))
    assert (settings.webhook_body_timeout, settings.webhook_replay_window) == (2.5, 3600.0)
    assert (Settings().webhook_body_timeout, Settings().webhook_replay_window) == (
        10.0, 7 * 86_400.0)
    for key in ("webhook_body_timeout", "webhook_replay_window"):
        for bad in ("0", "-1", "inf", "nan", "soon"):
            with pytest.raises(ConfigError, match=f"{key} must be a positive"):
                load_settings(environ={f"PATCHWIRE_{key.upper()}": bad},
                              toml_path=Path("/nonexistent/patchwire.toml"))


def test_migration_0013_adds_the_digest_column_to_an_inbox_holding_events_and_steps_back(
        tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'patchwire.db'}")
    with engine.begin() as conn:
        migrate(conn, "upgrade", "0012")
        conn.exec_driver_sql(
            "INSERT INTO webhook_inbox (id, source, event_id, type, payload, headers, "
            "received_at, status, attempts, next_attempt_at) VALUES "
            "('old', 'gh', 'd-1', NULL, '{}', '{}', 1.0, 'processed', 1, 1.0)")
        migrate(conn, "upgrade", "0013")
        assert conn.exec_driver_sql(
            "SELECT id, content_digest FROM webhook_inbox").all() == [("old", None)]
        indexes = {i["name"]: i for i in sa.inspect(conn).get_indexes("webhook_inbox")}
        digest_index = indexes["uq_webhook_inbox_content_digest_source"]
        assert digest_index["unique"]
        assert digest_index["column_names"] == ["content_digest", "source"]
        migrate(conn, "downgrade", "0012")
        columns = {c["name"] for c in sa.inspect(conn).get_columns("webhook_inbox")}
        assert "content_digest" not in columns
        assert conn.exec_driver_sql("SELECT id FROM webhook_inbox").all() == [("old",)]
    engine.dispose()
