"""Helpers shared by test packages.

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

#: other people's test vectors and example documents, copied into the repository so a clone
#: needs nothing beside it (origin, commit and licence of each file: its SOURCES.md)
CONFORMANCE = Path(__file__).resolve().parent / "conformance"


def conformance_path(*parts: str) -> Path:
    """A file or folder under ``tests/conformance/``, e.g. ``conformance_path("rfc",
    "rfc-vectors.json")``. A missing one fails the test: the data ships with the repository,
    so its absence is a broken checkout, not a reason to skip."""
    path = CONFORMANCE.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"conformance data {path} is missing (see tests/conformance/SOURCES.md)")
    return path


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
