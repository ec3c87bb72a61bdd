"""Metrics at ``/metrics`` after real calls, runs and tool calls (SQLite and PostgreSQL), the
registry API other modules use, and traces (one span per run, step and upstream attempt,
``traceparent`` sent upstream) with OpenTelemetry's in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from patchwire import Patchwire
from patchwire.errors import CallError
from patchwire.flows import FlowEngine
from patchwire.flows.spec import FlowSpec
from patchwire.http import instant_retries
from patchwire.observability import _tracing, metrics
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.tools import ToolInvoker
from tests.support.sandboxes import connected
from tests.support.servers import serving
from tests.support.upstream import Upstream, patchwire_for

FLOW = """
id: observed
input: {type: object, properties: {order_id: {type: string}}}
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "$input.order_id"}
  - id: summary
    transform: "{'id': $steps.order.id}"
output: "$steps.summary"
"""
BROKEN_FLOW = """
id: observed_broken
steps:
  - id: missing
    call: shop.get_order
    args: {order_id: "'does-not-exist'"}
    retry: {attempts: 1}
"""


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox, canary: str,
             store_url: str) -> AsyncIterator[Patchwire]:
    async with connected(tmp_path / "home", sandbox, canary, store_url) as opened:
        yield opened


@pytest.fixture(autouse=True)
def instant_backoff() -> Iterator[None]:
    with instant_retries():
        yield


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def flow(text: str) -> FlowSpec:
    return FlowSpec.model_validate(yaml.safe_load(text))


async def test_metrics_count_calls_runs_and_tool_calls(pw: Patchwire) -> None:
    before = samples(metrics.exposition().decode())
    await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")
    await pw.call("shop.get_order", {"order_id": "43"}, connection="acme")
    with pytest.raises(CallError) as failed:
        await pw.call("shop.get_order", {"order_id": "does-not-exist"}, connection="acme")
    with pytest.raises(CallError):
        await pw.call("shop.get_order", {"order_id": 42}, connection="acme")  # invalid input
    invoker = ToolInvoker(pw)
    assert (await invoker.invoke("shop_get_order", {"order_id": "7"})).status == "ok"
    assert (await invoker.invoke("shop_get_order", {"order_id": 7})).status == (
        "invalid_arguments")
    assert (await invoker.invoke("no_such_tool", {})).status == "unknown_tool"
    flows = {"observed": flow(FLOW), "observed_broken": flow(BROKEN_FLOW)}
    async with FlowEngine(pw, flows, poll_interval=3600) as eng:
        ok = await eng.run("observed", {"order_id": "42"}, max_wait=20)
        bad = await eng.run("observed_broken", {}, max_wait=20)
        queued = await eng.start_run("observed", {"order_id": "1"})
        await eng.wait(queued, max_wait=20)
    assert (ok.status, bad.status) == ("succeeded", "failed"), bad.error

    # scraped over HTTP, the way Prometheus does
    async with (
        serving(create_app(pw, manage_lifecycle=False)) as url,
        aiohttp.ClientSession() as http,
        http.get(url + "/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    after = samples(text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    call = {"connector": "shop", "action": "shop.get_order"}
    # 2 ok direct, 1 by the tool, 2 by runs; the invalid tool call never reaches the call path
    assert delta("patchwire_calls_total", status="ok", **call) == 5
    assert delta("patchwire_calls_total", status=failed.value.code, **call) == 2, bad.error
    assert delta("patchwire_calls_total", status="invalid_input", **call) == 1
    assert delta("patchwire_call_latency_seconds_count", **call) == 8
    assert delta("patchwire_call_latency_seconds_sum", **call) > 0
    assert delta("patchwire_call_latency_seconds_bucket", le="+Inf", **call) == 8
    assert delta("patchwire_runs_total", flow="observed", status="succeeded") == 2
    assert delta("patchwire_runs_total", flow="observed_broken", status="failed") == 1
    assert value(after, "patchwire_runs_in_progress", flow="observed") == 0
    assert delta("patchwire_steps_total", kind="call", status="succeeded") == 2
    assert delta("patchwire_steps_total", kind="transform", status="succeeded") == 2
    assert delta("patchwire_tool_calls_total", tool="shop_get_order", outcome="ok") == 1
    assert delta("patchwire_tool_calls_total", tool="shop_get_order",
                 outcome="invalid_arguments") == 1
    assert delta("patchwire_tool_calls_total", tool="unknown", outcome="unknown_tool") == 1
    assert value(after, "patchwire_breaker_state", connector="shop") == 0
    assert value(after, "process_resident_memory_bytes") > 0
    # the metric families other modules update are declared from the start
    for family in ("patchwire_webhook_events_total", "patchwire_webhook_rejections_total",
                   "patchwire_delivery_lag_seconds", "patchwire_deliveries_total",
                   "patchwire_rate_limit_waits_total", "patchwire_call_retries_total"):
        assert f"# TYPE {family.removesuffix('_total')}" in text


async def test_retries_are_counted(tmp_path: Path) -> None:
    before = samples(metrics.exposition().decode())
    up = Upstream([(503, {}), (502, {})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        await pw.call("up.get", connection="c1")
    after = samples(metrics.exposition().decode())
    labels = {"connector": "up", "action": "up.get"}
    assert (value(after, "patchwire_call_retries_total", **labels)
            - value(before, "patchwire_call_retries_total", **labels)) == 2


def test_the_registry_gives_one_metric_per_name() -> None:
    first = metrics.counter("patchwire_test_things_total", "Things.", ["kind"])
    assert metrics.counter("patchwire_test_things_total", "Things.", ["kind"]) is first
    first.labels("a").inc(2)
    metrics.WEBHOOK_EVENTS.labels("stripe", "false").inc()
    metrics.WEBHOOK_REJECTIONS.labels("stripe", "signature").inc()
    metrics.DELIVERY_LAG.observe(0.2)
    found = samples(metrics.exposition().decode())
    assert value(found, "patchwire_test_things_total", kind="a") == 2
    assert value(found, "patchwire_webhook_rejections_total", source="stripe",
                 reason="signature") >= 1
    with pytest.raises(ValueError):
        metrics.gauge("patchwire_test_things_total", "Not a gauge.", ["kind"])


# -- traces ------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[object]:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError:
        pytest.skip("the OpenTelemetry SDK is not installed (pip install 'patchwire[otel]')")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert _tracing.enable_tracing(provider)
    yield exporter
    _tracing.disable_tracing()


UP_FLOW = """
id: traced
steps:
  - id: fetch
    call: up.get
    connection: c1
  - id: shape
    transform: "{'n': $steps.fetch.n}"
"""


async def test_traces_have_a_span_per_run_step_and_attempt_and_reach_upstream(
    tmp_path: Path, spans: object,
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    assert isinstance(spans, InMemorySpanExporter)
    up = Upstream([(503, {})])  # the first attempt fails: two attempt spans
    async with (
        patchwire_for(tmp_path, up.app()) as pw,
        FlowEngine(pw, {"traced": flow(UP_FLOW)}, poll_interval=3600) as eng,
    ):
        run = await eng.run("traced", {}, max_wait=20)
    assert run.status == "succeeded", run.error
    by_name: dict[str, list[Any]] = {}
    for span in spans.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    [run_span] = by_name["run traced"]
    attempts = sorted(by_name["GET up.get"], key=lambda s: s.start_time)
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503, 200]
    assert [s.attributes["patchwire.attempt"] for s in attempts] == [1, 2]
    steps = [*by_name["step fetch"], *by_name["step shape"]]
    assert len(steps) == 2
    trace_id = run_span.context.trace_id
    for span in [*attempts, *steps]:
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == run_span.context.span_id
    assert run_span.attributes["patchwire.run_id"] == run.id
    assert attempts[0].attributes["patchwire.run_id"] == run.id
    assert "?" not in attempts[0].attributes["url.full"]
    # each attempt told the upstream its own span as the parent of the upstream's work
    assert [h.get("traceparent", "")[:52] for h in up.headers_seen] == [
        f"00-{trace_id:032x}-{a.context.span_id:016x}" for a in attempts]


async def test_without_tracing_no_traceparent_is_sent(tmp_path: Path) -> None:
    assert not _tracing.active
    up = Upstream()
    async with patchwire_for(tmp_path, up.app()) as pw:
        await pw.call("up.get", connection="c1")
    assert up.headers_seen and all("traceparent" not in h for h in up.headers_seen)
