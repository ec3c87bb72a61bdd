"""`patchwire check`, and the start-up check of `serve` and `worker`: every definition a
server would load (connectors, flows, syncs, their references) and the settings, every
problem printed as ``file:line``.

A server must not start on definitions that do not load: a flow file with a typo would
otherwise be skipped with a log line, and its webhook trigger, schedule or tool would be
silently missing. Reloads (SIGHUP, the API) keep the definitions in force on a problem.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from patchwire.cli._common import console, err_console, escape, fail, settings
from patchwire.config import Settings
from patchwire.definitions import Definitions, LiveDefinitions, load_definitions
from patchwire.errors import ConfigError, SpecError, SpecProblem

__all__ = ["check", "reload_on_signal", "required_definitions"]

#: exit status of `serve` and `worker` refusing to start on definitions that do not load
EXIT_DEFINITIONS = 2

log = logging.getLogger("patchwire.definitions")


def _print_problems(problems: Sequence[SpecProblem]) -> None:
    for p in problems:
        # one line each, however long: `file:line` lines are read by editors and grep
        err_console.print(f"  {escape(str(p))}", highlight=False, soft_wrap=True)


def required_definitions(cfg: Settings, command: str) -> Definitions:
    """The definitions ``cfg`` points at, or exit 2 listing every problem."""
    found = load_definitions(cfg)
    if found.problems:
        count = len(found.problems)
        err_console.print(f"[bold red]error:[/] {count} problem(s) in the definitions; "
                          f"`patchwire {command}` does not start:", highlight=False)
        _print_problems(found.problems)
        fail("fix them (`patchwire check` lists them again) and start again",
             code=EXIT_DEFINITIONS)
    return found


def check() -> None:
    """Check everything `patchwire serve` would load — the settings, every connector, flow
    and sync file and what they refer to — and print every problem as file:line."""
    try:
        cfg = settings()
    except ConfigError as exc:
        err_console.print(f"  settings: {escape(str(exc))}", highlight=False, soft_wrap=True)
        fail("1 problem(s) found")
    found = load_definitions(cfg)
    if found.problems:
        _print_problems(found.problems)
        fail(f"{len(found.problems)} problem(s) found")
    console.print(f"[green]ok[/]: settings, {found.summary()} valid", highlight=False)


def reload_on_signal(live: LiveDefinitions) -> None:
    """SIGHUP handler body: reload in the background; the outcome goes to the log (the
    old definitions stay in force on a problem)."""
    async def reload() -> None:
        try:
            changes = await live.reload()
        except SpecError as exc:
            log.error("definitions not reloaded, the ones in force stay: %d problem(s): %s",
                      len(exc.problems), "; ".join(map(str, exc.problems)))
        except Exception:  # a reload must never take the server down
            log.exception("definitions not reloaded, the ones in force stay")
        else:
            log.info("definitions reloaded: %s", changes.summary())

    task = asyncio.get_running_loop().create_task(reload())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


#: reloads in progress (a task nobody references may be collected before it ends)
_pending: set[asyncio.Task[None]] = set()
