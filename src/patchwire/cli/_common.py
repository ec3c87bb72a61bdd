"""What every command shares: settings, running coroutines, printing errors and JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from patchwire.config import Settings, load_settings
from patchwire.errors import CallError, PatchwireError, SpecError

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def settings(**overrides: Any) -> Settings:
    """The settings, with command-line options (``None``: not given) on top."""
    return load_settings(**overrides)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


@contextmanager
def errors_handled() -> Iterator[None]:
    """Turn Patchwire errors into a clear message on stderr and exit status 1."""
    try:
        yield
    except SpecError as exc:
        err_console.print(f"[bold red]error:[/] {len(exc.problems)} problem(s):")
        for p in exc.problems:
            err_console.print(f"  {p}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    except CallError as exc:
        err_console.print(f"[bold red]{exc.code}:[/] {escape(str(exc))}", highlight=False)
        print(json.dumps(exc.to_dict(), indent=2), file=sys.stderr)
        raise typer.Exit(1) from None
    except PatchwireError as exc:
        fail(escape(str(exc)))


def run(coro: Coroutine[Any, Any, T]) -> T:
    with errors_handled():
        return asyncio.run(coro)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
