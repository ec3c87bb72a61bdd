"""Writing the inbox: verified events and rejected requests, committed before they are
acknowledged.

The receiver acknowledges an event only once its row is committed, so a sender never sees
a 2xx for an event a crash could lose. One transaction per request would make the database
the receiver's ceiling, so rows go through the store's group-commit writer: whatever queued
while the previous transaction committed goes into the next one, each request awaits its
own commit, hundreds share one fsync. The insert is ``ON CONFLICT DO NOTHING RETURNING
id``: a row that did not come back was a duplicate (the sender's retry of an event already
here, possibly in the same batch), acknowledged and dropped. On SQLite the batch commits
with ``synchronous=FULL`` (an acknowledged event survives power loss, not just a crash; one
fsync per batch makes that cheap) in a worker thread, so the loop goes on parsing and
verifying requests during the fsync (measured: p99 20 ms instead of 25-50 ms on the loop
thread at ~3,300 events/s); the write lock is polled rather than waited for, as the run
journal does, with short pauses: acknowledgements wait on it.

Replays under a new id. Where the scheme signs no event id (GitHub's and Shopify's delivery
ids are plain headers), a row also carries ``content_digest``, the SHA-256 of the signed
content, unique per source as well: the same insert finds a captured body sent again under
a fresh delivery id a duplicate (the ``DO NOTHING`` has no conflict target, so either key
counts). A digest is remembered for ``replay_window`` seconds (the setting
``webhook_replay_window``, a week by default: longer than any vendor retries): before
inserting rows with digests, the batch clears those digests on rows older than that (one
indexed statement, only for such batches), after which the same body is a new event again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Literal

from sqlalchemy.engine import Dialect

from patchwire.store import GroupCommitWriter, Statement, Store, values_sql

__all__ = ["DEFAULT_REPLAY_WINDOW_S", "INBOX_COLUMNS", "REJECTION_COLUMNS", "InboxWriter"]

#: the columns a receiver writes, in the order of the tuples given to InboxWriter.submit
INBOX_COLUMNS = ("id", "source", "event_id", "type", "payload", "headers", "received_at",
                 "status", "attempts", "next_attempt_at", "owner", "lease_until",
                 "content_digest")
_RECEIVED_AT = INBOX_COLUMNS.index("received_at")
_DIGEST = INBOX_COLUMNS.index("content_digest")
REJECTION_COLUMNS = ("id", "source", "reason", "status", "detail", "headers", "body_excerpt",
                     "body_bytes", "received_at")
#: rows a statement (SQLite binds at most 32,766 parameters)
_ROWS_PER_STATEMENT = 1000
#: how long a body is remembered where no signed id tells replays apart (the setting
#: ``webhook_replay_window`` overrides it)
DEFAULT_REPLAY_WINDOW_S = 7 * 86_400.0
#: the longest pause between two polls for SQLite's write lock
_LOCK_POLL_CAP_S = 0.002

_Kind = Literal["inbox", "rejections"]
#: one queued row and the table it goes to
_Row = tuple[_Kind, tuple[Any, ...]]


@functools.lru_cache(maxsize=64)
def _insert_sql(kind: _Kind, rows: int, style: str) -> str:
    columns = INBOX_COLUMNS if kind == "inbox" else REJECTION_COLUMNS
    values = values_sql(rows, len(columns), style)
    table = "webhook_inbox" if kind == "inbox" else "webhook_rejections"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608
    if kind == "inbox":
        # no conflict target: a row is a duplicate by (source, event_id) or by
        # (content_digest, source), whichever it meets
        sql += " ON CONFLICT DO NOTHING RETURNING id"
    return sql


_RELEASE = ("UPDATE webhook_inbox SET content_digest = NULL"
            " WHERE content_digest IS NOT NULL AND ")


@functools.lru_cache(maxsize=64)
def _release_sql(digests: int, style: str) -> str:
    """Clear the given digests on rows received before a cutoff (the last parameter): a
    body seen longer ago than the replay window counts as new again. ``IS NOT NULL`` lets
    SQLite use the partial unique index."""
    marks = ", ".join("?" if style == "qmark" else f"${i + 1}" for i in range(digests))
    cutoff = "?" if style == "qmark" else f"${digests + 1}"
    return _RELEASE + f"content_digest IN ({marks}) AND received_at < {cutoff}"


def _expired_digests(events: list[tuple[Any, ...]],
                     window: float) -> list[tuple[tuple[str, ...], float]]:
    """The batch's digests in statement-sized chunks, each with the cutoff before which a
    row's digest is forgotten (the earliest of the batch's times, less the window)."""
    rows = [row for row in events if len(row) > _DIGEST and row[_DIGEST] is not None]
    if not rows:
        return []
    cutoff = min(float(row[_RECEIVED_AT]) for row in rows) - window
    digests = sorted({row[_DIGEST] for row in rows})
    return [(tuple(digests[i: i + _ROWS_PER_STATEMENT]), cutoff)
            for i in range(0, len(digests), _ROWS_PER_STATEMENT)]


class InboxWriter:
    """Queues inbox and rejection rows; each caller's future is done once its row is
    committed (True: a new event; False: a duplicate that was dropped)."""

    def __init__(self, store: Store, *, on_commit: Callable[[], None] | None = None,
                 replay_window: float = DEFAULT_REPLAY_WINDOW_S) -> None:
        self._on_commit = on_commit
        #: seconds a content digest makes a body a duplicate (see the module docstring)
        self.replay_window = replay_window
        self._writer: GroupCommitWriter[_Row, bool] = GroupCommitWriter(
            store, self._statements, self._answers, what="write webhook events",
            name="the webhook inbox", synchronous="FULL", lock_poll_cap=_LOCK_POLL_CAP_S)

    @property
    def commits(self) -> int:
        """Commits so far (the benchmark reports rows per commit)."""
        return self._writer.commits

    @property
    def rows(self) -> int:
        """Rows the commits so far held."""
        return self._writer.items

    def submit(self, row: tuple[Any, ...]) -> asyncio.Future[bool]:
        """Queue one inbox row (a tuple in INBOX_COLUMNS order)."""
        return self._writer.submit(("inbox", row))

    def reject(self, row: tuple[Any, ...]) -> asyncio.Future[bool]:
        """Queue one rejection row (a tuple in REJECTION_COLUMNS order)."""
        return self._writer.submit(("rejections", row))

    def _statements(self, batch: list[_Row], dialect: Dialect) -> Iterator[Statement]:
        style = "qmark" if dialect.paramstyle == "qmark" else "dollar"
        events = [row for kind, row in batch if kind == "inbox"]
        rejections = [row for kind, row in batch if kind == "rejections"]
        for digests, cutoff in _expired_digests(events, self.replay_window):
            yield Statement(_release_sql(len(digests), style), (*digests, cutoff))
        kinds: tuple[tuple[_Kind, list[tuple[Any, ...]]], ...] = (
            ("inbox", events), ("rejections", rejections))
        for kind, rows in kinds:
            for i in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[i: i + _ROWS_PER_STATEMENT]
                yield Statement(_insert_sql(kind, len(chunk), style),
                                tuple(itertools.chain.from_iterable(chunk)),
                                returns=kind == "inbox")

    def _answers(self, batch: list[_Row], returned: list[list[Any]]) -> list[bool]:
        """Whether each row is new (a rejection always is); wakes the processor when a
        new event is in."""
        inserted = {r[0] for rows in returned for r in rows}
        if inserted and self._on_commit is not None:
            self._on_commit()
        return [kind != "inbox" or row[0] in inserted for kind, row in batch]

    async def close(self) -> None:
        """Commit what is queued (waiting up to 10 s), then refuse new rows."""
        await self._writer.close()
