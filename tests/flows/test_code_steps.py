"""A flow step may be custom code (``code: package.module:function``): its input is
JSONata like a call's arguments, its client is bound to a connection of the step's
connector (none without one), it is called through the call path like a call step — so the
embedded engine and the Temporal engine run it alike, as its call — and recorded in the
call log; what it raises fails the step with a typed, redacted error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.definitions import load_definitions
from patchwire.flows import FlowEngine
from patchwire.flows.spec import CodeStep, FailStep, FlowSpec
from tests.support.cli import Cli
from tests.support.custom_code import code_modules_forgotten, write_code
from tests.support.leaks import new_canary
from tests.support.servers import serve
from tests.support.settings import local_settings
from tests.support.temporal import running_engine

BOUND = 20.0  # no wait in these tests takes this long

CONNECTOR = """
name: crm
base_url: "{url}"
settings: {url: {}, key: {secret: true}}
auth: {type: api_key, in: header, name: X-Key, value: "{key}"}
retry: {attempts: 1}
actions:
  ping:
    request: {path: /ping}
"""

CODE = """
async def enrich(input, client):
    answer = await client.get(f"/people/{input['email']}")
    answer.raise_for_status()
    person = answer.json()
    return {"email": input["email"], "name": person["name"], "tier": input["tier"],
            "key": client.idempotency_key}


async def offline(input, client):
    assert client is None
    return {"doubled": [n * 2 for n in input]}


async def careless(input, client):
    key = (await client.get("/echo-key")).json()["key"]
    raise RuntimeError(f"rejected key {key}")
"""

FLOWS = """
- id: enrich_contact
  input: {type: object, properties: {email: {type: string}}}
  steps:
    - id: person
      code: crmcode.people:enrich
      connector: crm
      input: {email: $input.email, tier: "'gold'"}
  output: $steps.person
- id: double
  steps:
    - {id: twice, code: "crmcode.people:offline", input: "[1, 2, 3]"}
    - {id: nope, fail: "'not reached'", code: never, when: "false"}
  output: $steps.twice
- id: careless
  steps:
    - {id: leak, code: "crmcode.people:careless", connector: crm, connection: "=$input.c"}
"""


@dataclass
class Crm:
    pw: Patchwire
    key: str
    seen: list[str]


@pytest.fixture(autouse=True)
def _forget_code(tmp_path: Path) -> Iterator[None]:
    with code_modules_forgotten(tmp_path):
        yield


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@asynccontextmanager
async def crm(tmp_path: Path) -> AsyncIterator[Crm]:
    key = new_canary("key")
    seen: list[str] = []

    async def person(request: web.Request) -> web.Response:
        seen.append(request.path)
        if request.headers.get("X-Key") != key:
            return web.json_response({"error": "who are you"}, status=401)
        return web.json_response({"name": request.match_info["email"].split("@")[0].title()})

    async def echo_key(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"key": request.headers.get("X-Key")})

    app = web.Application()
    app.router.add_get("/people/{email}", person)
    app.router.add_get("/echo-key", echo_key)
    write_code(tmp_path, {"crmcode/__init__.py": "", "crmcode/people.py": CODE})
    async with serve(app) as url:
        spec = load_connector_text(CONNECTOR, "crm.yaml")
        settings = local_settings(tmp_path / "home", code_paths=(tmp_path / "code",))
        async with Patchwire(settings, connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("crm", "crm_main", {"url": url, "key": key})
            yield Crm(pw, key, seen)


def flows() -> dict[str, FlowSpec]:
    specs = [FlowSpec.model_validate(f) for f in yaml.safe_load(FLOWS)]
    return {f.id: f for f in specs}


#: the Temporal variant needs its dev server: slow, out of the quick loop
@pytest.mark.parametrize("kind", ["embedded", pytest.param(
    "temporal", marks=[pytest.mark.temporal, pytest.mark.slow])])
async def test_a_code_step_runs_with_its_input_and_a_client_of_its_connector(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    # on Temporal the step is the workflow's call activity, run by the worker's call path
    address = request.getfixturevalue("temporal_address") if kind == "temporal" else None
    async with crm(tmp_path) as c, running_engine(kind, c.pw, flows(), address) as engine:
        run = await engine.run("enrich_contact", {"email": "ada@example.com"}, max_wait=BOUND)
        calls = await c.pw.recent_calls()
    assert run.status == "succeeded", run.error
    assert run.output == {"email": "ada@example.com", "name": "Ada", "tier": "gold",
                          "key": f"{run.id}:person"}
    assert c.seen == ["/people/ada@example.com"]
    assert [(x.action, x.connector, x.connection, x.status, x.attempts) for x in calls] == [
        ("crm.crmcode.people:enrich", "crm", "crm_main", "ok", 1)]


async def test_a_code_step_without_a_connector_gets_no_client(tmp_path: Path) -> None:
    async with crm(tmp_path) as c, FlowEngine(c.pw, flows(), sleep=no_sleep,
                                              poll_interval=3600) as engine:
        run = await engine.run("double", {}, max_wait=BOUND)
        calls = await c.pw.recent_calls()
    assert run.status == "succeeded", run.error
    assert run.output == {"doubled": [2, 4, 6]}
    assert [(x.action, x.connection, x.status) for x in calls] == [
        ("code.crmcode.people:offline", None, "ok")]


async def test_what_a_code_step_raises_fails_it_typed_and_redacted(tmp_path: Path) -> None:
    async with crm(tmp_path) as c, FlowEngine(c.pw, flows(), sleep=no_sleep,
                                              poll_interval=3600) as engine:
        run = await engine.run("careless", {"c": "crm_main"}, max_wait=BOUND)
        calls = await c.pw.recent_calls()
    assert run.status == "failed"
    assert run.error is not None
    assert run.error["code"] == "custom_code_error"
    assert "RuntimeError" in run.error["message"] and c.key not in str(run.error)
    assert [(x.status, x.error_class) for x in calls] == [("error", "custom_code_error")]
    assert c.key not in str(calls[0].error_message)


def test_a_fail_steps_code_is_its_error_code_not_custom_code() -> None:
    steps = flows()["double"].steps
    assert isinstance(steps[0], CodeStep) and steps[0].action == "code:crmcode.people:offline"
    assert isinstance(steps[1], FailStep) and steps[1].code == "never"


def test_check_reports_a_code_step_that_does_not_load_at_its_file_and_line(
        tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "here.py").write_text("async def fn(i, c):\n    return 1\n")
    flow_dir = tmp_path / "flows"
    flow_dir.mkdir()
    (flow_dir / "f.yaml").write_text(
        "id: f\nsteps:\n  - id: a\n    code: here:fn\n  - id: b\n    code: here:gone\n"
        "  - id: c\n    code: here:fn\n    connector: nosuch\n")
    settings = local_settings(tmp_path / "home", connector_paths=(), flow_paths=(flow_dir,),
                              sync_paths=(), code_paths=(tmp_path / "code",))
    problems = [(p.line, p.path, p.message) for p in load_definitions(settings).problems]
    assert problems == [
        (6, "steps[1].code", f"module here ({tmp_path / 'code' / 'here.py'}) has no function "
                             "'gone'"),
        (9, "steps[2].connector", "unknown connector 'nosuch'")]


async def test_patchwire_check_reports_code_that_does_not_load_at_its_file_and_line(
        cli: Cli) -> None:
    (cli.workdir / "patchwire.toml").write_text('[patchwire]\ncode_paths = ["code"]\n')
    (cli.workdir / "code").mkdir()
    (cli.workdir / "code" / "steps.py").write_text("async def there(i, c):\n    return 1\n")
    (cli.workdir / "flows").mkdir()
    (cli.workdir / "flows" / "f.yaml").write_text(
        "id: f\nsteps:\n  - {id: a, code: 'steps:there'}\n  - {id: b, code: 'steps:gone'}\n"
        "  - {id: c, code: 'os:system'}\n")
    bad = await cli("check")
    (cli.workdir / "flows" / "f.yaml").write_text("id: f\nsteps:\n  - {id: a, code: steps:there}\n")
    good = await cli("check")
    assert bad.code == 1, bad
    assert "flows/f.yaml:4 at steps[1].code: module steps" in bad.flat_err, bad
    assert "flows/f.yaml:5 at steps[2].code: 'os' is a module of Python itself" in bad.flat_err
    assert good.code == 0, good
