"""The tool catalog: which actions a chatbot may call, under which names.

An action becomes a tool when its connector YAML says ``tool:`` or when someone runs
``patchwire tools enable`` (stored overrides win over the YAML). A catalog is built for a set
of connections (an operator's), binding each tool to the connection it calls through; an
unbound catalog (no connections) is what ``patchwire tools export`` shows.

An end user's catalog (:func:`end_user_catalog`) is the unbound one laid over their own
connections: every tool of every connector is listed whether or not they hold a
connection of it (calling one they lack answers with a connect link), under names made of
the connector and action only, so no name carries anything of another end user. Their
default connection of a connector keeps the plain names; each other one of that connector
is offered again under its label as prefix (``work_shop_get_order``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.spec import ActionSpec, ConnectorSpec, ToolSpec
from patchwire.errors import UnknownTool
from patchwire.flows.spec import FlowSpec

__all__ = ["EndUserConnection", "Tool", "ToolCatalog", "ToolFilter", "end_user_catalog",
           "sanitize_tool_name"]

MAX_NAME = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Tool:
    """One action offered to a model. ``name`` is unique in its catalog and valid for every
    provider (``^[a-zA-Z0-9_-]{1,64}$``); ``input_schema`` is the action's JSON Schema."""

    name: str
    target: str
    connector: str
    connection: str | None
    title: str
    description: str
    input_schema: Mapping[str, Any]
    read_only: bool
    destructive: bool
    idempotent: bool
    confirm: bool
    result: str | None = None
    max_result_bytes: int = 8192
    tags: tuple[str, ...] = ()
    #: "action" (target ``connector.action``) or "flow" (target ``flow:<id>``, a run)
    kind: str = "action"


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Narrow a catalog: only some connectors, tags (any of), or read-only tools."""

    connectors: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    read_only: bool = False

    def admits(self, tool: Tool) -> bool:
        if self.connectors is not None and tool.connector not in self.connectors:
            return False
        if self.tags is not None and not self.tags.intersection(tool.tags):
            return False
        return not (self.read_only and not tool.read_only)


def sanitize_tool_name(raw: str, *, salt: str | None = None) -> str:
    """A provider-safe name: invalid characters become ``_``; a name over 64 characters
    (or any name when ``salt`` is given, to break a collision) ends in a short hash."""
    name = _INVALID.sub("_", raw).strip("_") or "tool"
    if salt is None and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(f"{raw}\0{salt or ''}".encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('_')}_{digest}"


def _description(connector: ConnectorSpec, action: ActionSpec, spec: ToolSpec) -> str:
    if spec.description:
        return spec.description.strip()
    parts = [p.strip() for p in (action.summary, action.description) if p and p.strip()]
    text = "\n\n".join(dict.fromkeys(parts))
    if text:
        return text
    if action.request is not None:
        return f"{connector.title or connector.name}: {action.request.method} " \
               f"{action.request.path}"
    kind = "GraphQL" if action.graphql is not None else "SOAP" if action.soap else "custom"
    return f"{connector.title or connector.name}: a {kind} operation"


@dataclass(slots=True)
class _Candidate:
    base: str
    tool: Tool
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = f"{self.tool.target}\0{self.tool.connection or ''}"


class ToolCatalog:
    """Tools by name, in a stable order (by name)."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._by_name: dict[str, Tool] = {}
        for tool in sorted(tools, key=lambda t: t.name):
            if tool.name in self._by_name:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._by_name[tool.name] = tool

    @classmethod
    def build(
        cls,
        registry: ConnectorRegistry,
        *,
        overrides: Mapping[str, ToolSpec] | None = None,
        connections: Sequence[tuple[str, str]] | None = None,
        filter: ToolFilter | None = None,
        every_action: bool = False,
        flows: Iterable[FlowSpec] = (),
    ) -> ToolCatalog:
        """Tools from ``registry``.

        ``overrides`` maps ``connector.action`` to stored tool settings (``tools enable``);
        ``connections`` is a list of ``(connection, connector)`` pairs to bind tools to:
        with one connection of a connector its tools keep their names, with several each
        tool is offered once per connection, prefixed by the connection's name.
        ``every_action`` offers every action (used to check provider schemas). ``flows``
        with a ``tool`` trigger are offered too: calling one runs the flow.
        """
        overrides = overrides or {}
        by_connector: dict[str, list[str]] | None = None
        if connections is not None:
            by_connector = {}
            for conn_name, connector_name in connections:
                by_connector.setdefault(connector_name, []).append(conn_name)
        candidates: list[_Candidate] = []
        for connector in registry:
            bound: Sequence[str | None]
            if by_connector is None:
                bound = [None]
            else:
                bound = sorted(by_connector.get(connector.name, []))
                if not bound:
                    continue
            for action_name, action in connector.actions.items():
                target = f"{connector.name}.{action_name}"
                spec = overrides.get(target) or action.tool_spec
                if spec is None and every_action:
                    spec = ToolSpec()
                if spec is None or not spec.enabled:
                    continue
                base = spec.name or f"{connector.name}_{action_name}"
                for conn in bound:
                    tool = _make_tool(connector, action_name, action, spec, conn)
                    if filter is not None and not filter.admits(tool):
                        continue
                    name = f"{conn}_{base}" if conn is not None and len(bound) > 1 else base
                    candidates.append(_Candidate(name, tool))
        for flow in flows:
            trigger = flow.trigger.tool
            if trigger is None:
                continue
            tool = Tool(
                name="", target=f"flow:{flow.id}", connector="flow", connection=None,
                title=flow.title or flow.id.replace("_", " ").capitalize(),
                description=(trigger.description or flow.description or flow.title
                             or f"Run the flow {flow.id}").strip(),
                input_schema=flow.input, read_only=trigger.read_only, destructive=False,
                idempotent=False, confirm=trigger.confirm, kind="flow")
            if filter is None or filter.admits(tool):
                candidates.append(_Candidate(trigger.name or f"flow_{flow.id}", tool))
        return cls(_assign_names(candidates))

    def get(self, name: str) -> Tool:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownTool(f"no tool named {name!r}") from None

    def find(self, name: str) -> Tool | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def _make_tool(connector: ConnectorSpec, action_name: str, action: ActionSpec, spec: ToolSpec,
               connection: str | None) -> Tool:
    method = action.method
    read_only = spec.read_only if spec.read_only is not None else action.reads_only
    destructive = (spec.destructive if spec.destructive is not None
                   else (not read_only and method == "DELETE"))
    confirm = spec.confirm if spec.confirm is not None else destructive
    return Tool(
        name="",
        target=f"{connector.name}.{action_name}",
        connector=connector.name,
        connection=connection,
        title=action.summary or action_name.replace("_", " ").capitalize(),
        description=_description(connector, action, spec),
        input_schema=action.input,
        read_only=read_only,
        destructive=destructive,
        idempotent=action.is_idempotent,
        confirm=confirm,
        result=spec.result,
        max_result_bytes=spec.max_result_bytes,
        tags=tuple(action.tags),
    )


def _assign_names(candidates: list[_Candidate]) -> list[Tool]:
    """Sanitised, unique names. On a collision the candidate with the smallest
    (target, connection) keeps the name and the others get a hash suffix derived from
    their own target, so names never depend on load order."""
    groups: dict[str, list[_Candidate]] = {}
    for cand in candidates:
        groups.setdefault(sanitize_tool_name(cand.base), []).append(cand)
    taken: set[str] = set()
    out: list[Tool] = []
    for name in sorted(groups):
        members = sorted(groups[name], key=lambda c: c.key)
        for i, cand in enumerate(members):
            final = name if i == 0 else sanitize_tool_name(cand.base, salt=cand.key)
            n = 1
            while final in taken or (final != name and final in groups):
                final = sanitize_tool_name(cand.base, salt=f"{cand.key}\0{n}")
                n += 1
            taken.add(final)
            out.append(replace(cand.tool, name=final))
    return out


class EndUserConnection(Protocol):
    """One of an end user's connections as their catalog sees it (a ConnectionRecord)."""

    @property
    def name(self) -> str: ...

    @property
    def connector(self) -> str: ...

    @property
    def label(self) -> str | None: ...

    @property
    def is_default(self) -> bool: ...


def default_connection(connections: Sequence[EndUserConnection]) -> EndUserConnection | None:
    """Of one end user's connections of one connector, the one their calls use when they
    name none: the only one, or the one marked default (as the call path chooses)."""
    if len(connections) == 1:
        return connections[0]
    defaults = [c for c in connections if c.is_default]
    return defaults[0] if len(defaults) == 1 else None


def end_user_catalog(base: ToolCatalog, connections: Sequence[EndUserConnection]
                     ) -> tuple[ToolCatalog, dict[str, str]]:
    """An end user's catalog over ``base`` (unbound: built without connections) and
    their ``connections``; and, for each tool offered under a label prefix, its plain
    name (what metrics count it as: labels are the end user's own words).

    A tool of a connector they hold no connection of stays unbound (the call path then
    says they are not connected). With several connections and none the default, the
    plain name stays unbound too (the call path asks which) and each is offered under its
    label.
    """
    by_connector: dict[str, list[EndUserConnection]] = {}
    for conn in sorted(connections, key=lambda c: c.name):
        by_connector.setdefault(conn.connector, []).append(conn)
    if not by_connector:
        return base, {}
    taken = set(base.names())
    tools: list[Tool] = []
    plain: dict[str, str] = {}
    for tool in base:
        held = by_connector.get(tool.connector) if tool.kind == "action" else None
        if not held:
            tools.append(tool)
            continue
        default = default_connection(held)
        tools.append(tool if default is None else replace(tool, connection=default.name))
        for conn in held:
            if conn is default:
                continue
            raw = f"{conn.label or conn.name}_{tool.name}"
            name = sanitize_tool_name(raw)
            n = 0
            while name in taken:  # two connections with one label, or a tool's own name
                n += 1
                name = sanitize_tool_name(raw, salt=f"{conn.name}\0{n}")
            taken.add(name)
            plain[name] = tool.name
            tools.append(replace(tool, name=name, connection=conn.name))
    return ToolCatalog(tools), plain
