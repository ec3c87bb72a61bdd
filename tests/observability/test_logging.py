"""Structured logs: the JSON shape, request and run ids from the context, and secrets kept
out — a canary credential sent through real calls never appears in the log output."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire.errors import CallError, ConfigError
from patchwire.observability import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    log_context,
    redact_text,
)
from patchwire.observability._logging import log_format_from_env
from patchwire.observability._tracing import observed_run
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.tools import ToolInvoker
from tests.support.leaks import leaks_in
from tests.support.sandboxes import connected
from tests.support.servers import serving


class Captured:
    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    """Every log line of the process, at DEBUG, as JSON."""
    captured = Captured(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.DEBUG)
    access = logging.getLogger("patchwire.access")
    access_disabled = access.disabled
    access.disabled = False
    yield captured
    access.disabled = access_disabled
    root.removeHandler(captured.handler)
    root.setLevel(level)


def test_a_json_line_has_time_level_logger_message_ids_and_extras(json_logs: Captured) -> None:
    log = logging.getLogger("patchwire.test")
    with log_context(request_id="req-1", run_id="run-1"):
        log.info("hello %s", "world", extra={"step": "order", "attempts": 2})
    log.warning("outside")
    inside, outside = [line for line in json_logs.lines() if line["logger"] == "patchwire.test"]
    assert inside["message"] == "hello world"
    assert inside["level"] == "info"
    assert inside["request_id"] == "req-1" and inside["run_id"] == "run-1"
    assert inside["step"] == "order" and inside["attempts"] == 2
    assert inside["ts"].endswith("+00:00")
    assert "request_id" not in outside and "run_id" not in outside


def test_exceptions_and_secret_looking_fields_are_redacted(json_logs: Captured) -> None:
    log = logging.getLogger("patchwire.test")
    token = "tok_" + "z" * 30
    try:
        raise RuntimeError(f"upstream said: Authorization: Bearer {token}")
    except RuntimeError:
        log.exception("failed with api_key={%s}", token, extra={
            "password": "hunter2-long", "headers": {"Authorization": f"Bearer {token}"},
            "key": "pwk_0123456789ab_" + "s" * 43})
    assert token not in json_logs.text and "hunter2" not in json_logs.text
    assert "s" * 43 not in json_logs.text
    [line] = [line for line in json_logs.lines() if line["logger"] == "patchwire.test"]
    assert line["password"] == "***"
    assert line["headers"] == {"Authorization": "***"}
    assert "RuntimeError" in line["exception"]


async def test_a_canary_secret_sent_through_calls_never_reaches_the_json_logs(
    tmp_path: Path, sandbox: Sandbox, canary: str, store_url: str, json_logs: Captured,
) -> None:
    log = logging.getLogger("patchwire.test")
    async with connected(tmp_path / "home", sandbox, canary, store_url) as pw:
        await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")
        with pytest.raises(CallError) as failed:
            await pw.call("shop.get_order", {"order_id": "nope"}, connection="acme")
        await ToolInvoker(pw).invoke("shop_get_order", {"order_id": "7"})
        conn = await pw.calls.resolve_connection("shop.get_order", "acme")
        # careless lines, as a user's code or a library might write them
        log.info("resolved %r with headers %s", conn, conn.headers)
        log.warning("the upstream refused the key %s", canary, extra={
            "url": f"{sandbox.url}/shop/orders/42?key={canary}", "detail": canary})
        log.error("call failed: %s", failed.value, exc_info=failed.value)
        async with (
            serving(create_app(pw, manage_lifecycle=False)) as url,
            aiohttp.ClientSession() as http,http.post(url + "/api/v1/actions/shop.get_order/call",
                             json={"connection": "acme", "input": {"order_id": "42"}},
                             headers={"X-Request-Id": "req-canary"}) as resp
        ):
            assert resp.status == 200
            assert resp.headers["X-Request-Id"] == "req-canary"
    text = json_logs.text
    assert text, "nothing was logged"
    assert leaks_in(text, canary) == []
    lines = json_logs.lines()
    assert any(line["message"].startswith("the upstream refused the key ***") for line in lines)
    # the server's access line carries the caller's request id
    access = [line for line in lines if line["logger"] == "patchwire.access"]
    assert any(line.get("request_id") == "req-canary" and line["status"] == 200
               and line["path"] == "/api/v1/actions/shop.get_order/call" for line in access)


async def test_lines_logged_during_a_run_carry_its_run_id(json_logs: Captured) -> None:
    class Flow:
        id = "demo"

    class Run:
        id, flow, attempt, status, trigger = "run-42", Flow(), 1, "running", "manual"

    run = Run()

    async def work() -> None:
        logging.getLogger("patchwire.flows").info("step done")
        run.status = "succeeded"

    await asyncio.get_running_loop().create_task(observed_run(work(), run))
    logging.getLogger("patchwire.flows").info("after the run")
    during, after = [line for line in json_logs.lines() if line["logger"] == "patchwire.flows"]
    assert during["run_id"] == "run-42"
    assert "run_id" not in after


def test_text_lines_carry_the_ids_and_are_redacted() -> None:
    captured = Captured(TextFormatter())
    log = logging.getLogger("patchwire.test.text")
    log.addHandler(captured.handler)
    log.propagate = False
    try:
        with log_context(request_id="r-9"):
            log.warning("token=abcdef123456 sent")
    finally:
        log.removeHandler(captured.handler)
        log.propagate = True
    assert "[request=r-9]" in captured.text
    assert "abcdef123456" not in captured.text and "token=***" in captured.text


def test_the_format_comes_from_the_environment() -> None:
    assert log_format_from_env({}) == "text"
    assert log_format_from_env({"PATCHWIRE_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError):
        log_format_from_env({"PATCHWIRE_LOG_FORMAT": "xml"})
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("json", level="INFO", stream=stream)
    try:
        assert configure_logging("json", level="INFO", stream=stream) is not handler
        assert sum(h.formatter.__class__ is JsonFormatter for h in root.handlers) == 1
        logging.getLogger("patchwire.test").info("configured")
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "configured"
    finally:
        for h in list(root.handlers):
            if isinstance(h.formatter, JsonFormatter) and h.stream is stream:  # type: ignore[attr-defined]
                root.removeHandler(h)
        root.setLevel(level)
    assert redact_text("Bearer abcdefghijkl") == "Bearer ***"


async def test_debug_logging_does_not_echo_the_stores_sql_parameters(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    """At DEBUG, database drivers log every bound parameter: the vault's ciphertexts would
    land in the logs. configure_logging keeps those loggers at INFO."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("text", level="DEBUG", stream=buf)
    try:
        async with connected(tmp_path / "home", sandbox, canary):
            pass  # adding the connections writes their encrypted secrets
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "pwv1." not in buf.getvalue()
    assert not leaks_in(buf.getvalue(), canary)
    assert "sqlalchemy.engine" not in buf.getvalue()
