"""The chat loop: a conversation with a model that calls Patchwire tools.

    user text → model (OpenAI-compatible Chat Completions or Anthropic Messages)
      ↳ tool calls → ToolInvoker.invoke (in parallel) → results back to the model → repeat
      ↳ text → the answer of the turn

:class:`ChatSession` is provider-neutral: it keeps the conversation, runs the tool calls
through the invoker (validation, approval gate, call path, audit) and bounds the number of
tool rounds. A :class:`ChatClient` speaks one provider's wire format; the history is kept in
that format so it can be sent back unchanged. The official SDKs (``openai``, ``anthropic``)
do the HTTP; their errors are turned into :class:`ChatError` here, at the boundary, with the
API key scrubbed from the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

from patchwire.errors import (
    ChatError,
    ConfigError,
)
from patchwire.ids import new_id
from patchwire.tools._catalog import Tool
from patchwire.tools._export import to_anthropic, to_openai
from patchwire.tools._invoke import (
    ConfirmCallback,
    Decision,
    ToolInvoker,
    ToolResult,
    ToolStatus,
    redact_arguments,
)
from patchwire.tools._search_mode import SearchMode, ToolMode, check_tool_mode

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from openai import AsyncOpenAI

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "AnthropicChatClient",
    "ChatCallStatus",
    "ChatClient",
    "ChatError",
    "ChatSession",
    "ChatToolCall",
    "ChatTurn",
    "ModelReply",
    "ModelToolCall",
    "OpenAIChatClient",
    "Provider",
    "ask_in_thread",
    "make_client",
    "terminal_confirm",
]

log = logging.getLogger("patchwire.tools.chat")

Provider = Literal["openai", "anthropic"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")
DEFAULT_BASE_URLS: dict[Provider, str] = {"openai": "https://api.openai.com/v1",
                                          "anthropic": "https://api.anthropic.com"}
DEFAULT_KEY_ENV: dict[Provider, str] = {"openai": "OPENAI_API_KEY",
                                        "anthropic": "ANTHROPIC_API_KEY"}
#: what a loopback endpoint receives when no key is set: both SDKs insist on some key
NO_KEY = "no-key"

DEFAULT_SYSTEM_PROMPT = (
    "You are an assistant that acts on the user's business systems through the tools you "
    "are given. Use a tool whenever it can answer or do what the user asks rather than "
    "guessing. When a tool result says an approval is pending or was denied, tell the user "
    "plainly; never claim an action happened unless a tool result says it did.")

#: a tool call that was asked for but not run because the turn hit its tool-round bound
ChatCallStatus = ToolStatus | Literal["not_run"]

Message = dict[str, Any]



# -- what flows between the session and a client -------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelToolCall:
    """One tool call as the model asked for it. ``problem`` says why its arguments could
    not be read (invalid JSON); ``arguments`` is then None."""

    id: str
    name: str
    arguments: Any
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One answer of the model: its text, its tool calls, and ``message``, the assistant
    message to append to the history in the provider's own format (None: append nothing)."""

    text: str
    tool_calls: tuple[ModelToolCall, ...]
    message: Message | None


@dataclass(frozen=True, slots=True)
class ChatToolCall:
    """A tool call made during a turn and how it ended; ``text`` is what the model read."""

    name: str
    arguments: Any
    status: ChatCallStatus
    text: str
    approval_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """The outcome of :meth:`ChatSession.send`."""

    text: str
    tool_calls: list[ChatToolCall] = field(default_factory=list)
    rounds: int = 0
    #: True when the model still wanted tools after ``max_tool_rounds`` rounds
    hit_tool_limit: bool = False


class ChatClient(Protocol):
    """One provider's wire format and transport."""

    @property
    def label(self) -> str:
        """Who answers, for messages: "OpenAI-compatible endpoint http://…"."""
        ...

    def tool_definitions(self, tools: Sequence[Tool]) -> list[Message]: ...

    def user_message(self, text: str) -> list[Message]: ...

    def tool_messages(self, results: Sequence[tuple[ModelToolCall, ToolResult]]) -> list[Message]:
        """The messages that give the model its tool results, in call order."""
        ...

    async def complete(self, *, system: str | None, messages: Sequence[Message],
                       tools: Sequence[Message]) -> ModelReply: ...

    async def aclose(self) -> None: ...


# -- the session ----------------------------------------------------------------------------


class ChatSession:
    """A conversation: :meth:`send` one user message, get the answer after every tool call
    the model asked for has run.

    ``confirm`` asks a person about tools that need approval (see :func:`terminal_confirm`);
    without it the invoker files a pending approval and tells the model. Tool calls of one
    reply run in parallel, but a person is asked about one call at a time.

    ``mode="search"`` gives the model search mode's two meta-tools instead of every tool
    (:mod:`patchwire.tools._search_mode`): it finds tools with ``search_tools`` and runs
    them with ``call_tool``, through the same invoker.
    """

    def __init__(
        self, invoker: ToolInvoker, client: ChatClient, *,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, max_tool_rounds: int = 8,
        session_id: str | None = None, confirm: ConfirmCallback | None = None,
        mode: ToolMode = "all",
    ) -> None:
        if max_tool_rounds < 1:
            raise ConfigError(f"max_tool_rounds must be at least 1, got {max_tool_rounds}")
        self.invoker = invoker
        self.client = client
        self.system_prompt = system_prompt
        self.max_tool_rounds = max_tool_rounds
        self.session_id = session_id or new_id()
        self.history: list[Message] = []
        self._confirm = confirm
        self._asking = asyncio.Lock()
        # search mode's meta-tools, in the client's own format
        self._search = (SearchMode("anthropic" if isinstance(client, AnthropicChatClient)
                                   else "openai") if check_tool_mode(mode) == "search"
                        else None)

    async def send(self, user_text: str) -> ChatTurn:
        """Send ``user_text``; run the model's tool calls until it answers in text.

        Raises :class:`ChatError` when the provider fails. The history stays valid for the
        provider then (every assistant message with tool calls is followed by their
        results), so the conversation can go on.
        """
        # Before touching the history: a missing connection is a setup error, not a turn.
        catalog = await self.invoker.catalog()
        tools = (self._search.definitions() if self._search is not None
                 else self.client.tool_definitions(list(catalog)))
        self.history.extend(self.client.user_message(user_text))
        made: list[ChatToolCall] = []
        rounds = 0
        while True:
            reply = await self.client.complete(system=self.system_prompt,
                                               messages=self.history, tools=tools)
            if reply.message is not None:
                self.history.append(reply.message)
            if not reply.tool_calls:
                return ChatTurn(reply.text, made, rounds)
            if rounds >= self.max_tool_rounds:
                return self._stop_at_limit(reply, made, rounds)
            rounds += 1
            results = await asyncio.gather(*(self._run(call) for call in reply.tool_calls))
            pairs = list(zip(reply.tool_calls, results, strict=True))
            self.history.extend(self.client.tool_messages(pairs))
            made.extend(ChatToolCall(call.name, call.arguments, result.status, result.text,
                                     result.approval_id) for call, result in pairs)

    def _stop_at_limit(self, reply: ModelReply, made: list[ChatToolCall],
                       rounds: int) -> ChatTurn:
        # The calls still get a result each: a provider rejects a history where an
        # assistant's tool calls go unanswered, and the model learns why they did not run.
        text = (f"Not run: this turn reached its limit of {rounds} rounds of tool calls. "
                "Answer the user with what you have, or ask them to continue.")
        pairs = [(call, ToolResult("error", text)) for call in reply.tool_calls]
        self.history.extend(self.client.tool_messages(pairs))
        made.extend(ChatToolCall(call.name, call.arguments, "not_run", text)
                    for call in reply.tool_calls)
        note = (f"[Patchwire stopped this turn: the model still wanted to call tools after "
                f"{rounds} round(s) (the limit, --max-tool-rounds); "
                f"{len(reply.tool_calls)} call(s) were not run.]")
        answer = f"{reply.text.rstrip()}\n\n{note}" if reply.text.strip() else note
        return ChatTurn(answer, made, rounds, hit_tool_limit=True)

    async def _run(self, call: ModelToolCall) -> ToolResult:
        if call.problem is not None:
            # Nothing reached a tool, so there is nothing for the invoker to audit; the model
            # reads what was wrong and can try again.
            return ToolResult("invalid_arguments",
                              f"The arguments of {call.name} could not be read: {call.problem}. "
                              "Nothing was done. Call the tool again with a JSON object that "
                              "matches its input schema.")
        confirm = self._confirm_one_at_a_time if self._confirm is not None else None
        if self._search is not None:  # search_tools, call_tool (or a found tool by name)
            return await self._search.invoke(self.invoker, call.name, call.arguments,
                                             session_id=self.session_id, confirm=confirm)
        # invoke checks that the arguments are an object and tells the model when not
        return await self.invoker.invoke(call.name, cast(Mapping[str, Any] | None,
                                                         call.arguments),
                                         session_id=self.session_id, confirm=confirm)

    async def _confirm_one_at_a_time(self, tool: Tool,
                                     arguments: Mapping[str, Any]) -> Decision | None:
        assert self._confirm is not None
        async with self._asking:  # two prompts at once would interleave on a terminal
            return await self._confirm(tool, arguments)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> ChatSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# -- asking a person at the terminal --------------------------------------------------------


async def ask_in_thread(input_fn: Callable[[str], str], prompt: str) -> str:
    """``input_fn(prompt)`` on a daemon thread.

    The event loop keeps running while a person types (tool calls of other sessions, a
    sandbox in tests), and Ctrl-C leaves at once: ``asyncio.to_thread`` would use the default
    executor, whose threads are joined at exit, waiting for an Enter that never comes.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: Exception | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(str, value))

    def work() -> None:
        value: str | None = None
        error: Exception | None = None
        try:
            value = input_fn(prompt)
        except Exception as exc:  # EOFError above all; handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while a person typed
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name="patchwire-chat-input", daemon=True).start()
    return await future


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in some containers
        return "unknown"


def terminal_confirm(
    *, input_fn: Callable[[str], str] = input,
    write: Callable[[str], None] | None = None,
    decided_by: str | None = None,
) -> ConfirmCallback:
    """A confirm callback asking "approve? [y/N]" with ``input_fn`` (``input`` by default).

    Only "y" or "yes" approves: a call that moves money never runs on a stray Enter. End of
    input means nobody can answer, so the invoker files a pending approval instead.
    ``write`` shows what is asked about (default: stderr).
    """
    who = decided_by or f"terminal ({_operator()})"

    def show(text: str) -> None:
        if write is not None:
            write(text)
        else:
            import sys

            print(text, file=sys.stderr, flush=True)

    async def confirm(tool: Tool, arguments: Mapping[str, Any]) -> Decision | None:
        shown = json.dumps(redact_arguments(dict(arguments)), ensure_ascii=False,
                           sort_keys=True, default=str)
        where = f" through connection {tool.connection!r}" if tool.connection else ""
        show(f"The assistant wants to run {tool.name} ({tool.target}){where} with {shown}")
        try:
            answer = await ask_in_thread(input_fn, "approve? [y/N] ")
        except EOFError:
            return None
        if answer.strip().lower() in ("y", "yes"):
            return Decision(True, who)
        return Decision(False, who, "declined at the terminal")

    return confirm


# -- provider clients -----------------------------------------------------------------------


def _display_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to show in messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _scrub(text: str, secret: str | None) -> str:
    if secret and secret != NO_KEY:
        text = text.replace(secret, "***")
    return text


def _provider_error(exc: Exception, label: str, api_key: str | None) -> ChatError:
    """``exc`` from an SDK as a ChatError saying what failed, without the key."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        detail = _error_detail(getattr(exc, "body", None)) or str(exc)
        message = f"{label} answered HTTP {status}: {detail}"
        if status in (401, 403):
            message += " (check the API key and --api-key-env)"
    else:
        cause = exc.__cause__ or exc.__context__
        detail = f"{exc}" + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")
        name = type(exc).__name__
        if "Timeout" in name:
            message = f"{label} did not answer in time: {detail}"
        elif "Connection" in name:
            message = f"could not reach {label}: {detail}"
        else:
            message = f"{label} failed: {detail}"
    return ChatError(_scrub(message, api_key)[:2000])


def _error_detail(body: object) -> str | None:
    """The human part of an error body: ``{"error": {"message": ...}}`` in both APIs."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return cast(str, inner["message"])
        if isinstance(inner, str):
            return inner
    return None


def _parse_arguments(raw: str) -> tuple[Any, str | None]:
    """The model's JSON arguments, or why they cannot be read."""
    if not raw.strip():
        return {}, None  # some OpenAI-compatible servers send "" for "no arguments"
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as exc:
        return None, (f"they are not valid JSON ({exc.msg} at line {exc.lineno} column "
                      f"{exc.colno})")


class OpenAIChatClient:
    """Chat Completions (non-streaming) on any OpenAI-compatible endpoint; tools go out in
    strict mode, so arguments match their schemas (the invoker drops strict-mode nulls)."""

    def __init__(self, *, model: str, api_key: str, base_url: str | None = None,
                 timeout: float = 120.0, max_retries: int = 2, strict: bool = True) -> None:
        from openai import AsyncOpenAI, OpenAIError

        self.model = model
        self.base_url = base_url or DEFAULT_BASE_URLS["openai"]
        self.label = f"OpenAI-compatible endpoint {_display_url(self.base_url)}"
        self._api_key = api_key
        self._strict = strict
        try:
            self._client: AsyncOpenAI = AsyncOpenAI(api_key=api_key, base_url=self.base_url,
                                                    timeout=timeout, max_retries=max_retries)
        except OpenAIError as exc:
            raise ConfigError(_scrub(f"cannot set up the OpenAI client: {exc}",
                                     api_key)) from None

    def tool_definitions(self, tools: Sequence[Tool]) -> list[Message]:
        return [to_openai(t, strict=self._strict, style="chat") for t in tools]

    def user_message(self, text: str) -> list[Message]:
        return [{"role": "user", "content": text}]

    def tool_messages(self, results: Sequence[tuple[ModelToolCall, ToolResult]]) -> list[Message]:
        # Chat Completions has no error flag on tool results: the text says what went wrong.
        return [{"role": "tool", "tool_call_id": call.id, "content": result.text}
                for call, result in results]

    async def complete(self, *, system: str | None, messages: Sequence[Message],
                       tools: Sequence[Message]) -> ModelReply:
        from openai import OpenAIError, omit

        sent = ([{"role": "system", "content": system}] if system else []) + list(messages)
        try:
            completion = await self._client.chat.completions.create(
                model=self.model, messages=cast(Any, sent),
                # an empty tools list is rejected by the API: leave the field out instead
                tools=cast(Any, list(tools)) if tools else omit)
        except OpenAIError as exc:
            raise _provider_error(exc, self.label, self._api_key) from None
        try:
            return self._reply(completion)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            # the SDK builds models without validating them: a wrong shape surfaces here
            raise ChatError(f"{self.label} sent a response that is not a chat completion "
                            f"({type(exc).__name__}: {_scrub(str(exc), self._api_key)})"
                            ) from None

    def _reply(self, completion: Any) -> ModelReply:
        if not completion.choices:
            raise ChatError(f"{self.label} answered with no choices")
        msg = completion.choices[0].message
        calls: list[ModelToolCall] = []
        echoed: list[Message] = []
        for call in msg.tool_calls or []:
            if call.type == "function":
                raw = call.function.arguments or ""
                arguments, problem = _parse_arguments(raw)
                calls.append(ModelToolCall(call.id, call.function.name, arguments, problem))
                # sent back exactly as the model wrote it, even when it is not JSON
                echoed.append({"id": call.id, "type": "function",
                               "function": {"name": call.function.name, "arguments": raw}})
            else:  # a free-form "custom" tool call: Patchwire offers none
                calls.append(ModelToolCall(call.id, call.custom.name, None,
                                           "Patchwire tools are function tools taking a JSON "
                                           "object, not free-form input"))
                echoed.append({"id": call.id, "type": "custom",
                               "custom": {"name": call.custom.name, "input": call.custom.input}})
        message: Message = {"role": "assistant", "content": msg.content}
        if echoed:
            message["tool_calls"] = echoed
        elif msg.content is None:
            message["content"] = ""
        text = msg.content or msg.refusal or ""
        return ModelReply(text, tuple(calls), message)

    async def aclose(self) -> None:
        await self._client.close()


class AnthropicChatClient:
    """The Anthropic Messages API (non-streaming); tool results go back as ``tool_result``
    blocks with ``is_error`` set for every outcome but success."""

    def __init__(self, *, model: str, api_key: str, base_url: str | None = None,
                 timeout: float = 120.0, max_retries: int = 2, max_tokens: int = 4096) -> None:
        from anthropic import AnthropicError, AsyncAnthropic

        self.model = model
        self.base_url = base_url or DEFAULT_BASE_URLS["anthropic"]
        self.label = f"Anthropic endpoint {_display_url(self.base_url)}"
        self.max_tokens = max_tokens
        self._api_key = api_key
        try:
            # an explicit key: the SDK then consults no environment variable or profile
            self._client: AsyncAnthropic = AsyncAnthropic(
                api_key=api_key, base_url=self.base_url, timeout=timeout,
                max_retries=max_retries)
        except (AnthropicError, ValueError) as exc:
            raise ConfigError(_scrub(f"cannot set up the Anthropic client: {exc}",
                                     api_key)) from None

    def tool_definitions(self, tools: Sequence[Tool]) -> list[Message]:
        return [to_anthropic(t) for t in tools]

    def user_message(self, text: str) -> list[Message]:
        return [{"role": "user", "content": text}]

    def tool_messages(self, results: Sequence[tuple[ModelToolCall, ToolResult]]) -> list[Message]:
        # every result of one assistant turn goes back in one user message, in call order
        return [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": result.text,
             "is_error": result.is_error} for call, result in results]}]

    async def complete(self, *, system: str | None, messages: Sequence[Message],
                       tools: Sequence[Message]) -> ModelReply:
        from anthropic import AnthropicError, omit

        try:
            message = await self._client.messages.create(
                model=self.model, max_tokens=self.max_tokens, messages=cast(Any, list(messages)),
                system=system if system else omit,
                tools=cast(Any, list(tools)) if tools else omit)
        except AnthropicError as exc:
            raise _provider_error(exc, self.label, self._api_key) from None
        try:
            return self._reply(message)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise ChatError(f"{self.label} sent a response that is not a message "
                            f"({type(exc).__name__}: {_scrub(str(exc), self._api_key)})"
                            ) from None

    def _reply(self, message: Any) -> ModelReply:
        texts: list[str] = []
        calls: list[ModelToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                calls.append(ModelToolCall(block.id, block.name, block.input))
        # Blocks go back as received (thinking blocks must be returned unchanged); an empty
        # assistant message would be rejected, and the next user message stands in for it.
        content = [block.to_dict(mode="json") for block in message.content]
        echoed: Message | None = {"role": "assistant", "content": content} if content else None
        return ModelReply("\n".join(t for t in texts if t), tuple(calls), echoed)

    async def aclose(self) -> None:
        await self._client.close()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(
    provider: str, *, model: str, base_url: str | None = None,
    api_key_env: str | None = None, environ: Mapping[str, str] | None = None,
    timeout: float = 120.0, max_retries: int = 2,
) -> ChatClient:
    """A client for ``provider`` with its key read from ``api_key_env``
    (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` by default).

    Raises :class:`ConfigError` for an unknown provider, a base URL that is not http(s), or a
    missing key; only an endpoint on loopback (a local model server) may run without one.
    """
    chosen: Provider
    if provider == "openai":
        chosen = "openai"
    elif provider == "anthropic":
        chosen = "anthropic"
    else:
        raise ConfigError(f"unknown provider {provider!r}; expected one of "
                          f"{', '.join(PROVIDERS)}")
    if not model.strip():
        raise ConfigError("a model name is required (--model)")
    url = (base_url or DEFAULT_BASE_URLS[chosen]).rstrip("/")
    parts = urlsplit(url)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"the base URL must be an http(s) URL, got {_display_url(url)!r}")
    variable = api_key_env or DEFAULT_KEY_ENV[chosen]
    if not variable.strip():
        raise ConfigError("--api-key-env must name an environment variable")
    key = (os.environ if environ is None else environ).get(variable, "").strip()
    if not key:
        if not _is_loopback(host):
            raise ConfigError(f"no API key: set the environment variable {variable} (or name "
                              "another one with --api-key-env); only an endpoint on loopback "
                              "may run without a key")
        key = NO_KEY
    if chosen == "openai":
        return OpenAIChatClient(model=model, api_key=key, base_url=url, timeout=timeout,
                                max_retries=max_retries)
    return AnthropicChatClient(model=model, api_key=key, base_url=url, timeout=timeout,
                               max_retries=max_retries)

