"""Settings for tests on this machine.

The SSRF guard refuses loopback by default; tests talk to the sandbox and inline servers on
127.0.0.1, so they admit loopback explicitly, the way a user admits a local upstream.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from patchwire import Settings
from patchwire.store import Store

#: the allow-list entries that admit servers on this machine
LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


#: a SQLite store migrated once per test process: a fresh store runs every migration when it
#: opens (~0.2 s on this machine) and the tests open about a thousand; each new home gets a
#: copy (tests of a fresh store's own creation open one by URL: tests.support.store)
_template: list[Path] = []


def _migrated_store() -> Path:
    if not _template:
        path = Path(tempfile.mkdtemp(prefix="patchwire-template-")) / "patchwire.db"

        async def migrate() -> None:
            await (await Store.open(f"sqlite+aiosqlite:///{path}")).close()

        # its own thread and loop: the caller may be inside a running event loop
        worker = threading.Thread(target=asyncio.run, args=(migrate(),))
        worker.start()
        worker.join(60)
        _template.append(path)
    return _template[0]


def local_settings(home: Path, **overrides: Any) -> Settings:
    """Settings with the store in ``home``, no connector directories, loopback allowed.
    A home without a database gets a copy of a migrated one."""
    if "database_url" not in overrides and not (home / "patchwire.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_store(), home / "patchwire.db")
    values: dict[str, Any] = {"home": home, "connector_paths": (), "allow_networks": LOOPBACK}
    values.update(overrides)
    return Settings(**values)


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (for a server started in a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
