"""The background work of ``patchwire serve`` and ``patchwire worker``, built the same way
for both and started in one order: token refresh, flow engine, the remote engine's
executor, outbound deliveries, the webhook inbox, syncs (stopped in the reverse order:
syncs first, so a poll cut short resumes from its saved cursor; the engine late, so runs
in flight are released once nothing feeds it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from patchwire.runtime._workers import ExecutorWorker, TokenRefresh, Worker

if TYPE_CHECKING:
    from patchwire.flows import Engine
    from patchwire.runtime._runtime import Runtime
    from patchwire.sync import SyncEngine
    from patchwire.webhooks import DeliveryWorker, Inbox

__all__ = ["Deliveries", "background_workers"]


class Deliveries:
    """Outbound webhooks: a delivery worker over the runtime's store and vault, built
    when started (the store is open by then)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.worker: DeliveryWorker | None = None

    async def start(self) -> Deliveries:
        from patchwire.webhooks import DeliveryWorker, WebhookOutbox

        if self.worker is None:
            runtime = self._runtime
            outbox = WebhookOutbox(runtime.store, runtime.vault,
                                   allow_networks=runtime.settings.allow_networks)
            self.worker = await DeliveryWorker(outbox).start()
        return self

    async def stop(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop()  # unsent deliveries go later, from any worker


def background_workers(
    runtime: Runtime, *, refresh: TokenRefresh | None = None, engine: Engine | None = None,
    executor_concurrency: int | None = None, deliveries: bool = False,
    inbox: Inbox | None = None, syncs: SyncEngine | None = None,
) -> list[Worker]:
    """The workers to run, in start order: ``refresh`` renews OAuth2 tokens now and then;
    ``engine`` runs flows; with ``executor_concurrency``, a remote engine also executes
    its runs here (a Temporal worker); ``deliveries`` sends outbound webhooks; ``inbox``
    processes inbound events; ``syncs`` polls on schedule."""
    from patchwire.flows import RemoteEngine

    workers: list[Worker] = []
    if refresh is not None:
        workers.append(refresh)
    if engine is not None:
        workers.append(engine)
        if executor_concurrency is not None and isinstance(engine, RemoteEngine):
            remote, concurrency = engine, executor_concurrency
            workers.append(ExecutorWorker(lambda: remote.executor(concurrency=concurrency)))
    if deliveries:
        workers.append(Deliveries(runtime))
    if inbox is not None:
        workers.append(inbox)
    if syncs is not None:
        workers.append(syncs)
    return workers
