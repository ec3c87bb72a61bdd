"""`patchwire chat`: talk to a model in the terminal while it calls Patchwire tools."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from patchwire.cli._common import console, err_console, escape, fail, run, settings

if TYPE_CHECKING:
    from patchwire.tools import ChatSession, ChatTurn

_QUIT = frozenset({"/quit", "/exit", "/q"})


def chat(
    base_url: str = typer.Option(
        None, "--base-url",
        help="the API's base URL (default: OpenAI's or Anthropic's; e.g. "
             "http://127.0.0.1:11434/v1 for a local OpenAI-compatible server)"),
    model: str = typer.Option(..., "--model", "-m", help="model name"),
    provider: str = typer.Option("openai", "--provider",
                                 help="openai (any Chat Completions endpoint) | anthropic"),
    api_key_env: str = typer.Option(
        None, "--api-key-env",
        help="environment variable holding the API key (default OPENAI_API_KEY or "
             "ANTHROPIC_API_KEY; a loopback endpoint may run without one)"),
    connection: list[str] = typer.Option(
        None, "--connection", "-c",
        help="offer only the tools of these connections (an end user's); repeatable"),
    system: str = typer.Option(None, "--system", help="system prompt (default: a short one "
                                                      "about using the tools)"),
    once: str = typer.Option(None, "--once",
                             help="send this one message, print the answer and exit"),
    max_tool_rounds: int = typer.Option(8, "--max-tool-rounds", min=1, max=100,
                                        help="rounds of tool calls per message at most"),
) -> None:
    """Chat with a model that calls your tools. Tools needing approval ask you first (y/N)
    when this runs in a terminal; otherwise they wait as pending approvals."""
    if provider not in ("openai", "anthropic"):
        fail(f"--provider must be openai or anthropic, got {provider!r}", code=2)
    if once is not None and not once.strip():
        fail("--once needs a message", code=2)

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import (
            DEFAULT_SYSTEM_PROMPT,
            ChatSession,
            ToolInvoker,
            make_client,
            terminal_confirm,
        )

        # Settings problems (no key, bad URL) before opening the store.
        client = make_client(provider, model=model, base_url=base_url, api_key_env=api_key_env)
        # Ask a person only when one is at the keyboard; a script's tool calls that need
        # approval become pending approvals (the invoker's default without a callback).
        confirm = terminal_confirm(write=_show_question) if sys.stdin.isatty() else None
        try:
            async with Patchwire(settings()) as pw:
                invoker = ToolInvoker(pw, connections=connection or None)
                session = ChatSession(invoker, client, confirm=confirm,
                                      system_prompt=system or DEFAULT_SYSTEM_PROMPT,
                                      max_tool_rounds=max_tool_rounds)
                if once is not None:
                    turn = await session.send(once)
                    _print_calls(turn)
                    sys.stdout.write((turn.text or "(no answer)") + "\n")
                    return
                await _converse(session, count=len(await invoker.catalog()))
        finally:
            await client.aclose()

    try:
        run(main())
    except KeyboardInterrupt:
        err_console.print()
        raise typer.Exit(130) from None


async def _converse(session: ChatSession, *, count: int,
                    input_fn: Callable[[str], str] = input) -> None:
    """Read a line, answer it, until end of input or /quit."""
    from patchwire.tools import ChatError, ask_in_thread

    err_console.print(f"chatting with {escape(session.client.label)}; {count} tool(s); "
                      "/quit or Ctrl-D to leave", highlight=False)
    while True:
        try:
            line = await ask_in_thread(input_fn, "you> ")
        except EOFError:
            err_console.print()
            return
        text = line.strip()
        if not text:
            continue
        if text in _QUIT:
            return
        try:
            turn = await session.send(text)
        except ChatError as exc:
            # The conversation stays usable: say what failed and read the next line.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            continue
        _print_calls(turn)
        console.print(f"[bold]assistant>[/] {escape(turn.text or '(no answer)')}",
                      highlight=False)


def _print_calls(turn: ChatTurn) -> None:
    for made in turn.tool_calls:
        colour = "green" if made.status == "ok" else "yellow"
        extra = f" (approval {made.approval_id})" if made.status == "pending_approval" else ""
        err_console.print(f"  [dim]tool[/] {escape(made.name)} [{colour}]{made.status}[/]"
                          f"{extra}", highlight=False)


def _show_question(text: str) -> None:
    err_console.print(escape(text), highlight=False)
