"""SQLAlchemy table definitions (the source of truth the migrations must match).

Migrations are hand-written in ``migrations/versions``; ``tests/store`` checks that the
migrated schema and these models agree, so keep both in step when adding tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import NAMING_CONVENTION, Base, UTCDateTime

__all__ = [
    "NAMING_CONVENTION",
    "ApprovalRow",
    "Base",
    "CallRow",
    "ConcurrencySlotRow",
    "ConnectionRow",
    "EventRow",
    "FlowRunRow",
    "FlowScheduleRow",
    "FlowStepRow",
    "FlowVersionRow",
    "ToolCallRow",
    "ToolSettingRow",
    "UTCDateTime",
]


class ConnectionRow(Base):
    """One set of credentials for a connector, held by at most one end user. An end user
    may hold several of one connector (``label``: "work", "personal"), one the default.
    ``needs_reauth``: the provider refused its refresh (or a refreshed token); ``health``:
    ``unhealthy`` while its calls fail (see ``connections/``), else None."""

    __tablename__ = "connections"
    __table_args__ = (Index("ix_connections_end_user_connector", "end_user", "connector"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    connector: Mapped[str] = mapped_column(String(200), nullable=False)
    end_user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                             server_default=text("false"))
    needs_reauth: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                               server_default=text("false"))
    health: Mapped[str | None] = mapped_column(String(16), nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    secrets: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class CallRow(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(200), nullable=False)
    connector: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    connection: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    error_class: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    #: time spent waiting for rate limits, the concurrency cap and 429 pauses (0: none)
    rate_limit_wait_ms: Mapped[float] = mapped_column(Float, nullable=False,
                                                      server_default=text("0"))


class ToolSettingRow(Base):
    """Tool settings set with ``patchwire tools enable|disable``; they win over the YAML."""

    __tablename__ = "tool_settings"

    target: Mapped[str] = mapped_column(String(300), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ApprovalRow(Base):
    """A request for a person's yes before something runs (a tool call; later a flow step)."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    target: Mapped[str] = mapped_column(String(300), nullable=False)
    connection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    session_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: the end user whose tool call asked for it (None: an operator's)
    end_user: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ToolCallRow(Base):
    """The tool audit: every call a model made, whether its arguments were valid, and how
    it ended. Arguments are stored redacted."""

    __tablename__ = "tool_calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    tool: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    #: the end user the call acted for (None: an operator's)
    end_user: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    connection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    arguments: Mapped[Any] = mapped_column(JSON, nullable=True)
    validation_failed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    approval_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class FlowVersionRow(Base):
    """A flow definition as it was when a run started: runs keep the version they began."""

    __tablename__ = "flow_versions"

    flow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class FlowRunRow(Base):
    """One run of a flow. Times are epoch seconds (wall clock), like the rate-limit leases:
    the engine compares them on every claim and checkpoint."""

    __tablename__ = "flow_runs"
    __table_args__ = (
        Index("ix_flow_runs_status_wake_at", "status", "wake_at"),
        Index("ix_flow_runs_flow_id_created_at", "flow_id", "created_at"),
        Index("ix_flow_runs_created_at", "created_at"),
        Index("ix_flow_runs_parent_run_id", "parent_run_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    flow_version: Mapped[int] = mapped_column(Integer, nullable=False)
    flow_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    trigger: Mapped[str] = mapped_column(String(32), nullable=False)
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[Any] = mapped_column(JSON, nullable=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_step: Mapped[str | None] = mapped_column(String(500), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), nullable=True,
                                                        unique=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: the end user the run acts for: its calls use that end user's connections
    end_user: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    wake_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class FlowStepRow(Base):
    """A step of a run that started: its output once done. ``key`` is the step's path in
    the flow (``notify``, ``each[3].lookup``), the same on every replay."""

    __tablename__ = "flow_steps"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[Any] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: what the step was given (its rendered input), when the engine records it
    input: Mapped[Any] = mapped_column(JSON, nullable=True)


class FlowScheduleRow(Base):
    """The last schedule slot fired per flow trigger, so a slot fires once across restarts."""

    __tablename__ = "flow_schedules"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    last_slot: Mapped[float] = mapped_column(Float, nullable=False)


class EventRow(Base):
    """The event log: events emitted by flows (``emit``), runs and syncs, which outbound
    webhooks deliver to subscribers (``dispatched_at`` once deliveries exist for it)."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, index=True)
    dispatched_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)


class ConcurrencySlotRow(Base):
    """One of a connector's ``concurrency`` slots, shared by every process using the store
    (``_slots.py``): free when ``holder`` is NULL or ``expires_at`` (wall-clock seconds)
    has passed."""

    __tablename__ = "concurrency_slots"

    connector: Mapped[str] = mapped_column(String(200), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)


# Tables of other parts of Patchwire, defined next to the code that owns them; imported so
# that ``Base.metadata`` (the source of truth the migrations are checked against) has them.
from patchwire.store import _delivery_models, _sync_models, _webhook_models  # noqa: E402

__all__ += ["_delivery_models", "_sync_models", "_webhook_models"]
from patchwire.store import _key_models  # noqa: E402  (API keys: store/keys.py)

__all__ += ["_key_models"]
from patchwire.store import _end_user_models  # noqa: E402  (store/end_users.py)

__all__ += ["_end_user_models"]
from patchwire.store import _blob_models  # noqa: E402  (binary answers: store/blobs.py)

__all__ += ["_blob_models"]
