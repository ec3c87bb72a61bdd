"""The overview's rate-limit waits per connection (from ``calls.rate_limit_wait_ms``) and
a step's input on the run timeline.

The waits are made through the real call path: an upstream saying
``X-RateLimit-Remaining: 0`` pauses the connection, and the next call waits the pause out
on a fake clock (the rate limiter's timers are fake too), so the figures are exact."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

import patchwire.dashboard as dashboard
from patchwire.flows import RunRecord, StepRecord
from patchwire.http import HttpCore
from patchwire.server import create_app
from tests.support.clocks import FakeClock, SignallingTimers
from tests.support.dashboard import text_of
from tests.support.servers import serving
from tests.support.settings import LOOPBACK
from tests.support.upstream import Upstream, patchwire_for

#: bound on anything the test waits for
WAIT_S = 10.0


async def test_the_overview_shows_per_connection_how_many_calls_waited_and_for_how_long(
        tmp_path: Path) -> None:
    clock = FakeClock()
    timers = SignallingTimers(clock)
    http = HttpCore(allow_networks=LOOPBACK, clock=clock, call_later=timers.call_later)
    # the first two answers on c1 each pause the connection: for 4 s, then for 2 s
    up = Upstream([(200, {"X-RateLimit-Remaining": "0", "Retry-After": "4"}),
                   (200, {"X-RateLimit-Remaining": "0", "Retry-After": "2"})])
    async with patchwire_for(tmp_path, up.app(), http=http,
                             connections=("c1", "c2")) as pw:
        await pw.call("up.get", connection="c1")  # went straight through; paused c1
        for pause in (4.0, 2.0):
            held = asyncio.ensure_future(pw.call("up.get", connection="c1"))
            await timers.next_armed()  # the call queued for the pause
            assert timers.next_due() == clock.now + pause
            assert timers.fire_next()
            await asyncio.wait_for(held, WAIT_S)
        await pw.call("up.get", connection="c2")  # other credentials: never paused

        async with (
            serving(create_app(pw, manage_lifecycle=False)) as url,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as client,
            client.get(url + "/") as resp,
        ):
            assert resp.status == 200
            html = await resp.text()

    c1 = re.search(r'<tr data-connection="c1">.*?</tr>', html, re.S)
    c2 = re.search(r'<tr data-connection="c2">.*?</tr>', html, re.S)
    assert c1 is not None and c2 is not None
    assert 'data-waited="2"' in c1[0]
    assert "up c1 3 100.0%" in text_of(c1[0])
    assert "2 waited · 6.0 s total · 3.0 s mean" in text_of(c1[0]), text_of(c1[0])
    assert 'data-waited="0"' in c2[0] and " none " in text_of(c2[0])


@dataclass(frozen=True)
class StepBeforeInputs:
    """A step record as the engine wrote them before steps had an ``input``."""

    run_id: str
    key: str
    kind: str
    status: str
    output: Any
    error: Any
    attempts: int
    started_at: float
    finished_at: float | None


def render_run(steps: list[Any]) -> str:
    run = RunRecord(id="run-1", flow_id="refunds", flow_version=1, status="succeeded",
                    trigger="api", input={}, output=None, error=None, parent_run_id=None,
                    attempt=1, created_at=100.0, updated_at=103.0, finished_at=103.0,
                    wake_at=None)
    return dashboard.templates().get_template("_run_body.html").render(
        run=run, timeline=dashboard.timeline(run, steps, {}), finished=True,
        failed_step=None)


def step_html(html: str, key: str) -> str:
    found = re.search(rf'<li class="step[^"]*" data-step="{key}".*?</li>', html, re.S)
    assert found is not None, html
    return found[0]


def test_a_steps_input_shows_above_its_output_with_secret_values_redacted() -> None:
    given = StepRecord(run_id="run-1", key="charge", kind="call", status="succeeded",
                       output={"charged": "order-77"}, error=None, attempts=1,
                       started_at=101.0, finished_at=102.0,
                       input={"order": "order-77", "api_key": "sk-live-not-shown"})
    html = step_html(render_run([given]), "charge")
    assert "<summary>input</summary>" in html
    assert html.index("<summary>input</summary>") < html.index("<summary>output</summary>")
    assert "order-77" in html
    assert "sk-live-not-shown" not in html
    assert "&#34;api_key&#34;: &#34;***&#34;" in html


def test_a_step_without_an_input_shows_only_its_output() -> None:
    none_given = StepRecord(run_id="run-1", key="notify", kind="call", status="succeeded",
                            output={"sent": True}, error=None, attempts=1,
                            started_at=101.0, finished_at=102.0)
    older = StepBeforeInputs(run_id="run-1", key="lookup", kind="call", status="succeeded",
                             output={"found": True}, error=None, attempts=1,
                             started_at=100.5, finished_at=101.0)
    html = render_run([older, none_given])
    for key in ("notify", "lookup"):
        step = step_html(html, key)
        assert "<summary>input</summary>" not in step
        assert "<summary>output</summary>" in step
