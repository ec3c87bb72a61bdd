"""The runtime: one process's parts (store, vault, HTTP core, call path) and the start
and stop of its background workers. ``patchwire serve`` and ``patchwire worker`` run on
it; the ``Patchwire`` facade sits on top of it."""

from patchwire.runtime._background import Deliveries, background_workers
from patchwire.runtime._connection_events import (
    CONNECTION_EVENTS,
    ConnectionEvents,
    HealthChange,
    HealthPolicy,
    HealthTracker,
)
from patchwire.runtime._runtime import Runtime, health_policy
from patchwire.runtime._workers import (
    BACKGROUND_REFRESH_INTERVAL,
    ExecutorWorker,
    TokenRefresh,
    Watched,
    Worker,
)

__all__ = [
    "BACKGROUND_REFRESH_INTERVAL",
    "CONNECTION_EVENTS",
    "ConnectionEvents",
    "Deliveries",
    "ExecutorWorker",
    "HealthChange",
    "HealthPolicy",
    "HealthTracker",
    "Runtime",
    "TokenRefresh",
    "Watched",
    "Worker",
    "background_workers",
    "health_policy",
]
