"""`patchwire init`: the project layout a server loads from, and the examples on request.

A fresh install serves no flow and schedules nothing: the shipped example flows offer a
tool to every model (``open_support_ticket``) and one runs nightly, so they are copied into
the project only when asked for (``--examples``) and become the user's own files, listed,
checked and edited like any other. The demo loads them from the package instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer

from patchwire.cli._common import console, errors_handled, escape, fail, settings
from patchwire.config import Settings

__all__ = ["init"]


def _directory(paths: tuple[Path, ...], what: str) -> Path:
    """The first configured directory of a kind: where new definitions go."""
    for path in paths:
        if not path.is_file():
            return path
    fail(f"no directory to put {what} in: every configured {what} path is a file "
         f"({', '.join(map(str, paths)) or 'none'})", code=2)


def _make(directory: Path, *, mode: int = 0o755) -> None:
    if directory.is_dir():
        console.print(f"kept {escape(str(directory))}/ (exists)", highlight=False)
        return
    try:
        directory.mkdir(parents=True, mode=mode)
    except OSError as exc:
        fail(f"cannot create {escape(str(directory))}/: {exc.strerror or type(exc).__name__}")
    console.print(f"[green]created[/] {escape(str(directory))}/", highlight=False)


def _copy(texts: Iterable[tuple[str, str]], directory: Path) -> int:
    """Write each (``examples/<file>``, text) into ``directory``; a file already there is
    the user's and is kept. Returns how many were written."""
    written = 0
    for name, text in texts:
        target = directory / Path(name).name
        if target.exists():
            console.print(f"kept {escape(str(target))} (exists)", highlight=False)
            continue
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {escape(str(target))}: {exc.strerror or type(exc).__name__}")
        console.print(f"[green]copied[/] {escape(str(target))}", highlight=False)
        written += 1
    return written


def init(
    examples: bool = typer.Option(
        False, "--examples",
        help="copy the shipped example flows and syncs into the flow and sync directories "
             "(they offer tools, listen to webhooks and run on schedules once there)"),
) -> None:
    """Create the project layout: the home (store, key file), connectors/, flows/ and
    syncs/. Nothing is served until you add definitions (or copy the examples)."""
    with errors_handled():
        cfg: Settings = settings()
    _make(cfg.home, mode=0o700)  # the store and the key file live here
    connectors = _directory(cfg.connector_paths, "connector")
    flows = _directory(cfg.flow_paths, "flow")
    syncs = _directory(cfg.sync_paths, "sync")
    for directory in (connectors, flows, syncs):
        _make(directory)
    if examples:
        from patchwire.flows import builtin_flow_texts
        from patchwire.sync import builtin_sync_texts

        copied = _copy(builtin_flow_texts(), flows) + _copy(builtin_sync_texts(), syncs)
        console.print(f"{copied} example file(s) copied; check them with `patchwire check`, "
                      "run them with `patchwire serve` (they call the sandbox: "
                      "`patchwire sandbox`)", highlight=False)
    else:
        console.print("no flows yet: add your own to the flow directory, or copy the "
                      "examples with `patchwire init --examples`", highlight=False)
