"""What a waiting step waits for, as both engines file and check it: a flow approval
(filed once per run and step) and the end of a sub-flow run."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from patchwire.errors import UnknownApproval
from patchwire.flows._runs import ActiveRun
from patchwire.store import Store
from patchwire.store.tools import ApprovalRecord, ToolRepository

__all__ = ["approval_decided", "step_approval"]


async def step_approval(store: Store, run: ActiveRun, key: str, message: Any,
                        open_for: float, now: float) -> dict[str, Any]:
    """File (once per run and step) or read the approval of an ``approve`` step:
    ``{status, decided_by, reason, expires_at, id}``. The run's end user's approval: they
    see it (and may decide it, where their token allows) like their tool calls'."""
    repo = ToolRepository(store)
    approval_id = hashlib.sha256(f"{run.id}:{key}".encode()).hexdigest()[:32]
    try:
        found = await repo.get_approval(approval_id)
    except UnknownApproval:
        at = datetime.fromtimestamp(now, UTC)
        found = ApprovalRecord(
            id=approval_id, kind="flow", subject=f"{run.flow.id}.{key}", target=run.id,
            connection=None,
            arguments={"message": message, "run_id": run.id, "flow": run.flow.id,
                       "step": key},
            fingerprint=hashlib.sha256(f"flow:{run.id}:{key}".encode()).hexdigest(),
            session_id=None, status="pending", requested_at=at,
            expires_at=at + timedelta(seconds=open_for), end_user=run.end_user)
        await repo.add_approval(found)
    expires = found.expires_at.timestamp() if found.expires_at else None
    return {"status": found.effective_status(datetime.fromtimestamp(now, UTC)),
            "decided_by": found.decided_by, "reason": found.reason,
            "expires_at": expires, "id": found.id}


async def approval_decided(store: Store, approval_id: str) -> bool:
    return (await ToolRepository(store).get_approval(approval_id)).status != "pending"
