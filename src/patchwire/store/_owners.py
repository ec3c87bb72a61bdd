"""Who holds a lease: the owner ids of the processes that work on shared rows.

Runs, inbox events, deliveries and sync slots are leased to one process at a time. An owner
id names the host and process (``host:pid:random``), so after a crash another process on
the same host can tell the holder is gone and take its work at once, instead of waiting
for the lease to expire.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from patchwire.ids import new_id

__all__ = ["dead_local_owners", "new_owner_id", "pid_alive"]


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def dead_local_owners(owners: Iterable[str], *, me: str) -> list[str]:
    """The owners among ``owners`` that ran on this host in a process that is gone."""
    host = socket.gethostname()
    dead = []
    for owner in owners:
        parts = owner.split(":")
        if (len(parts) == 3 and parts[0] == host and parts[1].isdigit() and owner != me
                and not pid_alive(int(parts[1]))):
            dead.append(owner)
    return dead
