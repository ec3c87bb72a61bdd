"""Settings for tests on this machine.

The SSRF guard refuses loopback by default; tests talk to the sandbox and inline servers on
127.0.0.1, so they admit loopback explicitly, the way a user admits a local upstream.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from patchwire import Settings

#: the allow-list entries that admit servers on this machine
LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


def local_settings(home: Path, **overrides: Any) -> Settings:
    """Settings with the store in ``home``, no connector directories, loopback allowed."""
    values: dict[str, Any] = {"home": home, "connector_paths": (), "allow_networks": LOOPBACK}
    values.update(overrides)
    return Settings(**values)


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (for a server started in a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
