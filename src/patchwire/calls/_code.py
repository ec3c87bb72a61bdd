"""Custom code where declarations end: ``code: package.module:function``.

A connector action (or a flow step, see ``flows.spec.CodeStep``) may name an async function
of the deployment's own files, called as ``await function(input, client)`` with the
validated input and a :class:`ConnectionClient` bound to the call's connection. Every
request the client makes goes through the HTTP core exactly as a declared action's does
(base URL, auth, SSRF guard, rate limits, retries, breaker, redaction); its attempts count
as the call's, and the call is recorded once in the call log like any other.

Trust model (docs/connectors/code.md): code is imported only from the directories the
deployment's settings name (``code_paths``; none: custom code is disabled), never from a
module Python or an installed package provides, and the function to call is written in a
definition file — a model's arguments or an API request never name one. What it raises
reaches callers as a typed error with a redacted message, never as a traceback.

Pieces: :class:`CodeLoader` (finding and importing functions, once per definitions load),
:class:`ConnectionClient` and :class:`CodeResponse` (what the function is given),
:class:`CodeRunner` (one call of one function, as ``CallPath.execute`` hands it over) and
:func:`code_definition_problems` (``patchwire check``'s view, with ``file:line``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any, Final
from urllib.parse import unquote, urlencode

import orjson
from multidict import CIMultiDictProxy

from patchwire.calls._action import CompiledAction
from patchwire.calls._connection import (
    BREAKS_HEADER,
    ConnectionResolver,
    ResolvedConnection,
    check_end_user,
)
from patchwire.calls._request import CallOutcome, CallRequest
from patchwire.connectors import ConnectorRegistry, load_yaml_with_lines
from patchwire.connectors.spec import CODE_REF_PATTERN, ActionSpec, ConnectorSpec
from patchwire.errors import (
    CallContext,
    CallError,
    CallTimeoutError,
    CustomCodeError,
    PaginationError,
    RequestRenderError,
    ResponseMappingError,
    SpecProblem,
    UnknownAction,
)
from patchwire.expressions import ExpressionError
from patchwire.http import (
    HttpCore,
    PreparedRequest,
    RawResponse,
    Redactor,
    RetryDecision,
    excerpt,
)
from patchwire.ids import new_id
from patchwire.observability import observe_call, redact_text
from patchwire.store.records import CallRecord

__all__ = [
    "CODE_STEP_PREFIX",
    "MAX_CODE_REQUESTS",
    "MAX_CODE_RESULT_BYTES",
    "CodeLoader",
    "CodeResponse",
    "CodeRunner",
    "ConnectionClient",
    "code_definition_problems",
    "code_step_target",
]

log = logging.getLogger("patchwire.calls.code")

#: a flow's code step is called by the name ``code:<ref>`` or ``code:<ref>@<connector>``
#: (``flows.spec.CodeStep.action``); only a flow run may call it
CODE_STEP_PREFIX: Final = "code:"
#: the largest result (as JSON) a function may return; more fails the call
MAX_CODE_RESULT_BYTES: Final = 10 * 1024 * 1024
#: requests one call's function may make (a runaway loop stops here, or at the timeout)
MAX_CODE_REQUESTS: Final = 1000
#: flow code steps' compiled actions kept at once: their names come from flows, but a
#: request naming made-up ones (refused when run) must not grow memory without end
MAX_STEP_ACTIONS: Final = 1024
#: how much of an exception's message reaches the error (and the model)
MAX_MESSAGE: Final = 300
#: nesting of a returned value before it is refused (orjson's own limit is 254)
MAX_DEPTH: Final = 200

_REF = re.compile(CODE_REF_PATTERN)
_STEP = re.compile(r"^code:(?P<ref>[^@]+)(?:@(?P<connector>[a-z][a-z0-9_]*))?$")
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

#: a custom function: ``async def f(input, client)``
CodeFunction = Callable[[Any, "ConnectionClient | None"], Awaitable[Any]]


class CodeLoadError(Exception):
    """A code reference that cannot be loaded; the message says what and where (for
    ``patchwire check`` and the server's log), ``public`` says it without the server's
    files (for a call's error, which a model may read)."""

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or "it cannot be loaded (`patchwire check` says why)"


def code_step_target(qualified: str) -> tuple[str, str | None] | None:
    """(reference, connector or None) of a flow code step's call name, None for any other
    action name."""
    if not qualified.startswith(CODE_STEP_PREFIX):
        return None
    match = _STEP.match(qualified)
    if match is None or not _REF.match(match["ref"]):
        raise UnknownAction(f"{qualified[:200]!r} is not a code step's name "
                            "(code:package.module:function[@connector])")
    return match["ref"], match["connector"]


# -- loading ---------------------------------------------------------------------------------

#: one import of custom code at a time in this process (a reload imports in a thread)
_IMPORT_LOCK = threading.RLock()
#: modules imported from code directories: name -> (file, mtime_ns, size) when imported.
#: One changed file means every one is imported afresh at the next load (a reload).
_STAMPS: dict[str, tuple[str, int, int]] = {}


def _stamp(file: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return file, st.st_mtime_ns, st.st_size


def _module_file(module: ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else None


class CodeLoader:
    """Custom functions from ``code_paths`` only, each loaded once until :meth:`forget`.

    A module is imported under its own name with the code directories put at the *end* of
    ``sys.path`` for the duration of that import only (so its own absolute imports of
    sibling modules work, and Python's and installed modules always win); a name that is
    also a module of Python or of an installed package is refused rather than shadowed,
    and a module or function that turns out to live anywhere else is refused.
    """

    def __init__(self, code_paths: Sequence[Path]) -> None:
        self.dirs = tuple(Path(os.path.realpath(p)) for p in code_paths)
        self._functions: dict[str, CodeFunction] = {}

    def forget(self) -> None:
        """Definitions were reloaded: load each function again at its next use (a module
        whose file changed is imported afresh)."""
        self._functions.clear()

    def function(self, ref: str) -> CodeFunction:
        """The function ``ref`` names (CodeLoadError when it cannot be had)."""
        fn = self._functions.get(ref)
        if fn is None:
            fn = self._functions[ref] = self._load(ref)
        return fn

    def problem(self, ref: str) -> str | None:
        """Why ``ref`` cannot be loaded, or None (``patchwire check``)."""
        try:
            self._load(ref)
        except CodeLoadError as exc:
            return str(exc)
        return None

    def inside(self, path: str) -> bool:
        """Whether ``path`` (symbolic links followed) is in one of the code directories."""
        real = Path(os.path.realpath(path))
        return any(real.is_relative_to(d) for d in self.dirs)

    def _where(self) -> str:
        return ", ".join(str(d) for d in self.dirs)

    def _load(self, ref: str) -> CodeFunction:
        if not _REF.match(ref):
            raise CodeLoadError(f"{ref[:200]!r} is not a code reference: write "
                                "package.module:function")
        if not self.dirs:
            disabled = ("custom code is disabled: no code directories are configured (set "
                        "code_paths in patchwire.toml or PATCHWIRE_CODE_PATHS)")
            raise CodeLoadError(disabled, disabled)
        module_name, name = ref.split(":")
        with _IMPORT_LOCK:
            module = self._import(module_name)
        file = _module_file(module) or module_name
        fn = getattr(module, name, None)
        if fn is None:
            raise CodeLoadError(f"module {module_name} ({file}) has no function {name!r}")
        if not inspect.iscoroutinefunction(fn):
            raise CodeLoadError(
                f"{ref} must be an async function (async def {name}(input, client)), not "
                f"{'a plain function' if inspect.isfunction(fn) else type(fn).__name__}")
        code = getattr(inspect.unwrap(fn), "__code__", None)
        origin = code.co_filename if code is not None else None
        if origin is None or not self.inside(origin):
            raise CodeLoadError(
                f"{ref} is defined in {origin or 'an unknown place'}, outside the code "
                f"directories ({self._where()}): only the deployment's own functions run")
        try:
            inspect.signature(fn).bind(None, None)
        except (TypeError, ValueError):
            raise CodeLoadError(f"{ref} must take two arguments: (input, client)") from None
        return fn  # type: ignore[no-any-return]

    def _import(self, module_name: str) -> ModuleType:
        top = module_name.split(".")[0]
        if top in sys.builtin_module_names or top in sys.stdlib_module_names:
            raise CodeLoadError(
                f"{top!r} is a module of Python itself: custom code is only loaded from the "
                f"code directories ({self._where()})")
        found = PathFinder.find_spec(top, [str(d) for d in self.dirs])
        if found is None:
            raise CodeLoadError(f"no module {top!r} in the code directories ({self._where()})")
        if found.origin is None:
            # a namespace package's path is recomputed from sys.path, which holds the code
            # directories only while importing: its submodules could not be found later
            raise CodeLoadError(f"{top!r} of the code directories is a directory without "
                                "__init__.py: make it a package (an empty __init__.py)")
        elsewhere = PathFinder.find_spec(top)  # on sys.path: Python's and installed modules
        places = [*([elsewhere.origin] if elsewhere and elsewhere.origin else []),
                  *(list(elsewhere.submodule_search_locations or []) if elsewhere else [])]
        if elsewhere is not None and not all(self.inside(p) for p in places):
            raise CodeLoadError(
                f"module {top!r} of the code directories has the name of another importable "
                f"module ({places[0] if places else top}); rename it")
        self._evict_changed()
        loaded = sys.modules.get(top)
        if loaded is not None:
            loaded_file = _module_file(loaded)
            paths = list(getattr(loaded, "__path__", []) or [])
            if not ((loaded_file and self.inside(loaded_file))
                    or (not loaded_file and paths and all(self.inside(p) for p in paths))):
                if top not in _STAMPS:
                    raise CodeLoadError(f"a module named {top!r} is already loaded from "
                                        f"{loaded_file or paths}; rename the code's module")
                _evict(top)  # another deployment's code directory in this process (tests)
        added = [str(d) for d in self.dirs]
        before = set(sys.modules)
        writes_bytecode = sys.dont_write_bytecode
        importlib.invalidate_caches()
        sys.path.extend(added)
        # no __pycache__ written into the deployment's code directories
        sys.dont_write_bytecode = True
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise CodeLoadError(f"cannot import {module_name}: {type(exc).__name__}: "
                                f"{_text(exc)}") from None
        finally:
            sys.dont_write_bytecode = writes_bytecode
            for entry in reversed(added):  # the ones appended, not an equal earlier entry
                index = len(sys.path) - 1 - sys.path[::-1].index(entry)
                del sys.path[index]
            for name in set(sys.modules) - before:
                file = _module_file(sys.modules[name])
                stamp = _stamp(file) if file and self.inside(file) else None
                if stamp is not None:
                    _STAMPS[name] = stamp
        file = _module_file(module)
        if file is None or not self.inside(file):
            raise CodeLoadError(f"module {module_name} resolves to {file or 'no file'}, "
                                f"outside the code directories ({self._where()})")
        return module

    @staticmethod
    def _evict_changed() -> None:
        if any(sys.modules.get(name) is None or _stamp(stamp[0]) != stamp
               for name, stamp in _STAMPS.items()):
            for name in list(_STAMPS):
                sys.modules.pop(name, None)
            _STAMPS.clear()


def _evict(top: str) -> None:
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        sys.modules.pop(name, None)
        _STAMPS.pop(name, None)


_Where = tuple[str, tuple[str | int, ...], str]


def code_definition_problems(
    code_paths: Sequence[Path], refs: Iterable[_Where], *, also: Iterable[_Where] = (),
) -> list[SpecProblem]:
    """The problems of each (file, YAML path, reference) a definition names: what does not
    load from ``code_paths``, at its ``file:line``; and each (file, YAML path, message) of
    ``also`` there too."""
    loader = CodeLoader(code_paths)
    lines: dict[str, Any] = {}
    problems: list[SpecProblem] = []
    found = [(file, loc, loader.problem(ref)) for file, loc, ref in refs]
    for file, loc, message in [*found, *also]:
        if message is None:
            continue
        if file not in lines:
            try:
                text = Path(file).read_text(encoding="utf-8")
            except (OSError, ValueError):
                text = ""
            lines[file] = load_yaml_with_lines(text, file)[1]
        problems.append(lines[file].problem(loc, message))
    return problems


# -- what the function is given ----------------------------------------------------------------


class CodeResponse:
    """An upstream's answer to one of the client's requests."""

    __slots__ = ("_error", "_raw", "_redact", "status", "url")

    def __init__(self, raw: RawResponse, url: str, redact: Redactor,
                 error: Callable[[], CallError]) -> None:
        self._raw = raw
        self._redact = redact
        self._error = error
        self.status = raw.status
        #: the URL requested, secrets redacted
        self.url = url

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._raw.headers

    @property
    def content(self) -> bytes:
        return self._raw.body

    @property
    def ok(self) -> bool:
        return self._raw.ok

    def text(self) -> str:
        return self._raw.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ResponseMappingError (a CallError) when it is not."""
        try:
            return orjson.loads(self._raw.body)
        except orjson.JSONDecodeError:
            raise ResponseMappingError(
                f"the upstream's answer to {self.url} is not JSON: "
                f"{excerpt(self._raw.body, self._redact, 120)!r}") from None

    def raise_for_status(self) -> None:
        """Raise the typed error of an error status (as the connector's error rules say:
        AuthError, NotFoundError, RateLimitedError...), which the call then fails with."""
        if not self._raw.ok:
            raise self._error()

    def __repr__(self) -> str:
        return f"<CodeResponse {self.status} {self.url}>"


class ConnectionClient:
    """Requests to one connection's API, as custom code makes them: each through the HTTP
    core with the connection's base URL, auth, SSRF guard, limits, retries and breaker.
    Holds the connection's credentials: never log or serialise it (its repr names only)."""

    def __init__(self, runner: CodeRunner, compiled: CompiledAction, conn: ResolvedConnection,
                 request: CallRequest, request_id: str) -> None:
        self._runner = runner
        self._compiled = compiled
        self._conn = conn
        self._request = request
        self._request_id = request_id
        self._open = True
        self._renewed = False
        self.requests = 0
        self.attempts = 0
        self.rate_limit_wait = 0.0
        self.last_status: int | None = None

    @property
    def connection(self) -> str:
        return self._conn.record.name

    @property
    def connector(self) -> str:
        return self._conn.connector.name

    @property
    def base_url(self) -> str:
        return self._conn.base_url

    @property
    def idempotency_key(self) -> str | None:
        """The call's idempotency key (a flow step's ``<run id>:<step>``, the same when a
        step is run again after a crash), for the code to send in the upstream's
        idempotency header of a request that must be applied once; None when the caller
        gave none."""
        return self._request.idempotency_key

    @property
    def settings(self) -> dict[str, Any]:
        """The connection's settings that are not secret (an account id, a region...)."""
        return dict(self._conn.record.settings)

    def __repr__(self) -> str:
        return f"ConnectionClient({self.connection!r}, connector={self.connector!r})"

    def close(self) -> None:
        self._open = False

    async def get(self, path: str, **options: Any) -> CodeResponse:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> CodeResponse:
        return await self.request("POST", path, **options)

    async def request(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
        json: Any = None, data: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> CodeResponse:
        """Send ``method`` to ``path`` under the connection's base URL (``query``: its
        parameters; ``json`` or ``data``: its body) and return the answer, whatever its
        status (``raise_for_status()`` raises the typed error of an error status).
        Transport failures raise their typed CallError (timeout, connection, blocked
        destination, open circuit)."""
        compiled, conn = self._compiled, self._conn
        context = CallContext(action=compiled.qualified, connection=conn.record.name,
                              request_id=self._request_id, run_id=self._request.run_id)
        if not self._open:
            raise CustomCodeError(f"{compiled.qualified}: the client was used after its call "
                                  "ended (a task the function left running?)", context=context)
        if self.requests >= MAX_CODE_REQUESTS:
            raise CustomCodeError(f"{compiled.qualified}: more than {MAX_CODE_REQUESTS} "
                                  "requests in one call", context=context)
        self.requests += 1
        verb = method.upper() if isinstance(method, str) else ""
        if verb not in _METHODS:
            raise RequestRenderError(f"{compiled.qualified}: {str(method)[:20]!r} is not an "
                                     "HTTP method", context=context)
        context.method = verb
        req = self._prepare(verb, _checked_path(path, context), query, json, data, headers,
                            context)
        raw = await self._send(req, context)
        if (not raw.ok and conn.access_token is not None and not self._renewed
                and compiled.error_for(raw, {}, context, conn.redact).token_expired):
            # the upstream refused a token we believed valid: renew it once (single-flight
            # with every other caller), as a declared action's call does, and send again
            self._renewed = True
            conn = self._conn = await self._runner.renew(conn)
            req = self._prepare(verb, _checked_path(path, context), query, json, data,
                                headers, context)
            raw = await self._send(req, context)
        self.last_status = raw.status
        url = conn.redact(req.url)
        arguments = self._request.arguments
        redact = conn.redact

        def error() -> CallError:
            return compiled.error_for(raw, arguments, context, redact)

        return CodeResponse(raw, url, redact, error)

    def _prepare(self, verb: str, path: str, query: Mapping[str, Any] | None, json: Any,
                 data: bytes | str | Mapping[str, Any] | None,
                 headers: Mapping[str, str] | None, context: CallContext) -> PreparedRequest:
        conn = self._conn
        merged = dict(conn.headers)
        for name, value in (headers or {}).items():
            if not isinstance(name, str) or not isinstance(value, str) or BREAKS_HEADER.search(
                    name + value) or not name:
                raise RequestRenderError(f"header {str(name)[:40]!r} must be text without "
                                         "line breaks", context=context)
            merged[name] = value
        merged["X-Request-Id"] = self._request_id
        params: dict[str, str] = {}
        for key, value in (query or {}).items():
            if value is None:
                continue
            params[str(key)] = (",".join(_query_text(v) for v in value)
                                if isinstance(value, list | tuple) else _query_text(value))
        if conn.auth is not None:
            params.update(conn.auth.query)
        req = PreparedRequest(
            method=verb, url=conn.base_url + path, headers=merged, params=params or None,
            cookies=dict(conn.auth.cookies) if conn.auth and conn.auth.cookies else None,
            idempotent=verb in _IDEMPOTENT, credentials=conn.credential_headers)
        if json is not None and data is not None:
            raise RequestRenderError("give a request `json` or `data`, not both",
                                     context=context)
        if json is not None:
            try:
                req.data = orjson.dumps(json)
            except TypeError as exc:
                raise RequestRenderError(f"the request's json is not JSON: {exc}",
                                         context=context) from None
            _default_header(merged, "Content-Type", "application/json")
        elif isinstance(data, bytes):
            req.data = data
        elif isinstance(data, str):
            req.data = data.encode()
        elif isinstance(data, Mapping):
            req.data = urlencode([(str(k), _query_text(v)) for k, v in data.items()
                                  if v is not None]).encode()
            _default_header(merged, "Content-Type", "application/x-www-form-urlencoded")
        if conn.tls is not None:  # mutual TLS: the client certificate, as for any action
            req.tls = conn.tls
        if conn.signer is not None:  # last: the signature covers the request as sent
            conn.sign(req, context)
        return req

    async def _send(self, req: PreparedRequest, context: CallContext) -> RawResponse:
        compiled, conn = self._compiled, self._conn
        context.url = conn.redact(req.url)
        decision = RetryDecision()
        try:
            return await self._runner.http.send(
                req, timeouts=compiled.connector.timeouts, retry=compiled.connector.retry,
                context=context, decision=decision, connector=compiled.connector,
                connection=conn.record.name, end_user=conn.record.end_user)
        finally:
            self.attempts += decision.attempts
            self.rate_limit_wait += decision.rate_limit_wait


def _checked_path(path: Any, context: CallContext) -> str:
    """``path`` when it stays under the base URL: relative, no ``.``/``..`` segment (also
    percent-encoded), no query or fragment (those go in ``query=``), no blanks."""
    if not isinstance(path, str) or len(path) > 8192:
        raise RequestRenderError("a request's path must be text of at most 8192 characters",
                                 context=context)
    if any(ord(c) <= 32 or ord(c) == 127 for c in path) or "\\" in path:
        raise RequestRenderError("a request's path cannot hold blanks, control characters "
                                 "or backslashes", context=context)
    if "://" in path or path.startswith("//"):
        raise RequestRenderError(f"a request's path is relative to the connection's base URL, "
                                 f"not a URL of its own: {path[:100]!r}", context=context)
    if "?" in path or "#" in path:
        raise RequestRenderError("give a request's query parameters as query={...}, not in "
                                 "its path", context=context)
    decoded = path
    for _ in range(3):  # %252e%252e is %2e%2e is ..
        decoded = unquote(decoded)
    if any(segment in (".", "..") for segment in decoded.split("/")):
        raise RequestRenderError(f"a request's path cannot leave the base URL: "
                                 f"{path[:100]!r} has a '.' or '..' segment", context=context)
    return path if path.startswith("/") else "/" + path


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _default_header(headers: dict[str, str], name: str, value: str) -> None:
    if not any(k.lower() == name.lower() for k in headers):
        headers[name] = value


# -- one call ----------------------------------------------------------------------------------


class CodeStepAction(CompiledAction):
    """A flow's code step as the call path knows it (``code:<ref>[@connector]``)."""

    bound: bool  # bound to a connector's connection (else its function gets no client)


#: the connector of a code step bound to none: no connection, no requests
_UNBOUND = ConnectorSpec(name="code", title="custom code without a connector",
                         base_url="http://code.invalid")

class CodeRunner:
    """Runs custom code for the call path; one per :class:`~patchwire.calls.CallPath`."""

    def __init__(self, code_paths: Sequence[Path], connections: ConnectionResolver,
                 http: HttpCore, record: Callable[[CallRecord], None]) -> None:
        self.loader = CodeLoader(code_paths)
        self.connections = connections
        self.http = http
        self._record = record
        self._steps: dict[str, CompiledAction] = {}

    def reload(self) -> None:
        self.loader.forget()
        self._steps.clear()  # compiled over connectors that may have changed

    def step_action(self, qualified: str,
                    connectors: ConnectorRegistry) -> CompiledAction | None:
        """The compiled action of a flow code step's name; None for any other name. The
        code is not imported here: only a flow run's call does (see :meth:`run`)."""
        known = self._steps.get(qualified)
        if known is not None:
            return known
        target = code_step_target(qualified)
        if target is None:
            return None
        ref, connector = target
        spec = connectors.get(connector) if connector is not None else _UNBOUND
        compiled = CodeStepAction(spec, ref, ActionSpec(code=ref, input={}))
        compiled.bound = connector is not None
        if len(self._steps) >= MAX_STEP_ACTIONS:
            self._steps.clear()
        self._steps[qualified] = compiled
        return compiled

    async def renew(self, conn: ResolvedConnection) -> ResolvedConnection:
        assert conn.access_token is not None
        await self.connections.renew(conn.record.name, conn.access_token)
        return await self.connections.resolve(conn.record.name, conn.connector.name)

    async def run(self, compiled: CompiledAction, request: CallRequest,
                  validated: bool) -> CallOutcome:
        """One call of a code action or step: its outcome, or its typed CallError (every
        call that ran, failed or not, is recorded)."""
        step = isinstance(compiled, CodeStepAction)
        if step and request.run_id is None:
            # a code step's name is the flows' own: a request from elsewhere (the API, a
            # tool) that names one is refused like an unknown action, before any import
            raise UnknownAction(f"{compiled.qualified} is a flow's code step; it runs only "
                                "as part of a flow run")
        if request.page is not None:
            raise PaginationError(
                f"{compiled.qualified} is custom code: its function returns every record "
                "itself and cannot be called page by page (a connector's pagination does "
                "not apply to it)", context=CallContext(action=compiled.qualified))
        conn: ResolvedConnection | None = None
        if not isinstance(compiled, CodeStepAction) or compiled.bound:
            connector, end_user = compiled.connector.name, request.end_user
            name = request.connection or await self.connections.default_for(connector,
                                                                             end_user)
            conn = (self.connections.ready(name, connector)
                    or await self.connections.resolve(name, connector))
            if end_user is not None:
                check_end_user(conn, end_user)
        return await self._call(compiled, request, conn, validated)

    async def _call(self, compiled: CompiledAction, request: CallRequest,
                    conn: ResolvedConnection | None, validated: bool) -> CallOutcome:
        assert compiled.code is not None
        record_id = new_id()
        request_id = request.request_id or record_id
        context = CallContext(action=compiled.qualified,
                              connection=conn.record.name if conn else None,
                              request_id=request_id, run_id=request.run_id)
        started_wall, started = time.time(), time.perf_counter()
        redact = _redactor(conn)
        client: ConnectionClient | None = None
        total = compiled.connector.timeouts.total
        result: Any = None
        try:
            if not validated:
                compiled.validate(request.arguments, context)
            if conn is not None and conn.auth is None:
                raise RequestRenderError(
                    f"connection {conn.record.name!r} has no value for "
                    f"{conn.missing_credential!r}, which {compiled.connector.name}'s "
                    f"{compiled.connector.auth.type} auth needs", context=context)
            try:
                fn = self.loader.function(compiled.code)
            except CodeLoadError as exc:
                log.warning("custom code %s of %s cannot be loaded: %s", compiled.code,
                            compiled.qualified, redact(str(exc)))
                raise CustomCodeError(f"{compiled.qualified}: custom code {compiled.code}: "
                                      f"{exc.public}", context=context) from None
            if conn is not None:
                client = ConnectionClient(self, compiled, conn, request, request_id)
            # the function gets its own copy: what it changes is not the caller's input
            given = orjson.loads(orjson.dumps(request.arguments))
            timer = asyncio.timeout(total)
            try:
                async with timer:
                    returned = await fn(given, client)
            except TimeoutError:
                if not timer.expired():
                    raise  # the function's own TimeoutError: an exception like any other
                raise CallTimeoutError(
                    f"{compiled.qualified}: custom code took longer than {total:g} s (the "
                    "connector's total timeout)", context=context) from None
            result = _json_result(returned, compiled, context)
        except CallError as exc:
            # passed as it is (its own type, status...), with what it says redacted
            exc.message = _short(redact(exc.message), 1000)
            exc.args = (exc.message,)
            if exc.context.action is None:
                exc.context = context
            return self._fail(compiled, conn, record_id, request_id, client, exc,
                              started, started_wall)
        except (Exception, SystemExit) as exc:  # sys.exit() in the code must not end us
            error = CustomCodeError(
                f"{compiled.qualified}: custom code raised {type(exc).__name__}: "
                f"{_short(redact(_text(exc)))}",
                exception_type=type(exc).__name__, context=context)
            # for the operator: where in the deployment's code, never its source lines
            log.warning("custom code %s raised %s: %s", compiled.code, type(exc).__name__,
                        _short(redact(_text(exc))),
                        extra={"action": compiled.qualified, "where": self._where(exc)})
            return self._fail(compiled, conn, record_id, request_id, client, error,
                              started, started_wall)
        finally:
            if client is not None:
                client.close()
        latency = (time.perf_counter() - started) * 1000
        attempts = client.attempts if client else 0
        status = client.last_status if client else None
        self._record(_record(compiled, conn, record_id, request_id, "ok", status, latency,
                             attempts, None, None, started_wall,
                             client.rate_limit_wait if client else 0.0))
        return CallOutcome(result, status or 200, attempts, latency, request_id)

    def _fail(self, compiled: CompiledAction, conn: ResolvedConnection | None, record_id: str,
              request_id: str, client: ConnectionClient | None, error: CallError,
              started: float, started_wall: float) -> CallOutcome:
        latency = (time.perf_counter() - started) * 1000
        message = error.message
        if isinstance(error, CustomCodeError) and error.exception_type:
            message = f"[{error.exception_type}] {message}"
        self._record(_record(compiled, conn, record_id, request_id, "error",
                             client.last_status if client else None, latency,
                             client.attempts if client else 0, error.code, message,
                             started_wall, client.rate_limit_wait if client else 0.0))
        raise error

    def _where(self, exc: BaseException) -> str | None:
        """``file:line in function`` of the innermost frame in the code directories."""
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if self.loader.inside(frame.filename):
                return f"{frame.filename}:{frame.lineno} in {frame.name}"
        return None


def _redactor(conn: ResolvedConnection | None) -> Callable[[str], str]:
    """The connection's secrets in every encoding, then every secret this process knows
    and every secret-shaped value (``token=...``, ``Bearer ...``)."""
    if conn is None:
        return redact_text
    redact = conn.redact
    return lambda text: redact_text(redact(text))


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        return "(its message cannot be read)"


def _short(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())  # one line: no traceback-like layout reaches a model
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_result(value: Any, compiled: CompiledAction, context: CallContext) -> Any:
    """What the function returned, checked to be JSON (and not too big), as a fresh copy,
    mapped by the action's ``response`` expression when it has one."""
    problem = _not_json(value, "$", 0)
    if problem is not None:
        raise CustomCodeError(f"{compiled.qualified}: custom code returned {problem}; it must "
                              "return JSON (dicts with text keys, lists, text, numbers, "
                              "booleans, None)", context=context)
    blob = orjson.dumps(value)
    if len(blob) > MAX_CODE_RESULT_BYTES:
        raise CustomCodeError(f"{compiled.qualified}: custom code returned {len(blob)} bytes "
                              f"of JSON, over the {MAX_CODE_RESULT_BYTES} allowed",
                              context=context)
    result = orjson.loads(blob)
    if compiled.response is not None and not compiled.response_is_body:
        try:
            return compiled.response.evaluate(result, None)
        except ExpressionError as exc:
            raise ResponseMappingError(f"response mapping {compiled.response.source!r} "
                                       f"failed: {exc}", context=context) from None
    return result


def _not_json(value: Any, where: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"a value nested over {MAX_DEPTH} deep at {where}"
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, int):
        return None if -(2 ** 63) <= value < 2 ** 64 else f"an integer too large at {where}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} at {where}"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"a {type(key).__name__} key at {where}"
            problem = _not_json(item, f"{where}.{key[:40]}", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problem = _not_json(item, f"{where}[{i}]", depth + 1)
            if problem is not None:
                return problem
        return None
    return f"a {type(value).__name__} at {where}"


def _record(compiled: CompiledAction, conn: ResolvedConnection | None, record_id: str,
            request_id: str, status: str, http_status: int | None, latency_ms: float,
            attempts: int, error_class: str | None, error_message: str | None,
            started_wall: float, rate_limit_wait: float) -> CallRecord:
    # as calls._path._record, for a call that may have no connection (a code step)
    observe_call(compiled.connector.name, compiled.qualified, error_class or status,
                 latency_ms, attempts)
    return CallRecord(
        record_id, request_id, compiled.qualified, compiled.connector.name,
        conn.record.name if conn is not None else None, status, http_status, latency_ms,
        attempts, error_class, error_message[:1000] if error_message else None,
        datetime.fromtimestamp(started_wall, UTC), rate_limit_wait * 1000)
