"""Recorded exchanges: record what an upstream really answered, redacted, to a JSON file;
replay it through a :class:`~patchwire.http.MockTransport` in tests.

The file (UTF-8 JSON, meant to be read and edited by hand)::

    {
      "format": "patchwire-recording",
      "version": 1,
      "exchanges": [
        {
          "request": {"method": "GET",
                      "url": "https://api.example.com/orders/42?expand=items",
                      "headers": {"Accept": "application/json", "X-Api-Key": "***"}},
          "response": {"status": 200,
                       "headers": [["Content-Type", "application/json"]],
                       "json": {"id": "42"}}
        }
      ]
    }

A request may carry ``"json"`` (a JSON body) or ``"form"`` (form fields); a response's body
is one of ``"json"`` (a JSON value), ``"text"`` (UTF-8 text) or ``"base64"`` (anything
else), or none for an empty body.

Replay matches a request by its method and URL (scheme, host, port, path and the query
parameters in any order; a recorded query value ``***`` matches any value), and answers
with the first matching exchange not used yet: so the same request twice gets the two
recorded answers in their order. Bodies and headers are kept for reading, not matched.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from yarl import URL

from patchwire.errors import RecordingError, UnrecordedRequest
from patchwire.http import (
    REDACTED,
    HttpCore,
    Limits,
    PreparedRequest,
    RawResponse,
    Redactor,
    Transport,
)
from patchwire.observability import redact_text

__all__ = ["Exchange", "Recording", "RecordingTransport", "Replay"]

FORMAT = "patchwire-recording"
VERSION = 1

#: request headers recorded as ``***`` whatever the connector says: they carry credentials
#: or session state in every API
_ALWAYS_SECRET = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: headers that describe the bytes on the wire, not the (decoded) body a recording keeps
_WIRE_ONLY = frozenset({"content-length", "content-encoding", "transfer-encoding",
                        "connection", "keep-alive"})


# -- the file's shape -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Strict):
    method: str = Field(min_length=1)
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, str] | None = None


class _Response(_Strict):
    status: int = Field(ge=100, le=599)
    headers: list[tuple[str, str]] = Field(default_factory=list)
    json_body: Any = Field(default=None, alias="json")
    text: str | None = None
    base64: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> _Response:
        given = [name for name, present in (("json", "json_body" in self.model_fields_set),
                                            ("text", self.text is not None),
                                            ("base64", self.base64 is not None)) if present]
        if len(given) > 1:
            raise ValueError(f"a response has one body, not {' and '.join(given)}")
        return self


class _Exchange(_Strict):
    request: _Request
    response: _Response


class _File(_Strict):
    format: Literal["patchwire-recording"]
    version: Literal[1]
    exchanges: list[_Exchange]


# -- in memory ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the answer it got, as recorded (secrets already redacted).
    ``body`` is the response's decoded body."""

    method: str
    url: str
    status: int
    body: bytes = b""
    request_headers: Mapping[str, str] = field(default_factory=dict)
    response_headers: tuple[tuple[str, str], ...] = ()
    #: the request's JSON body, or its form fields, when it had one
    request_json: Any = None
    request_form: Mapping[str, str] | None = None

    def response(self, url: str) -> RawResponse:
        """The recorded answer as the HTTP core receives one (its URL: ``url``)."""
        return RawResponse(self.status, CIMultiDictProxy(CIMultiDict(self.response_headers)),
                           self.body, url)

    def matches(self, method: str, url: str) -> bool:
        return method.upper() == self.method.upper() and _same_url(self.url, url)


class Recording:
    """Exchanges in the order they happened; :meth:`load` and :meth:`save` read and write
    the JSON file described in this module."""

    def __init__(self, exchanges: Iterable[Exchange] = ()) -> None:
        self.exchanges: list[Exchange] = list(exchanges)

    def __len__(self) -> int:
        return len(self.exchanges)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """The recording in ``path``; a missing, unreadable or malformed file is a
        :class:`~patchwire.errors.RecordingError` naming the file and where it is wrong."""
        where = os.fspath(path)
        try:
            raw = Path(where).read_bytes()
        except OSError as exc:
            raise RecordingError(f"{where}: cannot read the recording: "
                                 f"{exc.strerror or exc}") from None
        return cls.from_json(raw, source=where)

    @classmethod
    def from_json(cls, raw: bytes | str, *, source: str = "<recording>") -> Recording:
        try:
            document = _File.model_validate_json(raw)
        except ValidationError as exc:
            raise RecordingError(f"{source}: not a Patchwire recording: "
                                 + "; ".join(_problem(e) for e in exc.errors())) from None
        exchanges = []
        for i, item in enumerate(document.exchanges):
            try:
                body = _body_of(item.response)
            except ValueError as exc:
                raise RecordingError(
                    f"{source}: exchanges[{i}].response.base64: {exc}") from None
            req = item.request
            exchanges.append(Exchange(
                req.method.upper(), req.url, item.response.status, body,
                dict(req.headers), tuple(item.response.headers),
                req.json_body, req.form))
        return cls(exchanges)

    def to_json(self) -> bytes:
        document = {"format": FORMAT, "version": VERSION,
                    "exchanges": [_exchange_json(e) for e in self.exchanges]}
        return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the recording to ``path`` (created with its folders, replaced whole: a
        reader never sees half a file); returns the path."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(self.to_json())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RecordingError(f"{target}: cannot write the recording: "
                                 f"{exc.strerror or exc}") from None
        return target


# -- recording ----------------------------------------------------------------------------------


class RecordingTransport:
    """A :class:`~patchwire.http.Transport` that sends through ``inner`` (the real one) and
    keeps every answered exchange in :attr:`recording`, redacted: the headers carrying the
    connection's credentials (and Authorization, Cookie) become ``***``, and every secret
    value Patchwire knows of (the connections' credentials) or given in ``secrets`` is
    replaced, in any encoding, in URLs, headers and bodies. Failures (timeouts, refused
    connections) pass through unrecorded.

    ``RecordingTransport.around(http)`` puts one in front of an HTTP core's transport."""

    def __init__(self, inner: Transport, *, secrets: Iterable[str] = ()) -> None:
        self.inner = inner
        self.recording = Recording()
        self._secrets = [s for s in secrets if s]

    @classmethod
    def around(cls, http: HttpCore, *, secrets: Iterable[str] = ()) -> RecordingTransport:
        """Records everything ``http`` sends from now on (it keeps its own transport
        behind the recorder, and closes it with itself as before)."""
        recorder = cls(http.transport, secrets=secrets)
        http.transport = recorder
        return recorder

    async def handle(self, request: PreparedRequest, limits: Limits) -> RawResponse:
        response = await self.inner.handle(request, limits)
        self.recording.exchanges.append(self._redacted(request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def save(self, path: str | os.PathLike[str]) -> Path:
        return self.recording.save(path)

    def _redacted(self, request: PreparedRequest, response: RawResponse) -> Exchange:
        hidden = _ALWAYS_SECRET | {name.lower() for name in request.credentials}
        secrets = [*self._secrets, *_credential_values(request.headers, hidden)]
        clean = _Cleaner(secrets)
        headers = {name: REDACTED if name.lower() in hidden else clean(value)
                   for name, value in request.headers.items()
                   if name.lower() not in _WIRE_ONLY}
        form = ({str(k): clean(str(v)) for k, v in request.data.items()}
                if isinstance(request.data, Mapping) else None)
        answer_headers = tuple(
            (name, REDACTED if name.lower() in _ALWAYS_SECRET else clean(value))
            for name, value in response.headers.items() if name.lower() not in _WIRE_ONLY)
        return Exchange(
            request.method.upper(), clean(_full_url(request.url, request.params)),
            response.status, clean.body(response.body), headers, answer_headers,
            clean.value(request.json), form)


class _Cleaner:
    """Redaction of one exchange: the known secrets (Patchwire's book of connection
    credentials, the recorder's ``secrets``, this request's credential headers) and
    secret-shaped text (``Bearer ...``, ``api_key=...``)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._own = Redactor(secrets)

    def __call__(self, text: str) -> str:
        return redact_text(self._own(text))

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def body(self, body: bytes) -> bytes:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return body  # not text: no secret of ours can be read in it as such
        return self(text).encode()


def _credential_values(headers: Mapping[str, str], hidden: frozenset[str]) -> list[str]:
    """The secret parts of credential headers: the whole value and, for ``Scheme token``,
    the token (an upstream echoing it back is redacted too)."""
    values = []
    for name, value in headers.items():
        if name.lower() in hidden and value:
            values.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                values.append(token)
    return values


# -- replaying ----------------------------------------------------------------------------------


class Replay:
    """Answers requests from a recording: a handler for
    :class:`~patchwire.http.MockTransport` (``MockTransport(Replay(path))``).

    Each recorded exchange answers once, in the recorded order among those matching; a
    request none answers raises :class:`~patchwire.errors.UnrecordedRequest` naming it
    (a test error, never retried). :meth:`assert_all_used` checks that the test made every
    recorded request."""

    def __init__(self, recording: Recording | str | os.PathLike[str]) -> None:
        if isinstance(recording, Recording):
            self.source = "the recording"
            self.recording = recording
        else:
            self.source = os.fspath(recording)
            self.recording = Recording.load(recording)
        self._used = [False] * len(self.recording.exchanges)

    def __call__(self, request: PreparedRequest) -> RawResponse:
        url = _full_url(request.url, request.params)
        method = request.method.upper()
        for i, exchange in enumerate(self.recording.exchanges):
            if not self._used[i] and exchange.matches(method, url):
                self._used[i] = True
                return exchange.response(request.url)
        shown = _Cleaner(_credential_values(
            request.headers, _ALWAYS_SECRET | {n.lower() for n in request.credentials}))(url)
        raise UnrecordedRequest(self._why_not(method, url, shown), method=method, url=shown)

    @property
    def unused(self) -> list[Exchange]:
        """The recorded exchanges no request has used yet."""
        return [e for e, used in zip(self.recording.exchanges, self._used, strict=True)
                if not used]

    def assert_all_used(self) -> None:
        """AssertionError listing the recorded requests the test never made."""
        left = self.unused
        if left:
            listed = ", ".join(f"{e.method} {e.url}" for e in left)
            raise AssertionError(f"{len(left)} recorded request(s) of {self.source} were "
                                 f"never made: {listed}")

    def _why_not(self, method: str, url: str, shown: str) -> str:
        same = [i for i, e in enumerate(self.recording.exchanges) if e.matches(method, url)]
        if same:
            return (f"{method} {shown}: its {len(same)} recorded answer(s) in {self.source} "
                    f"were all used (each answers once)")
        path = URL(url).path
        near = sorted({f"{e.method} {e.url}" for e in self.recording.exchanges
                       if URL(e.url).path == path or e.method == method})
        hint = f"; recorded for this path or method: {', '.join(near[:5])}" if near else ""
        return f"{method} {shown}: no recorded answer in {self.source}{hint}"


# -- helpers ------------------------------------------------------------------------------------


def _full_url(url: str, params: Mapping[str, str] | None) -> str:
    """The URL with the request's query parameters, as the transports send it."""
    return str(URL(url).extend_query(params)) if params else url


def _same_url(recorded: str, sent: str) -> bool:
    a, b = URL(recorded), URL(sent)
    if (a.scheme, a.host, a.port, a.path) != (b.scheme, b.host, b.port, b.path):
        return False
    mine, theirs = sorted(a.query.items()), sorted(b.query.items())
    if len(mine) != len(theirs):
        return False
    return all(k1 == k2 and v1 in (REDACTED, v2)
               for (k1, v1), (k2, v2) in zip(mine, theirs, strict=True))


def _body_of(response: _Response) -> bytes:
    if response.base64 is not None:
        try:
            return base64.b64decode(response.base64, validate=True)
        except ValueError:
            raise ValueError("not valid base64") from None
    if response.text is not None:
        return response.text.encode()
    if "json_body" in response.model_fields_set:
        return orjson.dumps(response.json_body)
    return b""


def _exchange_json(e: Exchange) -> dict[str, Any]:
    request: dict[str, Any] = {"method": e.method, "url": e.url,
                               "headers": dict(e.request_headers)}
    if e.request_json is not None:
        request["json"] = e.request_json
    if e.request_form is not None:
        request["form"] = dict(e.request_form)
    response: dict[str, Any] = {"status": e.status,
                                "headers": [list(pair) for pair in e.response_headers]}
    if e.body:
        response.update(_body_json(e.body, dict(e.response_headers)))
    return {"request": request, "response": response}


def _body_json(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The most readable faithful form of a body: parsed JSON when it is JSON (and says
    so), else text, else base64."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "json" in content_type.lower():
        try:
            return {"json": orjson.loads(body)}
        except orjson.JSONDecodeError:
            pass
    try:
        return {"text": body.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode()}


def _problem(error: Any) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    return f"{where.lstrip('.') or 'the document'}: {error['msg']}"
