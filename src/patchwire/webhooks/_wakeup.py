"""Waking the delivery workers of this process when there is new work (an event
published, a delivery sent again), instead of waiting for their next poll."""

from __future__ import annotations

import weakref
from typing import Protocol

from patchwire.store import Store

__all__ = ["Wakeable", "forget_worker", "kick_workers", "register_worker"]


class Wakeable(Protocol):
    @property
    def store(self) -> Store: ...

    def kick(self) -> None: ...


#: running workers (a weak set: a worker nobody stopped still goes away)
_WORKERS: weakref.WeakSet[Wakeable] = weakref.WeakSet()


def register_worker(worker: Wakeable) -> None:
    _WORKERS.add(worker)


def forget_worker(worker: Wakeable) -> None:
    _WORKERS.discard(worker)


def kick_workers(store: Store) -> None:
    """Wake every running worker of ``store`` in this process."""
    for worker in list(_WORKERS):
        if worker.store is store:
            worker.kick()
