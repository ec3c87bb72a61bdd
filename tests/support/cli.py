"""Running the real ``patchwire`` command as a subprocess, isolated in a temporary directory.

Commands run with ``asyncio`` subprocesses so a sandbox served by the test's own event loop
keeps answering while the command runs. Every run is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: one command never takes this long; a hang fails the test instead of blocking the suite
COMMAND_TIMEOUT_S = 30.0


def patchwire_command() -> list[str]:
    """The installed console script, or the same entry point through this interpreter."""
    script = Path(sys.executable).with_name("patchwire")
    if script.is_file():
        return [str(script)]
    found = shutil.which("patchwire")
    if found:
        return [found]
    return [sys.executable, "-c", "from patchwire.cli import main; main()"]


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def flat_err(self) -> str:
        """stderr with Rich's line wrapping undone (words joined by single spaces)."""
        return " ".join(self.err.split())

    @property
    def flat_out(self) -> str:
        return " ".join(self.out.split())

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:  # shown by pytest when an assertion about a run fails
        return (f"$ patchwire {' '.join(self.args)}\nexit {self.code}\n"
                f"--- stdout\n{self.out}--- stderr\n{self.err}")


class Cli:
    """``await cli("connection", "list")`` runs ``patchwire connection list`` in ``workdir``.

    The environment holds no ``PATCHWIRE_*`` variable from the caller's: the home (store,
    key file) and connector directory are inside ``workdir``, and the repository's own
    ``.patchwire`` and ``patchwire.toml`` are never read.
    """

    def __init__(self, workdir: Path, *, database_url: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.home = workdir / "home"
        self.connectors = workdir / "connectors"
        self.connectors.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("PATCHWIRE_")}
        base.update({
            "PATCHWIRE_HOME": str(self.home),
            "PATCHWIRE_CONNECTOR_PATHS": str(self.connectors),
            # the sandbox and inline servers run on loopback, which the SSRF guard refuses
            "PATCHWIRE_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
            "COLUMNS": "200",  # Rich wraps at 80 columns without a terminal
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        })
        if database_url:
            base["PATCHWIRE_DATABASE_URL"] = database_url
        base.update(env or {})
        self.env = base
        self.runs: list[Result] = []

    async def __call__(self, *args: str, stdin: str | None = None,
                       env: Mapping[str, str] | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *patchwire_command(), *args,
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                COMMAND_TIMEOUT_S,
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"patchwire {' '.join(args)} did not finish in "
                                 f"{COMMAND_TIMEOUT_S} s") from None
        assert proc.returncode is not None
        result = Result(tuple(args), proc.returncode, out.decode(), err.decode())
        self.runs.append(result)
        return result

    async def all(self, *commands: Sequence[str]) -> list[Result]:
        """Run independent commands at the same time (each a list of arguments)."""
        return list(await asyncio.gather(*(self(*c) for c in commands)))

    def transcript(self) -> str:
        """Everything every run printed, for looking for secrets."""
        return "\n".join(f"{' '.join(r.args)}\n{r.out}\n{r.err}" for r in self.runs)


@contextlib.asynccontextmanager
async def running(cli: Cli, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``patchwire ARGS`` as a long-running subprocess of ``cli``'s environment (serve,
    worker, demo), killed at the end of the block if it is still running."""
    proc = await asyncio.create_subprocess_exec(
        *patchwire_command(), *args, cwd=cli.workdir, env=cli.env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
