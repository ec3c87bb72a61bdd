"""The demo's own store: ``.patchwire-demo/`` in the current directory, fresh every run.

Its database files are removed when a demo starts; a lock keeps a second demo in the same
directory from doing that under a running one. Nothing is read from or written to the
user's own store, ``patchwire.toml`` or ``PATCHWIRE_*`` variables: the demo's settings are
built here, not loaded. ``PATCHWIRE_HOME=.patchwire-demo patchwire runs list`` reads it
after the demo (and while it runs).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from patchwire.config import Settings
from patchwire.errors import ConfigError

__all__ = ["DEMO_HOME", "demo_settings", "demo_store"]

#: the demo's store, key file and lock, relative to the current directory
DEMO_HOME = Path(".patchwire-demo")

_DB_FILES = ("patchwire.db", "patchwire.db-wal", "patchwire.db-shm", "patchwire.db-journal")


def demo_settings(home: Path = DEMO_HOME, *, public_url: str | None = None) -> Settings:
    """The demo's settings: its own home (SQLite store and key file), the built-in
    connectors and flows only, and loopback admitted by the SSRF guard (the sandbox and
    the demo's own webhook receiver live there). Built here rather than loaded, so neither
    ``patchwire.toml`` nor ``PATCHWIRE_*`` variables point it at the user's store.
    ``public_url``: the demo server's address (its connect links point there)."""
    return Settings(home=home, database_url=None, secret_key=None, connector_paths=(),
                    flow_paths=(), sync_paths=(), allow_networks=("127.0.0.1",),
                    public_url=public_url)


@contextlib.contextmanager
def demo_store(home: Path = DEMO_HOME) -> Iterator[Path]:
    """``home`` locked for this demo and emptied of an earlier demo's database.

    ConfigError if another demo holds it: removing its database would pull the store from
    under a running server."""
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        ignore = home / ".gitignore"
        if not ignore.exists():  # like .pytest_cache: a checkout's `git status` stays clean
            ignore.write_text("# created by `patchwire demo`\n*\n", encoding="utf-8")
        lock = (home / "demo.lock").open("a")
    except OSError as exc:
        raise ConfigError(f"cannot use {home}/ for the demo store: "
                          f"{exc.strerror or type(exc).__name__}") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"another `patchwire demo` is running with the store in {home}/ "
                              "(stop it first, or run the demo from another directory)"
                              ) from None
        for name in _DB_FILES:
            (home / name).unlink(missing_ok=True)
        yield home
