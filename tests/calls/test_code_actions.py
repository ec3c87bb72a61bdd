"""Custom code actions (``code: package.module:function``): the deployment's own async
function, given the validated input and a client whose every request goes through the call
path, over real HTTP on loopback; and the trust model — code comes only from the configured
code directories, never from Python's or installed modules, a model or an API request.

Each test writes its code files into its own directory and names it in ``code_paths``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from patchwire import (
    BlockedDestinationError,
    CallTimeoutError,
    CustomCodeError,
    NotFoundError,
    PaginationError,
    Patchwire,
    SpecError,
    ToolInvoker,
    UnknownAction,
    export_tools,
    load_settings,
)
from patchwire.calls import CodeLoader
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.definitions import LiveDefinitions, load_definitions
from patchwire.flows import FlowEngine, FlowRegistry
from patchwire.observability import JsonFormatter, TextFormatter
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.custom_code import code_modules_forgotten, write_code
from tests.support.docs import fenced_blocks
from tests.support.leaks import leaks_in_files, new_canary
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET
from tests.support.servers import serve, serving
from tests.support.settings import local_settings

CONNECTOR = """
name: shop
base_url: "{url}/api"
settings: {url: {}, token: {secret: true}}
auth: {type: bearer}
retry: {attempts: 3, backoff_initial: 0, backoff_max: 0}
timeouts: {connect: 2, read: 5, total: %(total)s}
actions:
  summary:
    summary: An order's summary
    input:
      type: object
      properties: {order_id: {type: string}}
      required: [order_id]
      additionalProperties: false
    code: %(ref)s
    tool: {confirm: false}
"""


@dataclass
class Shop:
    """A real upstream on loopback: what it saw, and a flaky route failing once."""

    token: str
    seen: list[str] = field(default_factory=list)
    flaky_failures: int = 1

    def app(self) -> web.Application:
        async def order(request: web.Request) -> web.Response:
            self.seen.append(request.path_qs)
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"error": "unauthorised"}, status=401)
            return web.json_response({"id": request.match_info["id"], "total": 42,
                                      "currency": request.query.get("currency", "EUR")})

        async def create(request: web.Request) -> web.Response:
            self.seen.append(request.path_qs)
            return web.json_response({"created": await request.json()}, status=201)

        async def flaky(request: web.Request) -> web.Response:
            self.seen.append(request.path_qs)
            if self.flaky_failures:
                self.flaky_failures -= 1
                return web.json_response({"error": "busy"}, status=503)
            return web.json_response({"fine": True})

        async def whoami(request: web.Request) -> web.Response:
            # a careless upstream echoing the credential it received
            self.seen.append(request.path_qs)
            return web.json_response({"authorization": request.headers.get("Authorization")})

        async def anything(request: web.Request) -> web.Response:
            self.seen.append(request.path_qs)
            return web.json_response({"error": "no such thing"}, status=404)

        app = web.Application()
        app.router.add_get("/api/orders/{id}", order)
        app.router.add_post("/api/orders", create)
        app.router.add_get("/api/flaky", flaky)
        app.router.add_get("/api/whoami", whoami)
        app.router.add_route("*", "/{tail:.*}", anything)
        return app


@pytest.fixture(autouse=True)
def _forget_code(tmp_path: Path) -> Iterator[None]:
    with code_modules_forgotten(tmp_path):
        yield


@dataclass
class Setup:
    pw: Patchwire
    shop: Shop
    code: Path
    home: Path


@asynccontextmanager
async def shop_with_code(tmp_path: Path, files: dict[str, str], *, ref: str,
                         total: float = 5, code_paths: bool = True,
                         loopback: bool = True) -> AsyncIterator[Setup]:
    """A Patchwire whose connector ``shop`` has one code action (``ref``), its connection
    ``main`` to a real upstream on loopback (which the SSRF guard admits unless not
    ``loopback``), and ``files`` in its code directory."""
    shop = Shop(new_canary("token"))
    code = write_code(tmp_path, files)
    async with serve(shop.app()) as url:
        spec = load_connector_text(CONNECTOR % {"ref": ref, "total": total}, "shop.yaml")
        home = tmp_path / "home"
        settings = local_settings(home, code_paths=(code,) if code_paths else (),
                                  **({} if loopback else {"allow_networks": ()}))
        async with Patchwire(settings, connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("shop", "main", {"url": url, "token": shop.token})
            yield Setup(pw, shop, code, home)


SUMMARY = """
    async def summary(input, client):
        order = await client.get(f"/orders/{input['order_id']}", query={"currency": "USD"})
        order.raise_for_status()
        body = order.json()
        return {"order": body["id"], "total": body["total"], "currency": body["currency"],
                "status": order.status, "connection": client.connection}
"""


async def test_a_code_action_gets_the_validated_input_and_a_client_of_its_connection(
        tmp_path: Path) -> None:
    async with shop_with_code(tmp_path, {"shopcode/__init__.py": "",
                                         "shopcode/orders.py": SUMMARY},
                              ref="shopcode.orders:summary") as s:
        outcome = await s.pw.execute("shop.summary", {"order_id": "A-7"})
        with pytest.raises(Exception) as refused:
            await s.pw.execute("shop.summary", {"order_id": 7})  # validated before it runs
        calls = await s.pw.recent_calls()
    assert outcome.result == {"order": "A-7", "total": 42, "currency": "USD", "status": 200,
                              "connection": "main"}
    assert outcome.attempts == 1
    # under the connection's base URL (/api), with its bearer token
    assert s.shop.seen == ["/api/orders/A-7?currency=USD"]
    assert refused.value.__class__.__name__ == "InputValidationError"
    ok = [c for c in calls if c.status == "ok"]
    assert [(c.action, c.connector, c.connection, c.http_status, c.attempts) for c in ok] == [
        ("shop.summary", "shop", "main", 200, 1)]


async def test_every_request_of_the_code_counts_in_the_calls_attempts_and_it_is_logged_once(
        tmp_path: Path) -> None:
    source = """
        async def two(input, client):
            flaky = await client.get("/flaky")          # 503 once, retried by the core
            made = await client.request("POST", "orders", json={"n": 1})
            return {"flaky": flaky.json(), "made": made.json(), "status": made.status}
    """
    async with shop_with_code(tmp_path, {"twice.py": source}, ref="twice:two") as s:
        outcome = await s.pw.execute("shop.summary", {"order_id": "x"})
        calls = await s.pw.recent_calls()
    assert outcome.result == {"flaky": {"fine": True}, "made": {"created": {"n": 1}},
                              "status": 201}
    assert outcome.attempts == 3  # two attempts of /flaky, one POST
    assert s.shop.seen == ["/api/flaky", "/api/flaky", "/api/orders"]
    assert [(c.action, c.status, c.attempts, c.http_status) for c in calls] == [
        ("shop.summary", "ok", 3, 201)]


async def test_the_client_refuses_a_path_that_would_leave_the_base_url(tmp_path: Path) -> None:
    source = """
        from patchwire import RequestRenderError

        async def escape(input, client):
            refused = []
            for path in ["https://evil.example/x", "//evil.example/x", "/../admin",
                         "/orders/%2e%2e/%2E%2E/admin", "/a%252f..%252fb/..", "/x?token=1",
                         "/x\\r\\nHost: evil"]:
                try:
                    await client.get(path)
                except RequestRenderError as exc:
                    refused.append(path)
            return refused
    """
    async with shop_with_code(tmp_path, {"escape.py": source}, ref="escape:escape") as s:
        outcome = await s.pw.execute("shop.summary", {"order_id": "x"})
    assert len(outcome.result) == 7
    assert s.shop.seen == []  # not one of them was sent


async def test_an_exception_with_a_secret_is_a_typed_error_redacted_for_the_model_log_and_logs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = """
        async def leak(input, client):
            echoed = (await client.get("/whoami")).json()["authorization"]
            raise ValueError(f"the upstream did not like {echoed}\\n  and more lines")
    """
    caplog.set_level(logging.WARNING)
    async with shop_with_code(tmp_path, {"leaky.py": source}, ref="leaky:leak") as s:
        with pytest.raises(CustomCodeError) as raised:
            await s.pw.execute("shop.summary", {"order_id": "x"})
        result = await ToolInvoker(s.pw).invoke("shop_summary", {"order_id": "x"},
                                                session_id="chat")
        calls = await s.pw.recent_calls()
    secret = s.shop.token
    error = raised.value
    assert error.exception_type == "ValueError"
    assert error.code == "custom_code_error"
    assert secret not in str(error) and secret not in json.dumps(error.to_dict())
    assert "\n" not in error.message  # one line, never a traceback's layout
    assert result.status == "error"
    assert "custom_code_error" in result.text and "ValueError" in result.text
    assert secret not in result.text and "Traceback" not in result.text
    assert "leaky.py" not in result.text  # no file of the server's in what a model reads
    failed = [c for c in calls if c.status == "error"]
    assert len(failed) == 2
    assert all(c.error_class == "custom_code_error" and c.error_message is not None
               and "ValueError" in c.error_message and secret not in c.error_message
               for c in failed)
    logged = [r for r in caplog.records if r.name == "patchwire.calls.code"]
    assert logged
    for record in logged:
        for formatter in (JsonFormatter(), TextFormatter()):
            line = formatter.format(record)
            assert secret not in line and "ValueError" in line
    assert "leaky.py" in str(logged[0].__dict__["where"])  # for the operator: where it failed
    assert leaks_in_files(s.home, secret) == {}


async def test_a_call_error_the_code_raises_passes_as_it_is(tmp_path: Path) -> None:
    source = """
        async def missing(input, client):
            answer = await client.get("/nothing/here")
            answer.raise_for_status()
    """
    async with shop_with_code(tmp_path, {"missing.py": source}, ref="missing:missing") as s:
        with pytest.raises(NotFoundError) as raised:
            await s.pw.execute("shop.summary", {"order_id": "x"})
        calls = await s.pw.recent_calls()
    assert raised.value.status == 404
    assert [(c.status, c.error_class, c.http_status) for c in calls] == [
        ("error", "not_found", 404)]


async def test_the_connectors_total_timeout_bounds_the_function(tmp_path: Path) -> None:
    source = """
        import asyncio

        async def stuck(input, client):
            await asyncio.Event().wait()  # never set: only the timeout ends it
    """
    async with shop_with_code(tmp_path, {"stuck.py": source}, ref="stuck:stuck",
                              total=0.2) as s:
        with pytest.raises(CallTimeoutError, match=r"0\.2 s"):
            await s.pw.execute("shop.summary", {"order_id": "x"})
        calls = await s.pw.recent_calls()
    assert [(c.status, c.error_class) for c in calls] == [("error", "timeout")]


async def test_what_is_not_json_is_refused_as_a_result(tmp_path: Path) -> None:
    source = """
        async def odd(input, client):
            return {"ids": [1, {2, 3}]}

        async def inf(input, client):
            return {"n": float("inf")}
    """
    async with shop_with_code(tmp_path, {"odd.py": source}, ref="odd:odd") as s:
        with pytest.raises(CustomCodeError, match=r"a set at \$\.ids\[1\]"):
            await s.pw.execute("shop.summary", {"order_id": "x"})


async def test_custom_code_is_disabled_by_default(tmp_path: Path) -> None:
    assert load_settings(environ={}, toml_path=tmp_path / "none.toml").code_paths == ()
    async with shop_with_code(tmp_path, {"fine.py": SUMMARY.replace("summary", "fine")},
                              ref="fine:fine", code_paths=False) as s:
        with pytest.raises(CustomCodeError, match="custom code is disabled"):
            await s.pw.execute("shop.summary", {"order_id": "x"})
    assert s.shop.seen == []


def test_code_paths_come_from_the_toml_relative_to_it_or_from_the_environment(
        tmp_path: Path) -> None:
    (tmp_path / "patchwire.toml").write_text('[patchwire]\ncode_paths = ["code", "lib"]\n')
    settings = load_settings(environ={}, toml_path=tmp_path / "patchwire.toml")
    assert settings.code_paths == ((tmp_path / "code").resolve(), (tmp_path / "lib").resolve())
    env = load_settings(environ={"PATCHWIRE_CODE_PATHS": str(tmp_path / "x")},
                        toml_path=tmp_path / "patchwire.toml")
    assert env.code_paths == ((tmp_path / "x").resolve(),)


def test_python_and_installed_modules_are_refused(tmp_path: Path) -> None:
    loader = CodeLoader([write_code(tmp_path, {"mine.py": "async def f(i, c): pass\n"})])
    for ref in ("os:system", "subprocess:run", "asyncio:sleep", "json:loads"):
        assert "module of Python itself" in str(loader.problem(ref)), ref
    for ref in ("yaml:safe_load", "aiohttp:request", "patchwire:Patchwire"):
        assert "no module" in str(loader.problem(ref)), ref
    assert loader.problem("mine:f") is None


def test_a_module_shadowing_an_installed_one_is_refused(tmp_path: Path) -> None:
    code = write_code(tmp_path, {"yaml.py": "async def f(i, c): pass\n",
                                 "os.py": "async def f(i, c): pass\n"})
    loader = CodeLoader([code])
    assert "name of another importable module" in str(loader.problem("yaml:f"))
    assert "module of Python itself" in str(loader.problem("os:f"))


def test_a_module_outside_the_code_directories_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "stray.py").write_text("async def f(i, c): pass\n")
    code = write_code(tmp_path, {"borrowed.py": "from asyncio import sleep\n"})
    (code / "linked.py").symlink_to(elsewhere / "stray.py")
    loader = CodeLoader([code])
    assert "no module 'stray'" in str(loader.problem("stray:f"))
    assert "outside the code directories" in str(loader.problem("linked:f"))
    # a coroutine function imported into a module of the code is not the code's own
    assert "outside the code directories" in str(loader.problem("borrowed:sleep"))


def test_relative_modules_and_malformed_references_are_refused(tmp_path: Path) -> None:
    code = write_code(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": "async def f(i, c): pass\n"})
    loader = CodeLoader([code])
    for ref in ("..pkg.mod:f", ".mod:f", "pkg/../mod:f", "pkg.mod", "pkg.mod:f:g", "../x:f"):
        assert "is not a code reference" in str(loader.problem(ref)), ref
    with pytest.raises(SpecError, match=r"actions\.summary\.code"):
        load_connector_text(CONNECTOR % {"ref": "'..pkg.mod:f'", "total": 5}, "shop.yaml")
    assert loader.problem("pkg.mod:f") is None
    (code / "loose").mkdir()
    (code / "loose" / "mod.py").write_text("async def f(i, c): pass\n")
    assert "without __init__.py" in str(loader.problem("loose.mod:f"))


def test_only_async_functions_of_two_arguments_are_called(tmp_path: Path) -> None:
    code = write_code(tmp_path, {"shapes.py": """
        def plain(input, client):
            return 1

        async def lonely(input):
            return 1

        VALUE = 3
    """})
    loader = CodeLoader([code])
    assert "must be an async function" in str(loader.problem("shapes:plain"))
    assert "must take two arguments" in str(loader.problem("shapes:lonely"))
    assert "must be an async function" in str(loader.problem("shapes:VALUE"))
    assert "has no function 'absent'" in str(loader.problem("shapes:absent"))


def test_check_reports_a_missing_module_or_function_at_its_file_and_line(
        tmp_path: Path) -> None:
    code = write_code(tmp_path, {"real.py": "async def there(i, c):\n    return 1\n"})
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    (connectors / "shop.yaml").write_text(CONNECTOR % {"ref": "real:absent", "total": 5})
    (connectors / "other.yaml").write_text(
        CONNECTOR.replace("name: shop", "name: other") % {"ref": "nowhere.mod:f", "total": 5})
    (connectors / "fine.yaml").write_text(
        CONNECTOR.replace("name: shop", "name: fine") % {"ref": "real:there", "total": 5})
    settings = local_settings(tmp_path / "home", connector_paths=(connectors,),
                              flow_paths=(), sync_paths=(), code_paths=(code,))
    problems = {p.file.rsplit("/", 1)[-1]: p for p in load_definitions(settings).problems}
    assert set(problems) == {"shop.yaml", "other.yaml"}
    line = CONNECTOR.splitlines().index("    code: %(ref)s") + 1
    assert (problems["shop.yaml"].line, problems["shop.yaml"].path) == (
        line, "actions.summary.code")
    assert "has no function 'absent'" in problems["shop.yaml"].message
    assert "no module 'nowhere'" in problems["other.yaml"].message


async def test_a_reload_imports_the_changed_code(tmp_path: Path) -> None:
    async with shop_with_code(tmp_path, {"versions.py": "async def v(i, c):\n    return 1\n"},
                              ref="versions:v") as s:
        first = (await s.pw.execute("shop.summary", {"order_id": "x"})).result
        (s.code / "versions.py").write_text("async def v(i, c):\n    return 'two'\n")
        again = (await s.pw.execute("shop.summary", {"order_id": "x"})).result
        s.pw.use_connectors(ConnectorRegistry(list(s.pw.connectors)))  # a reload
        reloaded = (await s.pw.execute("shop.summary", {"order_id": "x"})).result
    assert (first, again, reloaded) == (1, 1, "two")


async def test_a_models_arguments_cannot_choose_the_function_and_the_tool_works(
        tmp_path: Path) -> None:
    async with shop_with_code(tmp_path, {"shopcode/__init__.py": "",
                                         "shopcode/orders.py": SUMMARY},
                              ref="shopcode.orders:summary") as s:
        invoker = ToolInvoker(s.pw)
        catalog = await invoker.catalog()
        definitions = export_tools(catalog, "openai")
        ok = await invoker.invoke("shop_summary", {"order_id": "B-2"}, session_id="chat")
        injected = await invoker.invoke(
            "shop_summary", {"order_id": "B-3", "code": "os:system", "module": "subprocess"},
            session_id="chat")
        with pytest.raises(UnknownAction):  # a code step's name, outside a flow run
            await s.pw.execute("code:shopcode.orders:summary@shop", {"order_id": "C"})
    assert ok.status == "ok", ok.text
    assert ok.data == {"order": "B-2", "total": 42, "currency": "USD", "status": 200,
                       "connection": "main"}
    assert injected.status == "invalid_arguments"
    (tool,) = [d for d in definitions if "shop_summary" in json.dumps(d)]
    assert "shopcode" not in json.dumps(tool)  # the model never learns which code runs
    assert s.shop.seen == ["/api/orders/B-2?currency=USD"]


SIGNED = """
name: signed
base_url: "{url}"
settings: {url: {}, signing_key: {secret: true}}
auth:
  type: hmac_signature
  canonical: "{timestamp}\\n{method}\\n{path}\\n{body_sha256}"
  headers: {X-Timestamp: "{timestamp}", X-Signature: "{signature}"}
retry: {attempts: 1}
actions:
  book:
    code: signer:book
"""


async def test_the_codes_requests_are_signed_as_the_connectors_auth_declares(
        tmp_path: Path) -> None:
    key = new_canary("signing")
    verified: list[bool] = []

    async def entries(request: web.Request) -> web.Response:
        body = await request.read()
        canonical = "\n".join([request.headers["X-Timestamp"], request.method, request.path,
                               hashlib.sha256(body).hexdigest()])
        expected = hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
        verified.append(hmac.compare_digest(expected, request.headers["X-Signature"]))
        return web.json_response({"booked": json.loads(body)}, status=201)

    app = web.Application()
    app.router.add_post("/entries", entries)
    code = write_code(tmp_path, {"signer.py": """
        async def book(input, client):
            return (await client.post("/entries", json={"amount": 5})).json()
    """})
    async with serve(app) as url:
        settings = local_settings(tmp_path / "home", code_paths=(code,))
        registry = ConnectorRegistry([load_connector_text(SIGNED, "signed.yaml")])
        async with Patchwire(settings, connectors=registry) as pw:
            await pw.add_connection("signed", "s", {"url": url, "signing_key": key})
            outcome = await pw.execute("signed.book", {})
    assert outcome.result == {"booked": {"amount": 5}}
    assert verified == [True]


async def test_an_api_request_cannot_run_a_flows_code_step_nor_import_its_module(
        tmp_path: Path) -> None:
    source = """
        from pathlib import Path

        Path(__file__).with_name("imported").write_text("yes")  # a trace of any import

        async def run(input, client):
            await client.get("/ran")
    """
    async with shop_with_code(tmp_path, {"stepcode.py": source}, ref="stepcode:run") as s:
        app = create_app(Patchwire(s.pw.settings, connectors=s.pw.connectors))
        async with serving(app) as url, aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10)) as http:
            answers = []
            for name in ("code:stepcode:run@shop", "code:stepcode:run", "code:os:system"):
                async with http.post(f"{url}/api/v1/actions/{name}/call",
                                     json={"input": {"order_id": "x"}}) as resp:
                    answers.append((resp.status, (await resp.json())["detail"]))
    assert [status for status, _ in answers] == [404, 404, 404]
    assert "runs only as part of a flow run" in answers[0][1]
    assert s.shop.seen == []
    assert not (s.code / "imported").exists()




def doc_files() -> dict[str, str]:
    """The example's files: each fenced block of the page whose first line is
    ``# <path>``."""
    blocks = fenced_blocks("connectors/code.md", language="")
    return {block.split("\n", 1)[0][2:].strip(): block for block in blocks
            if block.startswith("# ")}


async def test_the_documented_example_works_as_written(tmp_path: Path) -> None:
    files = doc_files()
    assert set(files) == {"patchwire.toml", "connectors/crm.yaml", "code/crm_code/overview.py",
                          "flows/account_digest.yaml"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "code" / "crm_code" / "__init__.py").write_text("")
    token = new_canary("crm")
    pages = {None: ([100, 50], "p2"), "p2": ([25], None)}

    async def account(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {token}"
        if request.match_info["id"] != "A-1":
            return web.json_response({"error": "no such account"}, status=404)
        return web.json_response({"name": "Acme"})

    async def deals(request: web.Request) -> web.Response:
        assert (request.query["account"], request.query["status"]) == ("A-1", "open")
        amounts, following = pages[request.query.get("cursor")]
        return web.json_response({"deals": [{"amount": a} for a in amounts],
                                  "next": following})

    app = web.Application()
    app.router.add_get("/v2/accounts/{id}", account)
    app.router.add_get("/v2/deals", deals)
    code_paths = load_settings(environ={}, toml_path=tmp_path / "patchwire.toml").code_paths
    assert code_paths == (tmp_path / "code",)
    settings = local_settings(tmp_path / "home", connector_paths=(tmp_path / "connectors",),
                              flow_paths=(tmp_path / "flows",), sync_paths=(),
                              code_paths=code_paths)
    found = load_definitions(settings).required()
    async with serve(app) as url, Patchwire(settings, connectors=found.connectors) as pw:
        await pw.add_connection("crm", "crm_acme", {"base_url": url, "api_token": token})
        overview = await pw.execute("crm.account_overview", {"account_id": "A-1"})
        with pytest.raises(NotFoundError):
            await pw.execute("crm.account_overview", {"account_id": "B-2"})
        async with FlowEngine(pw, {f.id: f for f in found.flows},
                              poll_interval=3600) as engine:
            run = await engine.run("account_digest", {"account_id": "A-1"}, max_wait=20)
    assert overview.result == {"account": "Acme", "open_deals": 3, "open_total": 175}
    assert overview.attempts == 3
    assert run.status == "succeeded", run.error
    assert run.output == {"text": "Acme: 3 open deals worth 175"}


async def test_an_oauth2_token_the_upstream_refuses_is_renewed_once_for_the_codes_request(
        tmp_path: Path) -> None:
    seen: list[str] = []
    refused: set[str] = set()

    async def me(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        seen.append(token)
        if token in refused:
            return web.json_response({"error": "token expired"}, status=401)
        return web.json_response({"id": "u1"})

    app = web.Application()
    app.router.add_get("/api/me", me)
    code = write_code(tmp_path, {"whoami.py": """
        async def me(input, client):
            answer = await client.get("/me")
            answer.raise_for_status()
            return answer.json()
    """})
    spec = ConnectorSpec.model_validate({
        "name": "signals", "base_url": "{api_url}/api",
        "settings": {"api_url": {}, "sandbox_url": {}, "client_id": {},
                     "client_secret": {"secret": True}},
        "auth": {"type": "oauth2", "flow": "client_credentials",
                 "token_url": "{sandbox_url}/oauth/token"},
        "retry": {"attempts": 1},
        "actions": {"me": {"code": "whoami:me"}}})
    async with Sandbox(seed=0) as sandbox, serve(app) as url, Patchwire(
            local_settings(tmp_path / "home", code_paths=(code,)),
            connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("signals", "acme", {
            "api_url": url, "sandbox_url": sandbox.url, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET})
        first = await pw.execute("signals.me", {})
        refused.add(seen[-1])
        second = await pw.execute("signals.me", {})
        renewals = sandbox.state.oauth.stats.token_requests["client_credentials"]
    assert (first.result, second.result) == ({"id": "u1"}, {"id": "u1"})
    assert second.attempts == 2 and len(set(seen)) == 2 and renewals == 2


async def test_a_code_action_is_not_walked_page_by_page(tmp_path: Path) -> None:
    paged = CONNECTOR.replace("actions:", "pagination: {style: page, items: $}\nactions:")
    source = "async def all_of_them(input, client):\n    return [1, 2, 3]\n"
    async with shop_with_code(tmp_path, {"every.py": source}, ref="every:all_of_them") as s:
        spec = load_connector_text(paged % {"ref": "every:all_of_them", "total": 5}, "s.yaml")
        s.pw.use_connectors(ConnectorRegistry([spec]))
        with pytest.raises(PaginationError, match="returns every record itself"):
            async for _ in s.pw.paginate("shop.summary", {"order_id": "x"}):
                pass
        whole = await s.pw.execute("shop.summary", {"order_id": "x"})
    assert whole.result == [1, 2, 3]


async def test_a_reload_whose_code_does_not_load_changes_nothing(tmp_path: Path) -> None:
    shop = Shop(new_canary("token"))
    code = write_code(tmp_path, {"versions.py": "async def v(i, c):\n    return 1\n"})
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    (connectors / "shop.yaml").write_text(CONNECTOR % {"ref": "versions:v", "total": 5})
    settings = local_settings(tmp_path / "home", connector_paths=(connectors,),
                              flow_paths=(), sync_paths=(), code_paths=(code,))
    async with serve(shop.app()) as url, Patchwire(settings) as pw:
        await pw.add_connection("shop", "main", {"url": url, "token": shop.token})
        live = LiveDefinitions(pw, FlowRegistry.load(settings.flow_paths))
        before = (await pw.execute("shop.summary", {"order_id": "x"})).result
        (code / "versions.py").write_text("async def v(i, c):\n    return (\n")
        with pytest.raises(SpecError) as refused:
            await live.reload()
        kept = (await pw.execute("shop.summary", {"order_id": "x"})).result
        (code / "versions.py").write_text("async def v(i, c):\n    return 'two'\n")
        await live.reload()
        after = (await pw.execute("shop.summary", {"order_id": "x"})).result
    (problem,) = refused.value.problems
    assert problem.file.endswith("shop.yaml") and problem.path == "actions.summary.code"
    assert "cannot import versions: SyntaxError" in problem.message
    assert (before, kept, after) == (1, 1, "two")


async def test_code_that_cannot_be_loaded_fails_the_call_without_naming_the_servers_files(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with shop_with_code(tmp_path, {"broken.py": "async def b(i, c):\n    return (\n"},
                              ref="broken:b") as s:
        with pytest.raises(CustomCodeError) as raised:
            await s.pw.execute("shop.summary", {"order_id": "x"})
        calls = await s.pw.recent_calls()
    assert "cannot be loaded (`patchwire check` says why)" in raised.value.message
    assert str(tmp_path) not in str(raised.value) and str(tmp_path) not in str(calls)
    assert any("SyntaxError" in r.getMessage() for r in caplog.records)  # the operator's


async def test_the_ssrf_guard_holds_for_the_codes_requests(tmp_path: Path) -> None:
    async with shop_with_code(tmp_path, {"guarded.py": SUMMARY.replace("summary", "g")},
                              ref="guarded:g", loopback=False) as s:
        with pytest.raises(BlockedDestinationError):
            await s.pw.execute("shop.summary", {"order_id": "x"})
        calls = await s.pw.recent_calls()
    assert s.shop.seen == []
    assert [(c.status, c.error_class) for c in calls] == [("error", "blocked_destination")]
