"""`patchwire demo`: the sandbox and the real server in one process, over a demo store of
its own, with a walkthrough and background traffic, stopped cleanly by a signal.

The command runs as a subprocess in the test's own directory (its store lands in
``.patchwire-demo/`` there); every wait is bounded by a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from starlette.types import Message, Receive, Scope, Send

from patchwire.cli._demo_server import SandboxHooks, listen
from patchwire.cli._demo_store import demo_settings, demo_store
from patchwire.errors import ConfigError
from patchwire.sandbox import SANDBOX_CREDENTIALS, SANDBOX_WEBHOOK_SECRETS, Sandbox
from patchwire.webhooks._schemes import sign
from tests.support.cli import Cli, running
from tests.support.leaks import leaks_in
from tests.support.settings import free_port

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

#: the demo answering (start-up and the walkthrough: a few seconds) and stopping
READY_TIMEOUT_S = 25.0
STOP_TIMEOUT_S = 15.0
#: the walkthrough, then the second end user's scene (the demo bounds it at 60 s)
SCENE_TIMEOUT_S = READY_TIMEOUT_S + 60.0

SECRETS = [SANDBOX_CREDENTIALS["shop"]["api_key"], SANDBOX_CREDENTIALS["helpdesk"]["password"],
           SANDBOX_CREDENTIALS["calendar"]["token"], SANDBOX_CREDENTIALS["payments"]["secret_key"],
           *SANDBOX_WEBHOOK_SECRETS.values()]


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, f"{url}: {resp.status} {await resp.text()}"
        return await resp.json()


async def _until(proc: asyncio.subprocess.Process, http: aiohttp.ClientSession, url: str,
                 done: Any) -> Any:
    """GET ``url`` until ``done(body)`` (bounded by the caller's timeout); the body."""
    while True:
        assert proc.returncode is None, "the demo exited early"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(url) as resp:
                if resp.status == 200:
                    body = await resp.json() if "json" in resp.content_type else None
                    if done(body):
                        return body
        await asyncio.sleep(0.1)


async def test_demo_serves_the_dashboard_with_runs_failures_and_a_pending_approval_and_stops_on_interrupt(
    cli: Cli,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running(cli, "demo", "--port", str(port), "--sandbox-port", "0") as proc:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await _until(proc, http, f"{base}/", lambda _: True)  # the dashboard: 200
                # the walkthrough's runs (one fails on purpose) and its refund waiting
                runs = await _until(proc, http, f"{base}/api/v1/runs?limit=1000",
                                    lambda b: any(r["status"] == "failed" for r in b))
                approvals = await _until(proc, http, f"{base}/api/v1/approvals",
                                         lambda b: len(b) > 0)
            assert {r["status"] for r in runs} >= {"succeeded", "failed"}
            assert {r["flow"] for r in runs} >= {"chat_to_ticket", "refund_to_ticket_comment"}
            assert approvals[0]["status"] == "pending"
            assert approvals[0]["subject"] == "payments_refund_charge"
            connections = await _get(http, f"{base}/api/v1/connections?end_user=acme")
            assert sorted(c["name"] for c in connections) == [
                "demo-calendar", "demo-helpdesk", "demo-payments", "demo-shop"]
            sources = await _get(http, f"{base}/api/v1/webhook-sources")
            assert sorted(s["name"] for s in sources) == [
                "calendar", "helpdesk", "payments", "shop"]
            openapi = await _get(http, f"{base}/api/v1/openapi.json")
            assert "/api/v1/runs" in openapi["paths"]
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}}}
            async with http.post(f"{base}/mcp", json=initialize, headers={
                    "Accept": "application/json, text/event-stream"}) as resp:
                assert resp.status == 200, await resp.text()
            # the sandbox's signed webhooks reach the inbox through the demo's sources
            async with asyncio.timeout(READY_TIMEOUT_S):
                inbox = await _until(proc, http, f"{base}/api/v1/webhooks/inbox",
                                     lambda b: len(b) > 0)
            assert {e["source"] for e in inbox} <= {"shop", "payments", "helpdesk", "calendar"}
            # approved (as in the dashboard), the bot calls the refund tool again: used
            approval_id = approvals[0]["id"]
            async with http.post(f"{base}/api/v1/approvals/{approval_id}/approve",
                                 json={"by": "tester"}) as resp:
                assert resp.status == 200, await resp.text()
            async with asyncio.timeout(READY_TIMEOUT_S):
                await _until(proc, http, f"{base}/api/v1/approvals/{approval_id}",
                             lambda b: b["status"] == "used")
            # a second demo in the same directory must not pull the store from under this one
            second = await cli("demo", "--once", "--sandbox-port", "0")
            assert second.code == 1, second
            assert "another `patchwire demo` is running" in second.flat_err
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT_S)
    text, errors = out.decode(), err.decode()
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors
    flat = " ".join(text.split())
    assert f"{base}/" in flat and f"{base}/mcp" in flat and f"{base}/api/v1" in flat
    assert "Ctrl-C" in flat
    assert "Stopped." in flat
    # who approved is shown (the approving identity), then the bot's second call
    assert re.search(r"\S+ approved the refund; the bot called payments_refund_charge again: ok",
                     flat), flat[-2000:]
    for secret in SECRETS:
        assert leaks_in(out + err, secret) == [], secret
    # the demo's store is its own: the user's home was never created
    assert (cli.workdir / ".patchwire-demo" / "patchwire.db").is_file()
    assert not cli.home.exists()


@contextlib.asynccontextmanager
async def _demo_past_the_second_end_user(
    cli: Cli,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, aiohttp.ClientSession, str, list[str]]]:
    """The demo serving, once its second end user's scene has been told (its output so
    far in the list, the rest appended when the demo stops at the end of the block)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    async with running(cli, "demo", "--port", str(port), "--sandbox-port", "0") as proc:
        assert proc.stdout is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with asyncio.timeout(SCENE_TIMEOUT_S):
                while not any("Patchwire is running" in line for line in output):
                    line = await proc.stdout.readline()
                    if not line:
                        assert proc.stderr is not None
                        err = (await proc.stderr.read()).decode()
                        raise AssertionError("the demo's output ended early:\n"
                                             + "".join(output) + err)
                    output.append(line.decode())
            yield proc, http, base, output
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT_S)
    output.append(out.decode())
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    for secret in SECRETS:
        assert leaks_in("".join(output).encode() + err, secret) == [], secret


async def _end_user_token(http: aiohttp.ClientSession, base: str, end_user: str) -> dict[str, str]:
    async with http.post(f"{base}/api/v1/end-users/{end_user}/tokens", json={}) as resp:
        assert resp.status == 201, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_demo_prints_a_connect_link_for_a_second_end_user_completes_the_connect_and_her_booking_then_succeeds(
    cli: Cli,
) -> None:
    async with _demo_past_the_second_end_user(cli) as (_, http, base, output):
        text = "".join(output)
        # the link the bot was given for maya, printed whole on a line of its own
        link = re.search(rf"maya opens ({re.escape(base)}/connect/([A-Za-z0-9_-]{{43}}))\n",
                         text)
        assert link is not None, text
        session = await _get(http, f"{base}/api/v1/connect-sessions/{link[2]}")
        assert session["status"] == "connected"
        assert session["end_user"] == "maya" and session["connectors"] == ["calendar"]
        mine = await _get(http, f"{base}/api/v1/connections?end_user=maya")
        assert [(c["name"], c["connector"], c["is_default"]) for c in mine] == [
            (session["connection"], "calendar", True)]
        # the link was used once: opening it again is refused
        async with http.get(link[1]) as resp:
            assert resp.status == 410
        # her tool calls (the audit): told to connect, then the same booking through her
        # connection
        calls = list(reversed(await _get(http, f"{base}/api/v1/tool-calls?session_id=demo-maya")))
        assert [(c["tool"], c["status"], c["end_user"]) for c in calls] == [
            ("calendar_book_appointment", "connection_required", "maya"),
            ("calendar_book_appointment", "ok", "maya")]
        assert calls[1]["connection"] == session["connection"]
        assert calls[0]["arguments"] == calls[1]["arguments"]
    flat = " ".join("".join(output).split())
    assert "maya → bot" in flat
    assert "the user has not connected a Sandbox Calendar account" in flat
    assert f"Open this link to connect it: {link[1]}" in flat
    assert "Connected — you can return to the chat." in flat
    assert (f"status connected, connection {session['connection']} of end user maya"
            in flat)
    assert ("the bot calls calendar_book_appointment again with the same arguments: ok"
            in flat)
    assert "the second end user's scene stopped" not in flat


async def test_in_the_demo_the_first_end_user_never_sees_the_second_end_users_connection(
    cli: Cli,
) -> None:
    async with _demo_past_the_second_end_user(cli) as (_, http, base, output):
        (theirs,) = await _get(http, f"{base}/api/v1/connections?end_user=maya")
        acme = await _end_user_token(http, base, "acme")
        async with http.get(f"{base}/api/v1/connections", headers=acme) as resp:
            assert resp.status == 200, await resp.text()
            assert sorted(c["name"] for c in await resp.json()) == [
                "demo-calendar", "demo-helpdesk", "demo-payments", "demo-shop"]
        async with http.get(f"{base}/api/v1/connections/{theirs['name']}",
                            headers=acme) as resp:
            assert resp.status == 404
        # and the other way round: maya's token sees her connection alone
        maya = await _end_user_token(http, base, "maya")
        async with http.get(f"{base}/api/v1/connections", headers=maya) as resp:
            assert [c["name"] for c in await resp.json()] == [theirs["name"]]
    flat = " ".join("".join(output).split())
    assert (f"acme's end-user token lists demo-calendar, demo-helpdesk, demo-payments, "
            f"demo-shop — not maya's {theirs['name']} (GET /api/v1/connections/"
            f"{theirs['name']} → 404)") in flat


async def test_demo_for_seconds_stops_by_itself_after_the_walkthrough(cli: Cli) -> None:
    async with running(cli, "demo", "--port", "0", "--sandbox-port", "0", "--for", "0") as proc:
        out, err = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT_S + STOP_TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    flat = " ".join(out.decode().split())
    assert "Patchwire is running" in flat
    assert "It stops by itself in 0 s" in flat
    assert "Stopped." in flat


async def test_demo_once_walks_the_scenario_and_exits_without_a_server(cli: Cli) -> None:
    result = await cli("demo", "--once", "--sandbox-port", "0")
    assert result.code == 0, result
    out = result.flat_out
    assert "Find the customer by email" in out
    assert "approved by the supervisor" in out
    assert "succeeded chat_to_ticket" in out
    assert "failed refund_to_ticket_comment" in out
    assert "Patchwire is running" not in out
    assert "Traceback" not in result.err
    for secret in SECRETS:
        assert leaks_in(result.out + result.err, secret) == [], secret
    assert (cli.workdir / ".patchwire-demo" / "patchwire.db").is_file()
    assert not cli.home.exists()


async def test_demo_refuses_once_together_with_for(cli: Cli) -> None:
    result = await cli("demo", "--once", "--for", "5")
    assert result.code == 2, result
    assert "--once" in result.flat_err


def test_the_demo_store_starts_fresh_and_is_held_by_one_demo_at_a_time(tmp_path: Path) -> None:
    home = tmp_path / ".patchwire-demo"
    home.mkdir()
    (home / "patchwire.db").write_bytes(b"an earlier demo")
    (home / "secret.key").write_text("kept")
    with demo_store(home):
        assert not (home / "patchwire.db").exists()
        assert (home / "secret.key").read_text() == "kept"
        assert (home / ".gitignore").read_text().splitlines()[-1] == "*"
        with pytest.raises(ConfigError, match="another `patchwire demo` is running"), \
                demo_store(home):
            pass
    with demo_store(home):  # released when the first one ended
        pass


def test_demo_settings_ignore_the_users_environment_and_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATCHWIRE_HOME", str(tmp_path / "mine"))
    monkeypatch.setenv("PATCHWIRE_DATABASE_URL", "postgresql://user:pass@db.example/prod")
    monkeypatch.setenv("PATCHWIRE_SECRET_KEY", "not-for-the-demo")
    settings = demo_settings(tmp_path / ".patchwire-demo")
    assert settings.home == tmp_path / ".patchwire-demo"
    assert settings.database_url is None and settings.secret_key is None
    assert settings.effective_database_url.endswith(".patchwire-demo/patchwire.db")
    assert settings.flow_paths == () and settings.sync_paths == ()
    assert settings.connector_paths == ()


def test_the_demo_port_falls_back_to_a_free_one_only_when_none_was_asked_for() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        with listen(None, busy) as fallback:
            assert fallback.getsockname()[0] == "127.0.0.1"
            assert fallback.getsockname()[1] not in (0, busy)
        with pytest.raises(ConfigError, match=f"127.0.0.1:{busy}"):
            listen(busy, 8700)
    with listen(0, 8700) as anywhere:
        assert anywhere.getsockname()[0] == "127.0.0.1"


@pytest.mark.parametrize("api", ["shop", "payments", "helpdesk", "calendar"])
async def test_a_sandbox_webhook_is_handed_to_the_source_of_the_api_that_signed_it(
    api: str,
) -> None:
    body = b'{"id": "evt_1", "type": "x"}'
    headers = sign(Sandbox.webhook_scheme(api), SANDBOX_WEBHOOK_SECRETS[api], body,
                   timestamp=1_700_000_000, event_id="evt_1")
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:
        return {"type": "http.request", "body": body}

    async def send(message: Message) -> None:
        pass

    scope: Scope = {"type": "http", "method": "POST", "path": "/hooks/sandbox",
                    "raw_path": b"/hooks/sandbox",
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await SandboxHooks(app)(scope, receive, send)
    assert seen[0]["path"] == f"/hooks/{api}"
    assert seen[0]["raw_path"] == f"/hooks/{api}".encode()
    # other paths, and unsigned posts, are left alone (refused later as an unknown source)
    await SandboxHooks(app)({**scope, "path": "/hooks/shop"}, receive, send)
    await SandboxHooks(app)({**scope, "headers": []}, receive, send)
    assert [s["path"] for s in seen[1:]] == ["/hooks/shop", "/hooks/sandbox"]
