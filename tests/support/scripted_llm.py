"""Scripted model servers on loopback: an OpenAI-compatible Chat Completions endpoint and an
Anthropic-shaped Messages endpoint that answer from a script instead of a model.

    async with OpenAIServer([call("shop_get_order", {"order_id": "42"}), say("Shipped.")]) as llm:
        client = OpenAIChatClient(model="m", api_key="k", base_url=llm.base_url)
        ...
        assert llm.tool_results(1)[0].text.startswith("{")

Each request pops the next step of the script: a :class:`Reply` (text and/or tool calls), a
:class:`Failure` (an HTTP error in the provider's error shape), or a function of the request
body returning either (to answer with data the test only learns mid-conversation). Every
request body and the key it carried are recorded so tests can assert what the model was sent.
The responses follow the real APIs' shapes closely enough for the official SDKs to parse them.
A request after the script ran out gets an HTTP 500 saying so, which fails the test loudly.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class Call:
    """A tool call the scripted model makes. ``arguments`` given as a string is sent as is
    (OpenAI: possibly invalid JSON; Anthropic: parsed, so keep it valid there)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One model answer: optional text, then tool calls (none: a final answer)."""

    text: str | None = None
    calls: tuple[Call, ...] = ()


@dataclass(frozen=True)
class Failure:
    """An HTTP error answer in the provider's error shape."""

    status: int
    message: str
    kind: str = "api_error"


Step = Reply | Failure | Callable[[dict[str, Any]], "Reply | Failure"]


def say(text: str) -> Reply:
    return Reply(text=text)


def call(name: str, arguments: Mapping[str, Any] | str | None = None, *,
         text: str | None = None) -> Reply:
    """A reply with one tool call (and optionally some text before it)."""
    return Reply(text=text, calls=(Call(name, {} if arguments is None else arguments),))


def calls(*made: Call, text: str | None = None) -> Reply:
    """A reply with several tool calls, which the client may run in parallel."""
    return Reply(text=text, calls=tuple(made))


@dataclass(frozen=True)
class SeenResult:
    """A tool result as the model received it, in either provider's format."""

    call_id: str
    text: str
    is_error: bool | None  # None: the format has no error flag (Chat Completions)


class ScriptedLLM:
    """The shared part: a loopback aiohttp server popping script steps."""

    provider = ""
    path = ""

    def __init__(self, script: Iterable[Step] = (), *, api_key: str | None = None) -> None:
        self.script: deque[Step] = deque(script)
        #: when set, a request carrying another key is answered 401 (echoing what it got,
        #: like a careless server would: a test can then check the client scrubs it)
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.keys: list[str | None] = []
        self.headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self._url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the scripted server is not running")
        return self._url

    @property
    def base_url(self) -> str:
        """What to give the provider's SDK as its base URL."""
        return self.url

    def add(self, *steps: Step) -> None:
        self.script.extend(steps)

    # -- what the model was sent -------------------------------------------------------------

    def tool_names(self, request: int = 0) -> list[str]:
        raise NotImplementedError

    def tool_results(self, request: int) -> list[SeenResult]:
        """The tool results given in request ``request`` (those after the last assistant
        message), in order."""
        raise NotImplementedError

    def transcript(self) -> str:
        """Every request body, for looking for things that must not be there."""
        return "\n".join(json.dumps(r, sort_keys=True) for r in self.requests)

    # -- answering ---------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def key_of(self, request: web.Request) -> str | None:
        raise NotImplementedError

    def render(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, failure: Failure) -> dict[str, Any]:
        raise NotImplementedError

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = self.key_of(request)
        self.requests.append(body)
        self.keys.append(key)
        self.headers.append(dict(request.headers))
        if self.api_key is not None and key != self.api_key:
            failure = Failure(401, f"Incorrect API key provided: {key}",
                              "authentication_error")
            return web.json_response(self.error_body(failure), status=failure.status)
        if not self.script:
            failure = Failure(500, f"the script ran out at request {len(self.requests)}")
            return web.json_response(self.error_body(failure), status=500)
        step = self.script.popleft()
        if callable(step):
            step = step(body)
        if isinstance(step, Failure):
            return web.json_response(self.error_body(step), status=step.status)
        return web.json_response(self.render(step, body))


class OpenAIServer(ScriptedLLM):
    """``POST /v1/chat/completions`` (non-streaming), as OpenAI and compatible servers."""

    provider = "openai"
    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"  # the SDK appends /chat/completions

    def key_of(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def render(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        tool_calls = [{
            "id": c.id or self.next_id("call_"),
            "type": "function",
            "function": {"name": c.name,
                         "arguments": c.arguments if isinstance(c.arguments, str)
                         else json.dumps(c.arguments)},
        } for c in reply.calls]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text,
                                   "refusal": None, "annotations": []}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "id": self.next_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            "system_fingerprint": "fp_scripted",
        }

    def error_body(self, failure: Failure) -> dict[str, Any]:
        return {"error": {"message": failure.message, "type": failure.kind, "param": None,
                          "code": None}}

    def tool_names(self, request: int = 0) -> list[str]:
        return [t["function"]["name"] for t in self.requests[request].get("tools", [])]

    def tools(self, request: int = 0) -> list[dict[str, Any]]:
        return list(self.requests[request].get("tools", []))

    def tool_results(self, request: int) -> list[SeenResult]:
        messages = self.requests[request]["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        return [SeenResult(m["tool_call_id"], m["content"], None)
                for m in messages[last + 1:] if m["role"] == "tool"]


class AnthropicServer(ScriptedLLM):
    """``POST /v1/messages`` (non-streaming), as the Anthropic Messages API."""

    provider = "anthropic"
    path = "/v1/messages"

    def key_of(self, request: web.Request) -> str | None:
        # the API takes the key as x-api-key; SDK 2.x sends it as a bearer token
        if "x-api-key" in request.headers:
            return request.headers["x-api-key"]
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def render(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for c in reply.calls:
            arguments = json.loads(c.arguments) if isinstance(c.arguments, str) else c.arguments
            content.append({"type": "tool_use", "id": c.id or self.next_id("toolu_"),
                            "name": c.name, "input": dict(arguments)})
        return {
            "id": self.next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "scripted"),
            "content": content,
            "stop_reason": "tool_use" if reply.calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def error_body(self, failure: Failure) -> dict[str, Any]:
        return {"type": "error", "error": {"type": failure.kind, "message": failure.message}}

    def tool_names(self, request: int = 0) -> list[str]:
        return [t["name"] for t in self.requests[request].get("tools", [])]

    def tools(self, request: int = 0) -> list[dict[str, Any]]:
        return list(self.requests[request].get("tools", []))

    def tool_results(self, request: int) -> list[SeenResult]:
        messages = self.requests[request]["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        seen: list[SeenResult] = []
        for m in messages[last + 1:]:
            if m["role"] != "user" or not isinstance(m["content"], list):
                continue
            for block in m["content"]:
                if block.get("type") != "tool_result":
                    continue
                inner = block.get("content", "")
                text = inner if isinstance(inner, str) else "".join(
                    b.get("text", "") for b in inner if b.get("type") == "text")
                seen.append(SeenResult(block["tool_use_id"], text,
                                       bool(block.get("is_error", False))))
        return seen
