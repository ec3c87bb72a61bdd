"""Definitions: the connectors, flows and syncs a server or worker runs with.

Loading them checks everything a server would load — every file of every kind, and what
each refers to (a flow's actions and sub-flows, a sync's action) — and keeps every problem
with its ``file:line``, so one pass over a project lists them all: ``patchwire check``
prints them, ``patchwire serve`` and ``patchwire worker`` refuse to start on them.

A running server or worker reloads its definitions as a whole (:class:`LiveDefinitions`,
on ``SIGHUP`` or ``POST /api/v1/definitions/reload``): new files that do not load change
nothing; files that load replace the old definitions for what starts from then on. Runs
already started keep the flow version they started with (a run is pinned to its flow's
digest), and a call or a poll in flight ends with the definition it began with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from patchwire.calls import code_definition_problems
from patchwire.catalog import add_to_deployment
from patchwire.config import Settings
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import ConfigError, SpecError, SpecProblem
from patchwire.flows import FlowRegistry, iter_steps
from patchwire.flows.spec import CodeStep
from patchwire.ports import HasConnectors, HasSettings
from patchwire.sync import SyncRegistry

if TYPE_CHECKING:
    from patchwire.flows import Engine
    from patchwire.sync import SyncEngine
    from patchwire.tools import ToolInvoker

__all__ = [
    "DefinitionChanges", "Definitions", "DefinitionsHost", "LiveDefinitions", "load_definitions",
]


@dataclass(frozen=True)
class Definitions:
    """What loaded, and every problem of what did not (empty: all of it loads)."""

    connectors: ConnectorRegistry
    flows: FlowRegistry
    syncs: SyncRegistry
    problems: list[SpecProblem] = field(default_factory=list)

    def required(self) -> Definitions:
        """These definitions, or SpecError listing every problem."""
        if self.problems:
            raise SpecError(self.problems)
        return self

    def summary(self) -> str:
        return (f"{len(self.connectors)} connector(s), {len(self.flows)} flow(s), "
                f"{len(self.syncs)} sync(s)")


def load_definitions(settings: Settings, *, flow_examples: bool = False,
                     sync_examples: bool = False) -> Definitions:
    """Every connector, flow and sync ``settings`` point at (the built-in connectors
    included; the shipped example flows and syncs only when asked for), with the problems
    of every file that does not load and of every reference that does not resolve."""
    connectors = ConnectorRegistry.load(settings.connector_paths)
    flows = FlowRegistry.load(settings.flow_paths, builtins=flow_examples)
    syncs = SyncRegistry.load(settings.sync_paths, builtins=sync_examples)
    problems = [*connectors.problems, *flows.problems, *syncs.problems,
                *flows.check_references(connectors), *syncs.check_references(connectors),
                *_code_problems(settings, connectors, flows)]
    # by file and line, as an editor lists them (each file's load and reference problems
    # are found in separate passes)
    problems.sort(key=lambda p: (p.file, p.line or 0))
    return Definitions(connectors, flows, syncs, problems)


def _code_problems(settings: Settings, connectors: ConnectorRegistry,
                   flows: FlowRegistry) -> list[SpecProblem]:
    """Custom code (``code:``) each connector action and flow step names, loaded from
    ``settings.code_paths`` now (and so again on each reload), and code steps' connectors."""
    refs: list[tuple[str, tuple[str | int, ...], str]] = [
        (connectors.source_of(c.name), ("actions", name, "code"), action.code)
        for c in connectors for name, action in c.actions.items() if action.code]
    unknown: list[tuple[str, tuple[str | int, ...], str]] = []
    for flow in flows:
        for loc, step in iter_steps(flow.steps):
            if isinstance(step, CodeStep):
                refs.append((flows.source_of(flow.id), (*loc, "code"), step.code))
                if step.connector is not None and step.connector not in connectors:
                    unknown.append((flows.source_of(flow.id), (*loc, "connector"),
                                    f"unknown connector {step.connector!r}"))
    return code_definition_problems(settings.code_paths, refs, also=unknown)


@dataclass(frozen=True)
class DefinitionChanges:
    """What a reload changed, by kind (``connectors``, ``flows``, ``syncs``): the names
    added, removed and changed."""

    added: dict[str, list[str]]
    removed: dict[str, list[str]]
    changed: dict[str, list[str]]

    @property
    def any(self) -> bool:
        return any(v for d in (self.added, self.removed, self.changed) for v in d.values())

    def to_dict(self) -> dict[str, Any]:
        return {kind: {"added": self.added[kind], "removed": self.removed[kind],
                       "changed": self.changed[kind]} for kind in self.added}

    def summary(self) -> str:
        parts = [f"{what} {kind}: {', '.join(names)}"
                 for what, by_kind in (("added", self.added), ("removed", self.removed),
                                       ("changed", self.changed))
                 for kind, names in by_kind.items() if names]
        return "; ".join(parts) or "nothing changed"


def _diff(old: Mapping[str, object], new: Mapping[str, object]) -> tuple[list[str], ...]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    return added, removed, changed


def _by_name(items: Iterable[Any], key: str) -> dict[str, object]:
    return {getattr(item, key): item for item in items}


class DefinitionsHost(HasSettings, HasConnectors, Protocol):
    """Where the connectors in force live (the runtime or the facade): read, and replaced
    by a reload (``use_connectors``: calls from then on use the new ones)."""

    def use_connectors(self, connectors: ConnectorRegistry) -> None: ...


class LiveDefinitions:
    """The definitions a server or worker runs with, reloaded as a whole.

    ``flows`` is the registry the API's flow routes read (updated in place); ``engine``,
    ``syncs`` and ``tools`` (each optional: a worker has no tool invoker) are told of the
    new definitions. The connectors are ``host``'s.
    """

    def __init__(self, host: DefinitionsHost, flows: FlowRegistry, *,
                 engine: Engine | None = None, syncs: SyncEngine | None = None,
                 tools: ToolInvoker | None = None, sync_examples: bool = False) -> None:
        self._host = host
        self.flows = flows
        self.engine = engine
        self.syncs = syncs
        self.tools = tools
        self.sync_examples = sync_examples
        self._lock = asyncio.Lock()

    def current(self) -> dict[str, list[dict[str, str]]]:
        """The definitions in force: names and the files they came from."""
        return {
            "connectors": [{"name": c.name, "source": self._host.connectors.source_of(c.name)}
                           for c in self._host.connectors],
            "flows": [{"name": f.id, "source": self.flows.source_of(f.id)}
                      for f in self.flows],
            "syncs": [{"name": s.id} for s in (self.syncs.syncs() if self.syncs else [])],
        }

    async def add_from_catalog(self, name: str, *, force: bool = False) -> DefinitionChanges:
        """Enable catalog connector ``name``: its file is written to the first connector
        directory (``ConnectorExists`` if there is one, unless ``force``), then everything
        reloads. A reload that fails for another file's sake (SpecError) leaves the new
        file in place and the definitions in force unchanged."""
        paths = self._host.settings.connector_paths
        if not paths:
            raise ConfigError("no connector directory is configured (connector_paths in "
                              "patchwire.toml): there is nowhere to add a connector to")
        await asyncio.to_thread(add_to_deployment, name, paths[0], force=force)
        return await self.reload()

    async def reload(self) -> DefinitionChanges:
        """Load every definition file again and put the new definitions in force.

        SpecError (every problem, ``file:line``) when anything does not load or resolve:
        then nothing changes. One reload at a time."""
        async with self._lock:
            # the files are read off the event loop: runs and requests go on meanwhile
            new = (await asyncio.to_thread(
                load_definitions, self._host.settings, flow_examples=self.flows.builtins,
                sync_examples=self.sync_examples)).required()
            old_syncs = self.syncs.syncs() if self.syncs is not None else []
            kinds = {
                "connectors": _diff(_by_name(self._host.connectors, "name"),
                                    _by_name(new.connectors, "name")),
                "flows": _diff(_by_name(self.flows, "id"), _by_name(new.flows, "id")),
                "syncs": _diff(_by_name(old_syncs, "id"), _by_name(new.syncs, "id")),
            }
            self._host.use_connectors(new.connectors)
            self.flows.replace_with(new.flows)
            if self.engine is not None:
                self.engine.use_flows(self.flows.as_mapping())
            if self.syncs is not None:
                self.syncs.use_syncs(new.syncs)
            if self.tools is not None:
                self.tools.use_syncs(new.syncs)
            return DefinitionChanges(
                added={k: v[0] for k, v in kinds.items()},
                removed={k: v[1] for k, v in kinds.items()},
                changed={k: v[2] for k, v in kinds.items()})
