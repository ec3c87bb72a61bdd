"""Running flows from the command line: `flow run`, `runs list|show|retry|cancel|purge`,
`worker`, and `serve` picking up queued runs. The real command runs as a subprocess against
the sandbox on loopback, on SQLite in the test's own directory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import textwrap
from typing import Any

import aiohttp
import pytest

from patchwire.sandbox import Sandbox
from tests.support.cli import Cli, running
from tests.support.flows import FLOWS
from tests.support.sandboxes import add_order
from tests.support.settings import free_port

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

#: bound on a server or worker starting, finishing a run, and stopping
READY_TIMEOUT_S = 15.0


@pytest.fixture
async def flows_cli(cli: Cli, sandbox: Sandbox, canary: str) -> Cli:
    """``cli`` with the test flows in its ``flows/`` and the shop connection ``acme``."""
    folder = cli.workdir / "flows"
    folder.mkdir(exist_ok=True)
    for name, text in FLOWS.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    added = await cli("connection", "add", "shop", "--name", "acme", "--set",
                      f"sandbox_url={sandbox.url}", "--set-env", "api_key=SHOP_KEY",
                      env={"SHOP_KEY": canary})
    assert added.code == 0, added
    return cli


async def test_flow_run_with_wait_runs_the_flow_here_and_prints_its_output(
        flows_cli: Cli, sandbox: Sandbox) -> None:
    done = await flows_cli("flow", "run", "order_status", "--input", '{"order_id": "42"}',
                           "--wait")
    assert done.code == 0, done
    assert done.json() == {"order": "42", "status": sandbox.state.apis["shop"]  # type: ignore[attr-defined]
                           .orders["42"]["status"]}
    assert "succeeded" in done.flat_err and "1 step(s)" in done.flat_err

    listed = await flows_cli("runs", "list", "--json")
    [run] = listed.json()
    assert (run["flow"], run["status"], run["trigger"]) == ("order_status", "succeeded", "manual")
    shown = await flows_cli("runs", "show", run["id"], "--json")
    assert [(s["key"], s["status"]) for s in shown.json()["steps"]] == [("order", "succeeded")]
    assert shown.json()["steps"][0]["output"]["id"] == "42"


async def test_invalid_input_lists_every_problem_with_its_path_and_starts_nothing(
        flows_cli: Cli) -> None:
    bad, not_json, unknown = await flows_cli.all(
        ["flow", "run", "order_status", "--input", '{"order_id": 7, "extra": true}', "--wait"],
        ["flow", "run", "order_status", "--input", "{nope"],
        ["flow", "run", "no_such_flow", "--input", "{}"],
    )
    assert bad.code == 1, bad
    assert "2 problem(s) in the input" in bad.flat_err
    assert "$.order_id: 7 is not of type \"string\"" in bad.flat_err
    assert "$: Additional properties are not allowed ('extra' was unexpected)" in bad.flat_err
    assert not_json.code == 2 and "--input is not valid JSON" in not_json.flat_err
    assert unknown.code == 1 and "unknown flow 'no_such_flow'" in unknown.flat_err
    assert "order_status" in unknown.flat_err  # the known flows are named
    assert (await flows_cli("runs", "list", "--json")).json() == []


async def test_a_failing_flow_is_a_dead_letter_and_show_points_at_the_failing_step(
        flows_cli: Cli) -> None:
    failed = await flows_cli("flow", "run", "refuse", "--input", '{"who": "bob"}', "--wait")
    assert failed.code == 1, failed
    assert "failed" in failed.flat_err and "at step give_up" in failed.flat_err
    assert "refused: nothing to do for bob" in failed.flat_err
    ok = await flows_cli("flow", "run", "order_status", "--input", '{"order_id": "42"}',
                         "--wait")
    assert ok.code == 0, ok

    dead, table, everything = await flows_cli.all(
        ["runs", "list", "--dead", "--json"], ["runs", "list", "--dead"],
        ["runs", "list", "--since", "1h", "--json"])
    [run] = dead.json()
    assert (run["flow"], run["status"], run["dead_letter"]) == ("refuse", "failed", True)
    assert run["error"]["code"] == "refused"
    assert run["id"] in table.out and "nothing to do for bob" in table.flat_out
    assert len(everything.json()) == 2

    shown = await flows_cli("runs", "show", run["id"])
    assert shown.code == 0, shown
    assert "dead letter" in shown.flat_out
    lines = {line.split()[1]: line for line in shown.out.splitlines()
             if line.split()[1:2] in (["prepare"], ["give_up"])}
    assert "succeeded" in lines["prepare"]
    assert "failed" in lines["give_up"] and "refused" in lines["give_up"]


async def test_retry_resumes_at_the_failed_step_without_running_finished_steps_again(
        flows_cli: Cli, sandbox: Sandbox) -> None:
    failed = await flows_cli("flow", "run", "two_orders", "--input", '{"order_id": "9001"}',
                             "--wait", "--json")
    assert failed.code == 1, failed
    run = failed.json()
    assert run["status"] == "failed" and run["error"]["step"] == "missing"
    assert [(s["key"], s["status"]) for s in run["steps"]] == [
        ("known", "succeeded"), ("missing", "failed")]

    add_order(sandbox, "9001")  # the cause is fixed
    before = sandbox.stats.requests["shop"]
    retried = await flows_cli("runs", "retry", run["id"], "--wait")
    assert retried.code == 0, retried
    assert retried.json() == ["42", "9001"]
    # only the failed step ran again: one request, not two
    assert sandbox.stats.requests["shop"] == before + 1
    shown = (await flows_cli("runs", "show", run["id"], "--json")).json()
    assert (shown["status"], shown["attempt"]) == ("succeeded", 2)

    again = await flows_cli("runs", "retry", run["id"])
    assert again.code == 1 and "only failed or cancelled runs" in again.flat_err


async def test_retry_failed_queues_every_dead_letter_of_one_flow(flows_cli: Cli) -> None:
    await flows_cli.all(*[["flow", "run", "refuse", "--input", f'{{"who": "{w}"}}', "--wait"]
                          for w in ("a", "b")])
    ok = await flows_cli("flow", "run", "two_orders", "--input", '{"order_id": "404404"}',
                         "--wait")
    assert ok.code == 1, ok
    retried = await flows_cli("runs", "retry", "--failed", "--flow", "refuse", "--json")
    assert retried.code == 0, retried
    assert len(retried.json()["retried"]) == 2
    queued = (await flows_cli("runs", "list", "--status", "queued", "--json")).json()
    assert {r["flow"] for r in queued} == {"refuse"}
    assert {r["attempt"] for r in queued} == {2}
    usage = await flows_cli("runs", "retry")
    assert usage.code == 2 and "give a run ID or --failed" in usage.flat_err


async def test_a_waiting_run_can_be_cancelled_once(flows_cli: Cli) -> None:
    started = await flows_cli("flow", "run", "pause", "--wait", "--json")
    assert started.code == 0, started
    run = started.json()
    assert run["status"] == "waiting" and run["wake_at"]
    assert "waits until" in started.flat_err

    cancelled = await flows_cli("runs", "cancel", run["id"])
    assert cancelled.code == 0, cancelled
    shown = (await flows_cli("runs", "show", run["id"], "--json")).json()
    assert shown["status"] == "cancelled" and shown["error"]["code"] == "cancelled"
    twice, unknown = await flows_cli.all(["runs", "cancel", run["id"]],
                                         ["runs", "cancel", "nope"])
    assert twice.code == 1 and "only queued, running or waiting runs" in twice.flat_err
    assert unknown.code == 1 and "no run with id 'nope'" in unknown.flat_err


async def test_purge_deletes_finished_runs_older_than_the_given_age(flows_cli: Cli) -> None:
    await flows_cli("flow", "run", "refuse", "--input", "{}", "--wait")
    kept = await flows_cli("runs", "purge", "--older-than", "30d")
    assert kept.code == 0 and "deleted 0" in kept.out, kept
    gone = await flows_cli("runs", "purge", "--older-than", "0s")
    assert "deleted 1" in gone.out, gone
    assert (await flows_cli("runs", "list", "--json")).json() == []
    bad = await flows_cli("runs", "purge", "--older-than", "soon")
    assert bad.code == 2, bad


async def wait_for_status(cli: Cli, run_id: str, status: str) -> dict[str, Any]:
    """Poll `runs show` until the run has ``status`` (bounded)."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            shown = await cli("runs", "show", run_id, "--json")
            assert shown.code == 0, shown
            if shown.json()["status"] == status:
                return dict(shown.json())
            await asyncio.sleep(0.1)


async def test_a_queued_run_is_run_by_serve_and_shared_with_its_api(flows_cli: Cli) -> None:
    queued = await flows_cli("flow", "run", "order_status", "--input", '{"order_id": "42"}')
    assert queued.code == 0, queued
    run_id = queued.out.strip()
    assert "queued" in queued.flat_err
    assert (await flows_cli("runs", "show", run_id, "--json")).json()["status"] == "queued"

    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    async with (running(flows_cli, "serve", "--port", str(port)) as proc,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http):
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:  # until the server answers and its engine has run the run
                assert proc.returncode is None, "serve exited"
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"{base}/runs/{run_id}") as resp:
                        if resp.status == 200 and (await resp.json())["status"] == "succeeded":
                            break
                await asyncio.sleep(0.05)
        async with http.post(f"{base}/flows/pause/runs", json={"wait": True}) as resp:
            assert resp.status == 202, await resp.text()
            assert (await resp.json())["status"] == "waiting"
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT_S)
        assert proc.returncode == 0, err.decode()
        assert "Traceback" not in err.decode()
    shown = (await flows_cli("runs", "show", run_id, "--json")).json()
    assert shown["output"] == {"order": "42", "status": shown["steps"][0]["output"]["status"]}


async def test_the_worker_runs_queued_runs_and_stops_cleanly_on_sigterm(
        flows_cli: Cli) -> None:
    queued = await flows_cli("flow", "run", "refuse", "--input", '{"who": "w"}')
    run_id = queued.out.strip()
    async with running(flows_cli, "worker", "--concurrency", "4") as proc:
        shown = await wait_for_status(flows_cli, run_id, "failed")
        assert shown["error"]["code"] == "refused"
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT_S)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "worker" in text and "started" in text and "worker stopped" in text
    assert "Traceback" not in text
