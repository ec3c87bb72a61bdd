"""The real ``patchwire`` command, run as a subprocess against the sandbox on loopback.

Each test gets its own home (store, key file) and connector directory under ``tmp_path``.
Independent commands of a scenario run concurrently to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from importlib import resources
from pathlib import Path

import aiohttp
import jsonschema
import pytest
import yaml

from patchwire.sandbox import Sandbox
from tests.support.cli import Cli, patchwire_command
from tests.support.conformance import conformance_path
from tests.support.leaks import leaks_in, leaks_in_database, leaks_in_files
from tests.support.settings import free_port
from tests.support.store import postgres_url_or_skip, reset_postgres

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

PETSTORE = conformance_path("openapi", "petstore3-openapi.yaml")
BUILTIN_CONNECTORS = {"calendar", "helpdesk", "payments", "shop"}
READY_TIMEOUT_S = 10.0


def builtin_connector_file(name: str) -> Path:
    return Path(str(resources.files("patchwire.connectors") / "builtin" / f"{name}.yaml"))


async def test_a_connection_added_from_an_env_var_serves_calls_and_never_reveals_its_key(
    cli: Cli, sandbox: Sandbox, canary: str
) -> None:
    added = await cli("connection", "add", "shop", "--name", "acme",
                      "--set", f"sandbox_url={sandbox.url}", "--set-env", "api_key=SHOP_KEY",
                      env={"SHOP_KEY": canary})
    assert added.code == 0, added
    assert "added connection acme for shop" in added.flat_out

    listed, table, order, missing, page, from_input, invalid = await cli.all(
        ["connection", "list", "--json"],
        ["connection", "list"],
        ["call", "shop.get_order", "order_id=42", "--connection", "acme"],
        ["call", "shop.get_order", "order_id=999999"],
        ["call", "shop.list_orders", "limit:=2"],
        ["call", "shop.get_order", "--input", '{"order_id": "42"}'],
        ["call", "shop.get_order"],
    )

    assert listed.code == 0, listed
    [connection] = listed.json()
    assert connection["name"] == "acme"
    assert connection["connector"] == "shop"
    assert connection["settings"] == {"sandbox_url": sandbox.url}
    assert connection["secrets_set"] == ["api_key"]
    assert "api_key" not in connection["settings"]

    assert table.code == 0, table
    assert "acme" in table.out and "api_key (set)" in table.out

    assert order.code == 0, order
    assert order.json()["id"] == "42"
    assert order.json()["line_items"]
    assert order.err == ""

    assert missing.code == 1, missing
    assert missing.out == ""
    assert "not_found" in missing.flat_err
    assert "No order 999999" in missing.flat_err

    assert page.code == 0, page
    assert len(page.json()["data"]) == 2

    assert from_input.code == 0, from_input
    assert from_input.json() == order.json()

    assert invalid.code == 1, invalid
    assert "invalid_input" in invalid.flat_err
    assert "$.order_id" in invalid.flat_err

    log, log_table = await cli.all(["calls", "--json"], ["calls"])
    assert log.code == 0, log
    records = log.json()
    assert sorted((r["action"], r["status"], str(r["http_status"])) for r in records) == [
        ("shop.get_order", "error", "404"),
        ("shop.get_order", "error", "None"),
        ("shop.get_order", "ok", "200"),
        ("shop.get_order", "ok", "200"),
        ("shop.list_orders", "ok", "200"),
    ]
    assert {r["connection"] for r in records} == {"acme"}
    assert {r["error_class"] for r in records} == {None, "not_found", "invalid_input"}
    assert log_table.code == 0, log_table
    assert log_table.out.count("shop.get_order") == 4

    # The key went in through the environment only, and nothing shows or stores it in clear.
    assert all(canary not in " ".join(r.args) for r in cli.runs)
    assert leaks_in(cli.transcript(), canary) == []
    store_files = {p.name for p in cli.home.iterdir()}
    assert "patchwire.db" in store_files, store_files  # -wal and -shm too while open
    assert leaks_in_files(cli.workdir, canary) == {}
    assert await leaks_in_database(f"sqlite+aiosqlite:///{cli.home / 'patchwire.db'}",
                                   canary) == {}

    removed = await cli("connection", "remove", "acme", "--yes")
    assert removed.code == 0, removed
    shown, call_after = await cli.all(["connection", "show", "acme"],
                                      ["call", "shop.get_order", "order_id=42"])
    assert shown.code == 1, shown
    assert "no connection named 'acme'" in shown.flat_err
    assert call_after.code == 1, call_after
    assert "no connection for connector 'shop'" in call_after.flat_err
    assert leaks_in_files(cli.workdir, canary) == {}


@pytest.mark.postgres
async def test_with_a_database_url_the_cli_keeps_connections_and_calls_in_postgresql(
    tmp_path: Path, sandbox: Sandbox, canary: str
) -> None:
    url = postgres_url_or_skip()
    await reset_postgres(url)
    cli = Cli(tmp_path, database_url=url)

    added = await cli("connection", "add", "shop", "--name", "acme", "--set",
                      f"sandbox_url={sandbox.url}", "--set-env", "api_key=SHOP_KEY",
                      env={"SHOP_KEY": canary})
    assert added.code == 0, added
    order, missing = await cli.all(["call", "shop.get_order", "order_id=42"],
                                   ["call", "shop.get_order", "order_id=999999"])
    assert order.code == 0, order
    assert order.json()["id"] == "42"
    assert missing.code == 1, missing
    log = await cli("calls", "--json")
    assert sorted((r["status"], r["http_status"]) for r in log.json()) == [
        ("error", 404), ("ok", 200)]

    assert not (cli.home / "patchwire.db").exists()  # nothing went to the SQLite default
    assert leaks_in(cli.transcript(), canary) == []
    assert await leaks_in_database(url, canary) == {}


async def test_a_key_piped_to_set_stdin_is_stored_and_used_without_appearing_in_argv(
    cli: Cli, sandbox: Sandbox, canary: str
) -> None:
    added, no_line = await asyncio.gather(
        cli("connection", "add", "shop", "--name", "piped", "--set",
            f"sandbox_url={sandbox.url}", "--set-stdin", "api_key", stdin=canary + "\n"),
        cli("connection", "add", "shop", "--name", "empty", "--set-stdin", "api_key", stdin=""),
    )
    assert added.code == 0, added
    assert no_line.code == 2, no_line
    assert "--set-stdin: expected 1 line(s) on standard input (api_key), got 0" in no_line.flat_err

    # The sandbox accepts only the canary, so a successful call proves it was stored.
    order = await cli("call", "shop.get_order", "order_id=7")  # the connector's only connection
    assert order.code == 0, order
    assert order.json()["id"] == "7"

    updated = await cli("connection", "update", "piped", "--set-stdin", "api_key",
                        stdin="not-the-key\n")
    assert updated.code == 0, updated
    rejected = await cli("call", "shop.get_order", "order_id=7")
    assert rejected.code == 1, rejected
    assert "auth_error" in rejected.flat_err
    assert "HTTP 401" in rejected.flat_err

    assert all(canary not in " ".join(r.args) for r in cli.runs)
    assert leaks_in(cli.transcript(), canary) == []
    assert leaks_in_files(cli.home, canary) == {}


async def test_unknown_connector_action_or_connection_exits_1_naming_what_exists(
    cli: Cli, sandbox: Sandbox
) -> None:
    added = await cli("connection", "add", "shop", "--name", "acme",
                      "--set", f"sandbox_url={sandbox.url}", "--set-stdin", "api_key",
                      stdin="whatever\n")
    assert added.code == 0, added

    connector, action, connection, show = await cli.all(
        ["call", "nope.get_order", "order_id=1"],
        ["call", "shop.nope"],
        ["call", "shop.get_order", "order_id=1", "--connection", "nope"],
        ["connector", "show", "nope"],
    )
    for result in (connector, action, connection, show):
        assert result.code == 1, result
        assert result.out == ""
        assert "Traceback" not in result.err
    assert "unknown connector 'nope' (known: calendar, helpdesk, payments, shop)" \
        in connector.flat_err
    assert "unknown connector 'nope'" in show.flat_err
    assert "connector 'shop' has no action 'nope'" in action.flat_err
    assert "get_order" in action.flat_err and "list_orders" in action.flat_err
    assert "no connection named 'nope'" in connection.flat_err
    assert "acme" in connection.flat_err  # the connections that do exist for shop


async def test_connector_list_show_and_schema_describe_the_built_in_connectors(cli: Cli) -> None:
    listed, table, shown, shown_json, schema = await cli.all(
        ["connector", "list", "--json"],
        ["connector", "list"],
        ["connector", "show", "shop"],
        ["connector", "show", "shop", "--json"],
        ["connector", "schema"],
    )
    for result in (listed, table, shown, shown_json, schema):
        assert result.code == 0, result

    assert {c["name"] for c in listed.json()} == BUILTIN_CONNECTORS
    assert {c["source"] for c in listed.json()} == {
        f"builtin/{n}.yaml" for n in BUILTIN_CONNECTORS}
    for name in BUILTIN_CONNECTORS:
        assert name in table.out

    assert "shop.get_order" in shown.out and "api_key" in shown.out
    assert shown_json.json()["name"] == "shop"
    assert "get_order" in shown_json.json()["actions"]

    document = schema.json()
    validator_class = jsonschema.validators.validator_for(document)
    validator_class.check_schema(document)
    validator = validator_class(document)
    for name in BUILTIN_CONNECTORS:
        spec = yaml.safe_load(builtin_connector_file(name).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(spec)) == [], name
    assert list(validator.iter_errors({"name": "x", "base_url": 5})) != []


async def test_connector_check_prints_file_line_path_problems_and_exits_1(cli: Cli) -> None:
    (cli.workdir / "bad.yaml").write_text(
        "name: bad\n"
        "base_url: 5\n"
        "actions:\n"
        "  x:\n"
        "    request: {method: FETCH, path: /x}\n", encoding="utf-8")
    (cli.workdir / "tabs.yaml").write_text("name: x\n\tbase_url: 1\n", encoding="utf-8")
    good = builtin_connector_file("shop")

    bad, fine = await cli.all(["connector", "check", "bad.yaml", "tabs.yaml"],
                              ["connector", "check", str(good)])

    assert bad.code == 1, bad
    lines = bad.err.splitlines()
    assert "bad.yaml:2 at base_url: Input should be a valid string" in lines
    assert any(re.fullmatch(r"bad\.yaml:5 at actions\.x\.request\.method: .*'GET'.*", line)
               for line in lines), bad
    assert any(re.fullmatch(r"tabs\.yaml:2: invalid YAML: .*tab.*", line) for line in lines), bad
    assert "3 problem(s) found" in bad.flat_err

    assert fine.code == 0, fine
    assert "ok: 1 connector(s) valid" in fine.flat_out
    assert fine.err == ""


async def test_an_imported_openapi_document_becomes_a_connector_that_check_accepts(
    cli: Cli,
) -> None:
    target = cli.connectors / "petstore.yaml"

    imported = await cli("connector", "import", str(PETSTORE), "-o", str(target))

    assert imported.code == 0, imported
    assert target.is_file()
    name = yaml.safe_load(target.read_text(encoding="utf-8"))["name"]
    assert f"imported {name}: " in imported.flat_err
    assert "skipped components.securitySchemes.petstore_auth" in imported.flat_err

    checked, check_all, listed = await cli.all(
        ["connector", "check", str(target)], ["connector", "check"], ["connector", "list", "--json"])
    assert checked.code == 0, checked
    assert "ok: 1 connector(s) valid" in checked.flat_out
    assert check_all.code == 0, check_all
    assert f"ok: {len(BUILTIN_CONNECTORS) + 1} connector(s) valid" in check_all.flat_out
    sources = {c["name"]: c for c in listed.json()}
    assert sources[name]["actions"] > 10
    assert sources[name]["source"].endswith("petstore.yaml")


async def test_serve_and_sandbox_refuse_to_bind_a_non_loopback_address(cli: Cli) -> None:
    serve_any, serve_v6, sandbox_any = await cli.all(
        ["serve", "--host", "0.0.0.0"], ["serve", "--host", "::"],
        ["sandbox", "--host", "0.0.0.0"])
    for result, host in ((serve_any, "0.0.0.0"), (serve_v6, "::")):
        assert result.code == 2, result
        assert f"refusing to bind {host}" in result.flat_err
        assert "loopback" in result.flat_err
    assert sandbox_any.code == 2, sandbox_any
    assert "loopback only, not 0.0.0.0" in sandbox_any.flat_err


async def test_serve_answers_calls_over_http_and_stops_on_interrupt(
    cli: Cli, sandbox: Sandbox, canary: str
) -> None:
    added = await cli("connection", "add", "shop", "--name", "acme", "--set",
                      f"sandbox_url={sandbox.url}", "--set-stdin", "api_key", stdin=canary)
    assert added.code == 0, added
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *patchwire_command(), "serve", "--port", str(port), cwd=cli.workdir, env=cli.env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while True:  # bounded by the timeout: poll until the port answers
                    assert proc.returncode is None, "serve exited before answering"
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with http.get(f"{base}/healthz") as resp:
                            if resp.status == 200:
                                break
                    await asyncio.sleep(0.05)
            async with http.post(f"{base}/api/v1/actions/shop.get_order/call",
                                 json={"input": {"order_id": "42"}}) as resp:
                assert resp.status == 200, await resp.text()
                body = await resp.json()
            assert body["result"]["id"] == "42"
            async with http.get(f"{base}/api/v1/connections") as resp:
                assert leaks_in(await resp.read(), canary) == []
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert f"Patchwire API starting on http://127.0.0.1:{port}/api/v1" in " ".join(out.decode().split())
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert leaks_in(out + err, canary) == []
    calls = json.loads((await cli("calls", "--json")).out)
    assert [(c["action"], c["status"]) for c in calls] == [("shop.get_order", "ok")]
