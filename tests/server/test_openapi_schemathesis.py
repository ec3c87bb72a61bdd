"""schemathesis against the server's own OpenAPI document (``/api/v1/openapi.json``): no
request may get a 5xx, and no response may break the schema the document declares.

The app (every router, the flow engine, syncs, webhooks, deliveries) runs under uvicorn on
127.0.0.1 with a fresh SQLite store, seeded first through the API — connections to the
four sandbox APIs, runs in each state, a pending approval, a webhook source with inbox
events and rejections, a subscription with deliveries, synced records, a spare API key —
and schemathesis' generated path parameters use those ids half of the time (its
``dictionaries``), so the operations reach real rows instead of answering 404 to random
ids. The ``st`` CLI runs in a subprocess (its pytest plugin does not collect under this
pytest) with its state in ``tmp_path``: no ``.hypothesis``, ``.schemathesis`` or report
directory lands in the repository.

Nothing leaves the machine: for this test the upstream client and the delivery worker
connect to loopback only, so the invented hosts of schemathesis' subscriptions are refused
before any DNS lookup (creating them is tested as usual). Without ``st`` the test is
skipped, or fails when ``CI`` is set.

``PATCHWIRE_SCHEMATHESIS_SEED`` replays another seed (the default one keeps CI
reproducible); ``PATCHWIRE_SCHEMATHESIS_EXAMPLES`` raises the cases per operation.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.http._ssrf import DestinationRefused, GuardedConnector, literal_address
from patchwire.sandbox import (
    SANDBOX_CREDENTIALS,
    SANDBOX_WEBHOOK_SCHEMES,
    SANDBOX_WEBHOOK_SECRETS,
    ChaosSettings,
    Sandbox,
)
from patchwire.server import create_app
from patchwire.store.keys import KeyRepository
from patchwire.sync import SyncRegistry
from tests.support.flows import FLOWS
from tests.support.servers import serving
from tests.support.settings import local_settings

#: slow (schemathesis explores the whole API): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

#: bound on the schemathesis run (~25 s on 2 cores, the whole test ~30 s); fails past it
ST_TIMEOUT_S = 120.0
#: bound on each request schemathesis sends (a slower answer is a failure)
REQUEST_TIMEOUT_S = 20.0
#: bound on each seeding request, and on the seeded data settling
SEED_TIMEOUT_S = 15.0
#: cases per operation and phase (51 operations: ~2,500 requests)
MAX_EXAMPLES = int(os.environ.get("PATCHWIRE_SCHEMATHESIS_EXAMPLES", "25"))
SEED = int(os.environ.get("PATCHWIRE_SCHEMATHESIS_SEED", "20250611"))
#: what the issue asks: no 5xx, nothing that breaks the declared response schemas
CHECKS = "not_a_server_error,response_schema_conformance"
API = "/api/v1"


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} but CI is set: install '.[dev]'")
    pytest.skip(why)


def schemathesis_cli() -> str:
    """The ``st`` command of this interpreter's environment (else on PATH)."""
    beside = Path(sys.executable).parent
    for name in ("st", "schemathesis"):
        found = shutil.which(name, path=str(beside)) or shutil.which(name)
        if found:
            return found
    _missing("schemathesis is not installed (pip install -e '.[dev]')")
    raise AssertionError("unreachable")  # _missing skips or fails


def _loopback(host: str) -> bool:
    ip = literal_address(host.strip("[]"))
    return host == "localhost" if ip is None else ip.is_loopback


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream requests and deliveries connect to this machine only: any other host is
    refused before it is resolved, any other address before a socket is made. (Accepting
    URLs is unchanged: schemathesis' subscriptions to invented hosts are still created.)"""
    resolve_host = GuardedConnector._resolve_host
    make_socket = GuardedConnector._socket

    async def resolve_loopback(self: GuardedConnector, host: str, port: int,
                               traces: Any = None) -> Any:
        if not _loopback(host):
            raise DestinationRefused(host, None, "this test connects to 127.0.0.1 only")
        return await resolve_host(self, host, port, traces)

    def loopback_socket(self: GuardedConnector, addr_info: Any) -> socket.socket:
        address = addr_info[4][0]
        if not _loopback(address):
            raise DestinationRefused(address, address, "this test connects to 127.0.0.1 only")
        return make_socket(self, addr_info)

    monkeypatch.setattr(GuardedConnector, "_resolve_host", resolve_loopback)
    monkeypatch.setattr(GuardedConnector, "_socket", loopback_socket)


@dataclass
class Seeded:
    """The running server, its admin key and the ids schemathesis should try."""

    url: str
    admin_key: str
    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, values: Iterable[Any]) -> None:
        kept = self.ids.setdefault(kind, [])
        kept.extend(str(v) for v in values if str(v) not in kept)


class Client:
    def __init__(self, url: str, http: aiohttp.ClientSession, key: str) -> None:
        self.url = url
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    async def __call__(self, method: str, path: str, body: Any = None,
                       expect: Iterable[int] = (200, 201, 202)) -> Any:
        async with self.http.request(method, self.url + API + path, json=body,
                                     headers=self.headers) as resp:
            text = await resp.text()
            assert resp.status in tuple(expect), f"{method} {path}: {resp.status} {text}"
            return json.loads(text) if text else None


async def seed(api: Client, sandbox: Sandbox, seeded: Seeded) -> None:
    """Data for every family of routes, made through the API itself."""
    await api("POST", "/webhook-sources", {
        "name": "shop", "scheme": SANDBOX_WEBHOOK_SCHEMES["shop"].model_dump(
            mode="json", exclude_defaults=True),
        "secrets": [SANDBOX_WEBHOOK_SECRETS["shop"]]})
    # the sandbox's shop events land in the inbox; the other APIs sign differently, so
    # theirs are recorded as rejections
    sandbox.set_webhook_url(f"{api.url}/hooks/shop")
    # deliveries of run events, failing (the sandbox has no such route)
    await api("POST", "/subscriptions", {"url": f"{sandbox.url}/_sandbox/no-hooks-here",
                                         "event_types": ["*"], "description": "seeded"})
    for flow, data in [("order_status", {"order_id": "42"}),
                       ("two_orders", {"order_id": "777777"}),
                       ("refuse", {"who": "schemathesis"}), ("pause", {})]:
        await api("POST", f"/flows/{flow}/runs", {"input": data, "wait": True,
                                                  "timeout": SEED_TIMEOUT_S})
    await api("POST", "/actions/shop.get_order/call", {"input": {"order_id": "42"}})
    orders: dict[str, Any] = sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    first, second = [o for o, row in orders.items() if row["status"] == "pending"][:2]
    # a change in the shop: its webhook comes to /hooks/shop
    await api("POST", "/actions/shop.update_order_status/call",
              {"input": {"order_id": first, "status": "cancelled"}})
    pending = await api("POST", "/tools/shop_update_order_status/call",
                        {"arguments": {"order_id": second, "status": "cancelled"},
                         "session_id": "seed"})
    assert pending["status"] == "pending_approval", pending
    await api("POST", "/syncs/shop_orders/run", {})
    spare = await api("POST", "/keys", {"name": "spare", "scopes": ["read"]})
    seeded.add("key_id", [spare["id"]])  # never the admin key: revoking it ends the run
    await sandbox.flush_webhooks(SEED_TIMEOUT_S)

    seeded.add("run_id", [r["id"] for r in await api("GET", "/runs")])
    seeded.add("approval_id", [a["id"] for a in await api("GET", "/approvals?status=all")])
    seeded.add("event_id", [e["id"] for e in await api("GET", "/webhooks/inbox")])
    seeded.add("subscription_id", [s["id"] for s in await api("GET", "/subscriptions")])
    seeded.add("delivery_id", [d["id"] for d in await api("GET", "/deliveries")])
    seeded.add("flow_id", [f["id"] for f in await api("GET", "/flows")])
    seeded.add("sync_id", [s["id"] for s in await api("GET", "/syncs")])
    seeded.add("connector", [c["name"] for c in await api("GET", "/connectors")])
    seeded.add("connection", [c["name"] for c in await api("GET", "/connections")])
    seeded.add("tool", [t["name"] for t in await api("GET", "/tools")])
    seeded.add("action", ["shop.get_order", "shop.list_orders", "helpdesk.list_tickets",
                          "calendar.list_appointments", "payments.list_charges"])
    seeded.add("source", ["shop"])
    records = (await api("GET", "/records?model=order"))["data"]
    seeded.add("model", {r["model"] for r in records})
    seeded.add("record_id", [r["id"] for r in records])
    for kind in ("run_id", "approval_id", "event_id", "subscription_id", "delivery_id",
                 "record_id"):
        assert seeded.ids.get(kind), f"seeding made no {kind}: {seeded.ids}"


# -- schemathesis' configuration (TOML) ----------------------------------------------------

#: path parameter -> the seeded ids it draws from, for every operation having it
SHARED_PARAMETERS = {"run_id": "run_id", "approval_id": "approval_id", "event_id": "event_id",
                     "subscription_id": "subscription_id", "delivery_id": "delivery_id",
                     "flow_id": "flow_id", "sync_id": "sync_id",
                     "action": "action", "model": "model", "record_id": "record_id",
                     "connection": "connection"}
#: ``{name}`` means a different thing under each prefix
NAME_PARAMETER = {"connectors": "connector", "connections": "connection", "tools": "tool",
                  "webhook-sources": "source"}


def _toml(value: Any) -> str:
    """A TOML value (JSON's strings, numbers and booleans are TOML's too)."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def schemathesis_config(seeded: Seeded, state: Path) -> str:
    """Everything but the checks: the run's bounds, the admin key, where its state goes
    (``state``, never the working tree) and the seeded ids for path parameters."""
    half = 0.5  # of the cases: a seeded id; the others are schemathesis' own

    def bind(kind: str) -> dict[str, Any]:
        return {"dictionary": kind, "probability": half}

    lines = [
        f"seed = {SEED}",
        f"request-timeout = {REQUEST_TIMEOUT_S}",
        f"headers = {_toml({'Authorization': f'Bearer {seeded.admin_key}'})}",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        'database = "none"',
        "[cache]",
        "enabled = false",
        f"directory = {_toml(str(state / 'cache'))}",
        "[reports]",
        f"directory = {_toml(str(state / 'reports'))}",
    ]
    for kind, values in sorted(seeded.ids.items()):
        lines += [f"[dictionaries.{kind}]", f"values = {_toml(values)}"]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {_toml(bind(kind))}'
              for name, kind in SHARED_PARAMETERS.items() if kind in seeded.ids]
    lines.append(f'"query.model" = {_toml(bind("model"))}')
    # schemathesis gathers ids from answers (the key list too): revoking may only ever
    # reach the spare key, never the admin key it runs with
    lines += ["[[operations]]", f"include-path-regex = {_toml(f'^{API}/keys/.+/revoke$')}",
              f"parameters = {_toml({'path.key_id': seeded.ids['key_id'][0]})}"]
    for prefix, kind in NAME_PARAMETER.items():
        lines += ["[[operations]]", f"include-path-regex = {_toml(f'^{API}/{prefix}/')}",
                  f"parameters = {_toml({'path.name': bind(kind)})}"]
    return "\n".join(lines) + "\n"


# -- the test ----------------------------------------------------------------------------------


@pytest.fixture
async def seeded(tmp_path: Path, loopback_only: None) -> AsyncIterator[Seeded]:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name, text in FLOWS.items():
        (flows / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    settings = local_settings(tmp_path / "home", flow_paths=(flows,))
    chaos = ChaosSettings(rate_limit_per_minute=1_000_000)  # schemathesis calls a lot
    async with Sandbox(chaos=chaos) as sandbox:
        async with Patchwire(settings) as setup:
            for api_name, credentials in SANDBOX_CREDENTIALS.items():
                await setup.add_connection(api_name, f"demo-{api_name}",
                                           {"sandbox_url": sandbox.url, **credentials})
            _, admin = await KeyRepository(setup.store).create("schemathesis", ["admin"])
        app = create_app(Patchwire(settings), engine=True,
                         syncs=SyncRegistry.load(builtins=True))
        async with (
            serving(app) as url,
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SEED_TIMEOUT_S)) as http,
        ):
            result = Seeded(url, admin)
            await seed(Client(url, http, admin), sandbox, result)
            yield result
            sandbox.set_webhook_url(None)


async def test_schemathesis_finds_no_server_error_and_no_response_breaking_the_schema(
    seeded: Seeded, tmp_path: Path,
) -> None:
    st = schemathesis_cli()
    state = tmp_path / "schemathesis"
    work = state / "cwd"  # its working directory: whatever it writes by default lands here
    work.mkdir(parents=True)
    config = state / "schemathesis.toml"
    config.write_text(schemathesis_config(seeded, state), encoding="utf-8")
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(state / "hypothesis"),
           "NO_COLOR": "1", "COLUMNS": "120"}
    proc = await asyncio.create_subprocess_exec(
        st, "--config-file", str(config), "run", f"{seeded.url}{API}/openapi.json",
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--no-color",
        cwd=work, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), ST_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"schemathesis ran past {ST_TIMEOUT_S:.0f}s:\n{out.decode(errors='replace')}")
    text = out.decode(errors="replace")
    print(text)  # the figures, in the test's output (pytest -s, or -rA)
    assert proc.returncode == 0, f"schemathesis found failures:\n{text}"
    # and it did test: every operation of the document, a fair number of cases
    operations = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", text)
    cases = re.search(r"(\d+) generated, (\d+) passed", text)
    assert operations and cases, f"no summary in schemathesis' output:\n{text}"
    selected, total, tested = map(int, operations.groups())
    assert selected == total == tested >= 50, operations.group(0)
    assert int(cases.group(1)) >= 20 * tested, cases.group(0)


# -- what schemathesis found, pinned ---------------------------------------------------------


async def test_a_rotation_grace_beyond_a_year_is_refused_and_the_source_stays_readable(
    tmp_path: Path,
) -> None:
    # found by schemathesis (seed 3): a grace of 1e300 s was stored as an expiry no
    # timestamp can hold, and the source answered 500 from then on, its listing too
    app = create_app(Patchwire(local_settings(tmp_path / "home")))
    async with serving(app) as url, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=SEED_TIMEOUT_S)) as http:
        async with http.post(f"{url}{API}/webhook-sources", json={
                "name": "shop", "scheme": {"scheme": "github"}, "secrets": ["s1"]}) as resp:
            assert resp.status == 201, await resp.text()
        for grace in (1e300, "inf", 365 * 86_400 + 1, -1):
            async with http.post(f"{url}{API}/webhook-sources/shop/rotate",
                                 json={"secret": "s2", "grace_s": grace}) as resp:
                assert resp.status == 422, (grace, await resp.text())
                assert resp.content_type == "application/problem+json"
                problem = await resp.json()
            assert [p["path"] for p in problem["problems"]] == ["$.grace_s"]
        async with http.post(f"{url}{API}/webhook-sources/shop/rotate",
                             json={"secret": "s2", "grace_s": 365 * 86_400}) as resp:
            assert resp.status == 200, await resp.text()
            rotated = await resp.json()
        assert [s["expires_at"] is None for s in rotated["secrets"]] == [True, False]
        for path in ("/webhook-sources", "/webhook-sources/shop"):
            async with http.get(f"{url}{API}{path}") as resp:
                assert resp.status == 200, await resp.text()
