"""The tools' tables: stored tool settings, approvals and the tool audit.

A repository over the :class:`Store`'s engine (like runs and the inbox will be), so the
connection and call-log code in ``core.py`` stays about connections and calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Row

from patchwire.errors import ApprovalStateError, UnknownApproval
from patchwire.store.core import Store
from patchwire.store.models import ApprovalRow, FlowRunRow, ToolCallRow, ToolSettingRow
from patchwire.store.records import utcnow

__all__ = ["ApprovalRecord", "ApprovalStatus", "ToolCallRecord", "ToolRepository"]

_SETTINGS = cast(Table, ToolSettingRow.__table__)
_APPROVALS = cast(Table, ApprovalRow.__table__)
_TOOL_CALLS = cast(Table, ToolCallRow.__table__)
_RUNS = cast(Table, FlowRunRow.__table__)

ApprovalStatus = Literal["pending", "approved", "denied", "expired", "used"]


@dataclass(frozen=True)
class ApprovalRecord:
    """A request for a person's yes. ``arguments`` are redacted; ``fingerprint`` identifies
    the exact call (target, connection, full arguments) so only that call can use it."""

    id: str
    kind: str
    subject: str
    target: str
    connection: str | None
    arguments: dict[str, Any]
    fingerprint: str
    session_id: str | None
    status: str
    requested_at: datetime
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    used_at: datetime | None = None
    #: the end user whose tool call asked for it (None: an operator's)
    end_user: str | None = None

    def effective_status(self, now: datetime | None = None) -> str:
        """``expired`` for a pending approval past its deadline, else the stored status."""
        if (self.status == "pending" and self.expires_at is not None
                and self.expires_at <= (now or utcnow())):
            return "expired"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.effective_status()
        for key in ("requested_at", "expires_at", "decided_at", "used_at"):
            if d[key] is not None:
                d[key] = d[key].isoformat()
        return d


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call in the audit. ``arguments`` are redacted."""

    id: str
    session_id: str | None
    tool: str
    target: str | None
    connection: str | None
    arguments: Any
    validation_failed: bool
    status: str
    error: str | None
    latency_ms: float
    approval_id: str | None
    request_id: str | None
    started_at: datetime
    #: the end user the call acted for (None: an operator's)
    end_user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        return d


def _approval(row: Row[Any]) -> ApprovalRecord:
    m = dict(row._mapping)
    m["arguments"] = dict(m["arguments"] or {})
    return ApprovalRecord(**m)


class ToolRepository:
    """Tool settings, approvals and the tool audit in ``store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- tool settings ----------------------------------------------------------------------

    async def tool_settings(self) -> dict[str, dict[str, Any]]:
        with self._store._errors("read tool settings"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(select(_SETTINGS))).all()
        return {r.target: dict(r.settings) for r in rows}

    async def set_tool_settings(self, target: str, settings: dict[str, Any] | None) -> None:
        """Store settings for ``target`` (``connector.action``); None forgets them, so the
        connector YAML decides again."""
        with self._store._errors(f"save tool settings of {target!r}"):
            async with self._store.engine.begin() as conn:
                await conn.execute(delete(_SETTINGS).where(_SETTINGS.c.target == target))
                if settings is not None:
                    await conn.execute(insert(_SETTINGS).values(
                        target=target, settings=settings, updated_at=utcnow()))

    # -- approvals --------------------------------------------------------------------------

    async def add_approval(self, rec: ApprovalRecord) -> None:
        with self._store._errors("file an approval request"):
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(_APPROVALS).values(**asdict(rec)))

    async def get_approval(self, approval_id: str) -> ApprovalRecord:
        with self._store._errors(f"read approval {approval_id!r}"):
            async with self._store.engine.connect() as conn:
                row = (await conn.execute(
                    select(_APPROVALS).where(_APPROVALS.c.id == approval_id))).first()
        if row is None:
            raise UnknownApproval(f"no approval with id {approval_id!r}")
        return _approval(row)

    async def list_approvals(self, *, status: str | None = None, limit: int = 100,
                             end_user: str | None = None) -> list[ApprovalRecord]:
        """Newest first. ``status="pending"`` leaves out pending ones past their deadline
        (they show as ``expired``). ``end_user``: only those asked for by that end user."""
        stmt = select(_APPROVALS).order_by(_APPROVALS.c.requested_at.desc(),
                                           _APPROVALS.c.id.desc())
        if end_user is not None:
            stmt = stmt.where(_APPROVALS.c.end_user == end_user)
        if status == "expired":
            stmt = stmt.where(_APPROVALS.c.status.in_(("pending", "expired")))
        elif status is not None:
            stmt = stmt.where(_APPROVALS.c.status == status)
        with self._store._errors("list approvals"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(stmt.limit(max(0, limit) * 2 if status else limit))
                        ).all()
        now = utcnow()
        found = [_approval(r) for r in rows]
        if status is not None:
            found = [a for a in found if a.effective_status(now) == status]
        return found[:limit]

    async def approvals_for(self, fingerprint: str) -> list[ApprovalRecord]:
        """Approvals of one exact call, newest first."""
        stmt = (select(_APPROVALS).where(_APPROVALS.c.fingerprint == fingerprint)
                .order_by(_APPROVALS.c.requested_at.desc(), _APPROVALS.c.id.desc()).limit(20))
        with self._store._errors("look up approvals"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_approval(r) for r in rows]

    async def decide_approval(self, approval_id: str, *, approved: bool, decided_by: str,
                              reason: str | None = None) -> ApprovalRecord:
        """Approve or deny a pending request, once: a second decision, or one after the
        deadline, raises ApprovalStateError (two approvers racing cannot both win)."""
        now = utcnow()
        stmt = (
            update(_APPROVALS)
            .where(_APPROVALS.c.id == approval_id, _APPROVALS.c.status == "pending",
                   (_APPROVALS.c.expires_at.is_(None)) | (_APPROVALS.c.expires_at > now))
            .values(status="approved" if approved else "denied", decided_at=now,
                    decided_by=decided_by, reason=reason)
        )
        with self._store._errors(f"decide approval {approval_id!r}"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(stmt)
        if result.rowcount == 0:
            current = await self.get_approval(approval_id)  # UnknownApproval if missing
            state = current.effective_status(now)
            by = f" by {current.decided_by}" if current.decided_by else ""
            raise ApprovalStateError(
                f"approval {approval_id} is already {state}{by}; only a pending request "
                "can be decided")
        decided = await self.get_approval(approval_id)
        if decided.kind == "flow":
            # the run waiting on this approval is due now (0: due under any clock)
            with self._store._errors(f"wake run {decided.target!r}"):
                async with self._store.engine.begin() as conn:
                    await conn.execute(update(_RUNS).where(
                        _RUNS.c.id == decided.target, _RUNS.c.status == "waiting").values(
                        wake_at=0.0))
        return decided

    async def use_approval(self, approval_id: str) -> bool:
        """Mark an approved request as used; False if it was not approved or already used,
        so one yes lets exactly one call through."""
        stmt = (update(_APPROVALS)
                .where(_APPROVALS.c.id == approval_id, _APPROVALS.c.status == "approved")
                .values(status="used", used_at=utcnow()))
        with self._store._errors(f"use approval {approval_id!r}"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def use_approval_denial(self, approval_id: str) -> bool:
        """Mark a denial as reported to the model, so the next identical call asks anew."""
        stmt = (update(_APPROVALS)
                .where(_APPROVALS.c.id == approval_id, _APPROVALS.c.status == "denied",
                       _APPROVALS.c.used_at.is_(None))
                .values(used_at=utcnow()))
        with self._store._errors(f"update approval {approval_id!r}"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(stmt)
        return bool(result.rowcount)

    # -- tool audit -------------------------------------------------------------------------

    async def record_tool_calls(self, records: Sequence[ToolCallRecord]) -> None:
        if not records:
            return
        with self._store._errors("record tool calls"):
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(_TOOL_CALLS), [asdict(r) for r in records])

    async def list_tool_calls(self, *, session_id: str | None = None, tool: str | None = None,
                              validation_failed: bool | None = None,
                              limit: int = 100,
                              end_user: str | None = None) -> list[ToolCallRecord]:
        """Newest first; ``end_user``: only the calls made for that end user."""
        stmt = select(_TOOL_CALLS).order_by(_TOOL_CALLS.c.started_at.desc(),
                                            _TOOL_CALLS.c.id.desc())
        if end_user is not None:
            stmt = stmt.where(_TOOL_CALLS.c.end_user == end_user)
        if session_id is not None:
            stmt = stmt.where(_TOOL_CALLS.c.session_id == session_id)
        if tool is not None:
            stmt = stmt.where(_TOOL_CALLS.c.tool == tool)
        if validation_failed is not None:
            stmt = stmt.where(_TOOL_CALLS.c.validation_failed == validation_failed)
        with self._store._errors("list tool calls"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(stmt.limit(max(0, limit)))).all()
        return [ToolCallRecord(**r._mapping) for r in rows]

    async def tool_call_counts(self) -> dict[str, dict[str, int]]:
        """Per tool: calls, calls whose arguments failed validation, errors."""
        stmt = select(_TOOL_CALLS.c.tool, _TOOL_CALLS.c.validation_failed,
                      _TOOL_CALLS.c.status, func.count()).group_by(
            _TOOL_CALLS.c.tool, _TOOL_CALLS.c.validation_failed, _TOOL_CALLS.c.status)
        with self._store._errors("count tool calls"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        out: dict[str, dict[str, int]] = {}
        for tool, invalid, status, n in rows:
            entry = out.setdefault(tool, {"calls": 0, "invalid_arguments": 0, "errors": 0})
            entry["calls"] += n
            if invalid:
                entry["invalid_arguments"] += n
            if status not in ("ok", "pending_approval"):
                entry["errors"] += n
        return out
