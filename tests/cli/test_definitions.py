"""Definitions that do not load stop `serve` and `worker` at start (exit 2, every problem as
``file:line``); `patchwire check` lists the same; a running server or worker reloads its
definitions on SIGHUP. Real subprocesses; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.support.cli import Cli, running
from tests.support.settings import free_port

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

#: a server or worker answering, or logging a reload
READY_TIMEOUT_S = 15.0

GOOD = "id: {id}\nsteps:\n  - id: greet\n    transform: '\"hello\"'\n"
BROKEN_SHAPE = "id: broken\nsteps:\n  - id: x\n    transfrom: '1'\n"
BROKEN_REFERENCE = "id: unknown\nsteps:\n  - id: first\n    transform: '1'\n" \
                   "  - id: x\n    call: shop.no_such_action\n"
BROKEN_YAML = "id: nested\nsteps: [\n"


def _broken_project(cli: Cli) -> dict[str, Path]:
    """A good flow, three flow files that do not load (shape, reference, YAML) and a
    sync naming an unknown action."""
    flows, syncs = cli.workdir / "flows", cli.workdir / "syncs"
    flows.mkdir(exist_ok=True)
    syncs.mkdir(exist_ok=True)
    files = {"good": flows / "good.yaml", "shape": flows / "a_shape.yaml",
             "reference": flows / "b_reference.yaml", "yaml": flows / "c_yaml.yaml"}
    files["good"].write_text(GOOD.format(id="good"), encoding="utf-8")
    files["shape"].write_text(BROKEN_SHAPE, encoding="utf-8")
    files["reference"].write_text(BROKEN_REFERENCE, encoding="utf-8")
    files["yaml"].write_text(BROKEN_YAML, encoding="utf-8")
    return files


def _problem_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("  ")]


def _assert_every_problem(text: str) -> None:
    lines = _problem_lines(text)
    assert len(lines) == 3, text
    assert lines[0].startswith("flows/a_shape.yaml:4 at steps[0].transfrom: unknown step kind")
    assert lines[1].startswith(
        "flows/b_reference.yaml:6 at steps[1].call: connector 'shop' has no action "
        "'no_such_action'")
    assert lines[2].startswith("flows/c_yaml.yaml:3: invalid YAML")


async def test_serve_and_worker_refuse_to_start_listing_every_problem_of_every_file(
        cli: Cli) -> None:
    _broken_project(cli)

    serve, worker = await cli.all(["serve", "--port", str(free_port())], ["worker"])

    for result, command in ((serve, "serve"), (worker, "worker")):
        assert result.code == 2, result
        assert f"3 problem(s) in the definitions; `patchwire {command}` does not start" \
            in result.flat_err
        _assert_every_problem(result.err)
        assert "Traceback" not in result.err
    assert "starting" not in serve.out


async def test_check_lists_every_problem_and_passes_once_they_are_fixed(cli: Cli) -> None:
    files = _broken_project(cli)
    (cli.workdir / "syncs" / "orders.yaml").write_text(
        "id: orders\nmodel: order\naction: shop.list_ordrs\nschedule: {cron: '*/5 * * * *'}\n"
        "record_id: id\n", encoding="utf-8")

    bad = await cli("check")

    assert bad.code == 1, bad
    assert "4 problem(s) found" in bad.flat_err
    assert any(line.startswith("syncs/orders.yaml") and "list_ordrs" in line
               for line in _problem_lines(bad.err)), bad
    for name in ("shape", "reference", "yaml"):
        files[name].unlink()
    (cli.workdir / "syncs" / "orders.yaml").unlink()
    (cli.workdir / "patchwire.toml").write_text("[patchwire]\nport = 'eighty'\n",
                                                encoding="utf-8")
    settings_problem = await cli("check")
    assert settings_problem.code == 1, settings_problem
    assert "settings: port must be an integer, got 'eighty'" in settings_problem.flat_err
    (cli.workdir / "patchwire.toml").unlink()

    good = await cli("check")

    assert good.code == 0, good
    assert "ok: settings, 4 connector(s), 1 flow(s), 0 sync(s) valid" in good.flat_out
    assert "Traceback" not in bad.err + settings_problem.err + good.err


async def _until_flows(http: aiohttp.ClientSession, base: str, proc: asyncio.subprocess.Process,
                       wanted: set[str]) -> None:
    """Poll the API until it lists ``wanted`` flows (bounded by the caller's timeout)."""
    while True:
        assert proc.returncode is None, "serve exited"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(f"{base}/api/v1/flows") as resp:
                if resp.status == 200 and {f["id"] for f in await resp.json()} == wanted:
                    return
        await asyncio.sleep(0.05)


async def test_sighup_reloads_a_running_server_and_keeps_the_old_definitions_on_a_problem(
        cli: Cli) -> None:
    flows = cli.workdir / "flows"
    flows.mkdir()
    (flows / "first.yaml").write_text(GOOD.format(id="first"), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with (running(cli, "serve", "--port", str(port)) as proc,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http):
        async with asyncio.timeout(READY_TIMEOUT_S):
            await _until_flows(http, base, proc, {"first"})
        (flows / "second.yaml").write_text(GOOD.format(id="second"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(READY_TIMEOUT_S):
            await _until_flows(http, base, proc, {"first", "second"})
        # a file that does not load: the reload is refused, the server keeps serving both
        (flows / "third.yaml").write_text(BROKEN_SHAPE, encoding="utf-8")
        (flows / "second.yaml").unlink()
        proc.send_signal(signal.SIGHUP)
        (flows / "fourth.yaml").write_text(GOOD.format(id="fourth"), encoding="utf-8")
        async with http.post(f"{base}/api/v1/definitions/reload") as resp:
            assert resp.status == 422, await resp.text()  # still refused, through the API
        async with asyncio.timeout(READY_TIMEOUT_S):
            await _until_flows(http, base, proc, {"first", "second"})
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT_S)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "definitions reloaded: added flows: second" in log
    assert "definitions not reloaded, the ones in force stay: 1 problem(s)" in log
    assert "third.yaml:4 at steps[0].transfrom" in log
    assert "Traceback" not in log


async def test_sighup_reloads_a_running_worker(cli: Cli) -> None:
    flows = cli.workdir / "flows"
    flows.mkdir()
    (flows / "first.yaml").write_text(GOOD.format(id="first"), encoding="utf-8")
    async with running(cli, "worker") as proc:
        assert proc.stderr is not None
        stderr = proc.stderr

        async def line_with(text: str) -> str:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while True:
                    line = (await stderr.readline()).decode()
                    assert line, f"the worker exited before logging {text!r}"
                    if text in line:
                        return line

        assert "1 flow(s)" in await line_with("started")
        (flows / "second.yaml").write_text(GOOD.format(id="second"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        reloaded = await line_with("definitions reloaded")
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), READY_TIMEOUT_S)
    assert "added flows: second" in reloaded
    assert proc.returncode == 0
