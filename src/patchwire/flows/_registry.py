"""The set of known flows: the user's flow directories (and, on request, the shipped
examples)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path

from patchwire.connectors import ConnectorRegistry
from patchwire.errors import SpecError, SpecProblem, UnknownFlow
from patchwire.flows._loader import check_flow_references, load_flow_file, load_flow_text
from patchwire.flows.spec import FlowSpec

__all__ = ["FlowRegistry", "builtin_flow_texts"]


def builtin_flow_texts() -> Iterator[tuple[str, str]]:
    """(file name, YAML text) of every example flow shipped in the package."""
    root = resources.files("patchwire.flows") / "examples"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            yield f"examples/{entry.name}", entry.read_text(encoding="utf-8")


def flow_files(root: Path) -> list[Path]:
    """``root`` itself when it is a file, else its ``*.yaml``/``*.yml`` files (sorted);
    a missing directory has none (the default ``flows/`` need not exist)."""
    if root.is_file():
        return [root]
    if root.is_dir():
        return sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
    return []


class FlowRegistry:
    """Flows by id. Later registrations replace earlier ones with the same id, so a user's
    ``flows/chat_to_ticket.yaml`` overrides the shipped example of that id.

    The shipped examples are loaded only on request (``builtins=True``: the demo, tests):
    a flow can offer a tool to every model and run on a schedule, which nobody should get
    without asking for it. ``patchwire init --examples`` copies them into ``flows/``."""

    def __init__(self, flows: Iterable[FlowSpec] = ()) -> None:
        self._by_id: dict[str, FlowSpec] = {}
        self._sources: dict[str, str] = {}
        #: problems of flow files that failed to load (the others still load)
        self.problems: list[SpecProblem] = []
        #: whether the shipped examples were loaded (a reload loads them again, or not)
        self.builtins = False
        for spec in flows:
            self.add(spec)

    @classmethod
    def load(
        cls, paths: Iterable[Path] = (), *, builtins: bool = False, strict: bool = False
    ) -> FlowRegistry:
        """Load every ``*.yaml`` under ``paths`` (files or dirs), after the shipped examples
        when ``builtins``.

        A broken file does not hide the good ones: its problems are kept in ``problems``
        (and raised together at the end when ``strict``). References to connectors and
        other flows are not checked here — see :meth:`check_references`.
        """
        reg = cls()
        reg.builtins = builtins
        if builtins:
            for name, text in builtin_flow_texts():
                reg.add(load_flow_text(text, name), source=name)
        for root in paths:
            for file in flow_files(root):
                try:
                    reg.add(load_flow_file(file), source=str(file))
                except SpecError as exc:
                    reg.problems.extend(exc.problems)
        if strict and reg.problems:
            raise SpecError(reg.problems)
        return reg

    def add(self, spec: FlowSpec, *, source: str = "<memory>") -> None:
        self._by_id[spec.id] = spec
        self._sources[spec.id] = source

    def replace_with(self, other: FlowRegistry) -> None:
        """Take ``other``'s flows in place (a reload): whoever holds this registry (the
        API's flow routes) sees the new definitions at once."""
        self._by_id, self._sources = dict(other._by_id), dict(other._sources)
        self.problems, self.builtins = list(other.problems), other.builtins

    def source_of(self, flow_id: str) -> str:
        return self._sources.get(flow_id, "<memory>")

    def get(self, flow_id: str) -> FlowSpec:
        try:
            return self._by_id[flow_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise UnknownFlow(f"unknown flow {flow_id!r} (known: {known})") from None

    def as_mapping(self) -> Mapping[str, FlowSpec]:
        """The flows by id (a copy), for :func:`check_flow_references`."""
        return dict(self._by_id)

    def check_references(self, connectors: ConnectorRegistry) -> list[SpecProblem]:
        """Reference problems of every flow: unknown actions or arguments, unknown
        sub-flows, sub-flow cycles."""
        known = self.as_mapping()
        return [p for spec in self for p in check_flow_references(spec, connectors, known)]

    def __iter__(self) -> Iterator[FlowSpec]:
        return iter(sorted(self._by_id.values(), key=lambda s: s.id))

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)
