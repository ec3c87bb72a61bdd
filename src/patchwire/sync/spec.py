"""The sync format: pydantic models of a sync document (``syncs/*.yaml``), and loading them.

A sync copies one model's records (``customer``, ``order``) from a list action into the
store, per connection, and keeps them current::

    id: shop_orders
    model: order
    action: shop.list_orders          # the list action polled
    connections: [acme]               # default: every connection of the action's connector
    args: {updated_since: "$since"}   # JSONata per argument; $since, $cursor, $full bound
    record_id: id                     # JSONata over one record: its id
    updated_at: updated_at            # the upstream's change time (JSONata, optional)
    incremental: {mode: updated_since}
    schedule: {cron: "*/5 * * * *"}
    reconcile: {cron: "0 3 * * *"}    # a full listing: ids not seen are deleted
    webhook: {source: shop, types: ["order.*"]}
    tool: {name: search_synced_orders}

Every expression is JSONata. Records come from the action's pagination (its ``items``)
or, for an action that does not paginate and in ``cursor`` mode, from ``records`` over one
page's result; ``record`` then reshapes each one before it is stored.

Incremental modes:

- ``updated_since``: ``$since`` is the greatest ``updated_at`` seen so far (null on the
  first poll) and goes to the action through ``args``. The upstream must list changes in
  ascending ``updated_at`` order when a poll can stop at ``max_pages`` (the watermark
  never passes a record not yet read); records at the watermark are read again and, being
  unchanged, emit nothing.
- ``cursor``: the poll resumes the listing where the last one stopped: the stored cursor
  goes to the ``param`` query parameter, ``next`` (JSONata over a page's result) gives the
  next one. When there is no next cursor the cursor of the last page is kept, so the next
  poll re-reads that page and finds what was appended after it.
- ``full``: every poll lists everything (small models).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from patchwire.connectors import (
    ConnectorRegistry,
    LineMap,
    dedupe_problems,
    load_yaml_with_lines,
    pydantic_problems,
)
from patchwire.errors import LookupFailed, SpecError, SpecProblem, UnknownRecord, UnknownSync
from patchwire.expressions import ExpressionError, compile_expression

__all__ = [
    "Incremental",
    "SyncRegistry",
    "SyncSchedule",
    "SyncSpec",
    "SyncTool",
    "SyncWebhook",
    "UnknownRecord",
    "UnknownSync",
    "builtin_sync_texts",
    "load_sync_file",
    "load_sync_text",
]

SYNC_ID_PATTERN = r"^[a-z][a-z0-9_]*$"



class _Spec(BaseModel):
    # Unknown keys are errors: a typo like `shedule:` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SyncSchedule(_Spec):
    cron: str = Field(description="five-field cron expression, e.g. '*/5 * * * *'")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        text = value.strip()
        if not text.startswith("@") and len(text.split()) != 5:
            raise ValueError(f"cron {value!r} must have five fields (minute hour day month "
                             "weekday), e.g. '*/5 * * * *'")
        if not croniter.is_valid(text):
            raise ValueError(f"cron {value!r} is not a valid cron expression")
        return text

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like "
                             "'Europe/Paris' or 'UTC')") from None
        return value


class Incremental(_Spec):
    mode: Literal["updated_since", "cursor", "full"] = "updated_since"
    param: str | None = Field(
        None, description="cursor mode: the query parameter the cursor goes to (default: "
                          "the pagination's cursor_param)")
    next: str | None = Field(
        None, description="cursor mode: JSONata over a page's result giving the next cursor "
                          "(default: the pagination's next_cursor)")


class SyncWebhook(_Spec):
    """How inbound webhook events of ``source`` change the records in real time."""

    source: str = Field(description="the inbox source (POST /hooks/{source})")
    types: list[str] = Field(default_factory=lambda: ["*"],
                             description="event types applied; shell patterns ('order.*')")
    when: str | None = Field(None, description="JSONata over the event payload ($event "
                                               "bound); applied only when true")
    record: str = Field("$", description="JSONata over the payload giving the record")
    delete: str | None = Field(None, description="JSONata over the payload; true: the "
                                                 "record was deleted upstream")
    connection: str | None = Field(
        None, description="the connection the events belong to (default: the sync's one "
                          "connection); '=expr' is JSONata over the payload")

    @field_validator("types", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SyncTool(_Spec):
    """A read-only tool answering from the synced records, never calling the upstream."""

    name: str | None = Field(None, pattern=r"^[a-zA-Z0-9_-]{1,64}$",
                             description="default: search_synced_<model>s")
    description: str | None = None
    filters: list[str] = Field(default_factory=list,
                               description="record fields the model may filter on (exact)")
    result: str | None = Field(None, description="JSONata projecting each record answered")
    max_results: int = Field(20, ge=1, le=100)


class SyncSpec(_Spec):
    id: str = Field(pattern=SYNC_ID_PATTERN)
    title: str | None = None
    description: str | None = None
    model: str = Field(pattern=SYNC_ID_PATTERN, max_length=100,
                       description="what the records are: customer, order")
    action: str = Field(description="the list action polled: connector.action")
    connections: list[str] = Field(
        default_factory=list, description="default: every connection of the connector")
    args: dict[str, Any] = Field(
        default_factory=dict, description="the action's arguments; strings are JSONata "
                                          "with $since, $cursor and $full bound")
    records: str | None = Field(None, description="JSONata over one page's result giving "
                                                  "its records (default: pagination items)")
    record: str = Field("$", description="JSONata reshaping one record before it is stored")
    record_id: str = Field("id", description="JSONata over a record giving its id")
    updated_at: str | None = Field(None, description="JSONata over a record: its change time")
    incremental: Incremental = Field(default_factory=Incremental)
    schedule: SyncSchedule = Field(default_factory=lambda: SyncSchedule(cron="*/5 * * * *"))
    reconcile: SyncSchedule | None = None
    max_pages: int = Field(10, ge=1, le=1000, description="pages read per poll at most")
    webhook: list[SyncWebhook] = Field(default_factory=list)
    tool: SyncTool | None = None

    @field_validator("connections", "webhook", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @field_validator("action")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if value.count(".") != 1 or not all(value.split(".")):
            raise ValueError(f"action {value!r} must be connector.action, e.g. "
                             "shop.list_orders")
        return value

    @property
    def connector(self) -> str:
        return self.action.split(".", 1)[0]

    def summary(self) -> dict[str, Any]:
        """What the API and CLI list about a sync."""
        return {"id": self.id, "title": self.title, "description": self.description,
                "model": self.model, "action": self.action, "connections": self.connections,
                "mode": self.incremental.mode, "schedule": self.schedule.model_dump(),
                "reconcile": self.reconcile.model_dump() if self.reconcile else None,
                "webhook": [h.model_dump() for h in self.webhook],
                "tool": self.tool_name if self.tool else None}

    @property
    def tool_name(self) -> str:
        return (self.tool.name if self.tool and self.tool.name
                else f"search_synced_{self.model}s")


# -- loading --------------------------------------------------------------------------------


def load_sync_file(path: str | Path) -> SyncSpec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(str(p), None, "", f"cannot read file: {exc}")]) from exc
    return load_sync_text(text, str(p))


def load_sync_text(text: str, file: str = "<sync>") -> SyncSpec:
    """Parse and check one sync document; raises :class:`SpecError` with every problem."""
    data, lines, problems = load_yaml_with_lines(text, file)
    if data is None:
        raise SpecError(problems)
    return parse_sync(data, lines, problems)


def parse_sync(data: Any, lines: LineMap, problems: list[SpecProblem] | None = None) -> SyncSpec:
    problems = list(problems or [])
    if not isinstance(data, dict):
        problems.append(lines.problem((), "a sync must be a mapping at the top level"))
        raise SpecError(problems)
    try:
        spec = SyncSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, data, lines))
        problems.extend(lines.problem(loc, msg) for loc, msg in _expression_problems(data))
        raise SpecError(dedupe_problems(problems)) from None
    problems.extend(lines.problem(loc, msg) for loc, msg in _expression_problems(data))
    if problems:
        raise SpecError(dedupe_problems(problems))
    return spec


def _expression_problems(data: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every JSONata expression of the document compiles."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    sources: list[tuple[tuple[str | int, ...], Any]] = [
        (("records",), data.get("records")), (("record",), data.get("record")),
        (("record_id",), data.get("record_id")), (("updated_at",), data.get("updated_at"))]
    args = data.get("args")
    if isinstance(args, dict):
        sources.extend((("args", str(k)), v) for k, v in args.items())
    inc = data.get("incremental")
    if isinstance(inc, dict):
        sources.append((("incremental", "next"), inc.get("next")))
    hooks = data.get("webhook")
    for i, hook in enumerate(hooks if isinstance(hooks, list) else [hooks]):
        if isinstance(hook, dict):
            base: tuple[str | int, ...] = ("webhook", i) if isinstance(hooks, list) \
                else ("webhook",)
            for key in ("when", "record", "delete"):
                sources.append(((*base, key), hook.get(key)))
            conn = hook.get("connection")
            if isinstance(conn, str) and conn.startswith("="):
                sources.append(((*base, "connection"), conn[1:]))
    tool = data.get("tool")
    if isinstance(tool, dict):
        sources.append((("tool", "result"), tool.get("result")))
    for loc, source in sources:
        if isinstance(source, str):
            try:
                compile_expression(source)
            except ExpressionError as exc:
                found.append((loc, str(exc)))
    return found


def builtin_sync_texts() -> Iterator[tuple[str, str]]:
    """(file name, YAML text) of every example sync shipped in the package."""
    root = resources.files("patchwire.sync") / "examples"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            yield f"examples/{entry.name}", entry.read_text(encoding="utf-8")


def _sync_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if root.is_dir():
        return sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
    return []


class SyncRegistry:
    """Syncs by id. The shipped examples are templates, loaded only on request
    (``builtins=True``): a sync polls an upstream on its own, which nobody should get
    without asking for it. Copy one into ``syncs/`` to run it."""

    def __init__(self, syncs: Iterable[SyncSpec] = ()) -> None:
        self._by_id: dict[str, SyncSpec] = {}
        self._sources: dict[str, str] = {}
        #: problems of sync files that failed to load (the others still load)
        self.problems: list[SpecProblem] = []
        #: whether the shipped examples were loaded (a reload loads them again, or not)
        self.builtins = False
        for spec in syncs:
            self.add(spec)

    @classmethod
    def load(cls, paths: Iterable[Path] = (), *, builtins: bool = False,
             strict: bool = False) -> SyncRegistry:
        reg = cls()
        reg.builtins = builtins
        if builtins:
            for name, text in builtin_sync_texts():
                reg.add(load_sync_text(text, name), source=name)
        for root in paths:
            for file in _sync_files(root):
                try:
                    reg.add(load_sync_file(file), source=str(file))
                except SpecError as exc:
                    reg.problems.extend(exc.problems)
        if strict and reg.problems:
            raise SpecError(reg.problems)
        return reg

    def add(self, spec: SyncSpec, *, source: str = "<memory>") -> None:
        self._by_id[spec.id] = spec
        self._sources[spec.id] = source

    def source_of(self, sync_id: str) -> str:
        return self._sources.get(sync_id, "<memory>")

    def get(self, sync_id: str) -> SyncSpec:
        try:
            return self._by_id[sync_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise UnknownSync(f"unknown sync {sync_id!r} (known: {known})") from None

    def check_references(self, connectors: ConnectorRegistry) -> list[SpecProblem]:
        """Syncs naming an unknown action (their file, no line)."""
        found: list[SpecProblem] = []
        for spec in self:
            try:
                connectors.resolve(spec.action)
            except LookupFailed as exc:
                found.append(SpecProblem(self.source_of(spec.id), None, "action", str(exc)))
        return found

    def __iter__(self) -> Iterator[SyncSpec]:
        return iter(sorted(self._by_id.values(), key=lambda s: s.id))

    def __contains__(self, sync_id: object) -> bool:
        return sync_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)
