"""The set of known connectors: built-ins plus the user's connector directories."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

from patchwire.connectors._loader import load_connector_file, load_connector_text
from patchwire.connectors.spec import ActionSpec, ConnectorSpec
from patchwire.errors import SpecError, SpecProblem, UnknownAction, UnknownConnector

__all__ = ["ConnectorRegistry", "builtin_connector_texts"]


def builtin_connector_texts() -> Iterator[tuple[str, str]]:
    """(file name, YAML text) of every built-in connector shipped in the package."""
    root = resources.files("patchwire.connectors") / "builtin"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            yield f"builtin/{entry.name}", entry.read_text(encoding="utf-8")


class ConnectorRegistry:
    """Connectors by name. Later registrations replace earlier ones of the same name,
    so a user's ``connectors/shop.yaml`` overrides the built-in ``shop``."""

    def __init__(self, connectors: Iterable[ConnectorSpec] = ()) -> None:
        self._by_name: dict[str, ConnectorSpec] = {}
        self._sources: dict[str, str] = {}
        #: problems of connector files that failed to load (the others still load)
        self.problems: list[SpecProblem] = []
        for spec in connectors:
            self.add(spec)

    @classmethod
    def load(
        cls, paths: Iterable[Path] = (), *, builtins: bool = True, strict: bool = False
    ) -> ConnectorRegistry:
        """Load built-ins and every ``*.yaml`` under ``paths``.

        A broken file does not hide the good ones: its problems are kept in ``problems``
        (and raised together at the end when ``strict``).
        """
        reg = cls()
        if builtins:
            for name, text in builtin_connector_texts():
                reg.add(load_connector_text(text, name), source=name)
        for root in paths:
            files = [root] if root.is_file() else sorted(
                [*root.glob("*.yaml"), *root.glob("*.yml")]
            ) if root.is_dir() else []
            for file in files:
                try:
                    reg.add(load_connector_file(file), source=str(file))
                except SpecError as exc:
                    reg.problems.extend(exc.problems)
        if strict and reg.problems:
            raise SpecError(reg.problems)
        return reg

    def add(self, spec: ConnectorSpec, *, source: str = "<memory>") -> None:
        self._by_name[spec.name] = spec
        self._sources[spec.name] = source

    def replace_with(self, other: ConnectorRegistry) -> None:
        """Take ``other``'s connectors in place (a reload): whoever holds this registry
        (the facade, the token keeper) sees the new definitions at once."""
        self._by_name, self._sources = dict(other._by_name), dict(other._sources)
        self.problems = list(other.problems)

    def source_of(self, name: str) -> str:
        return self._sources.get(name, "<memory>")

    def get(self, name: str) -> ConnectorSpec:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise UnknownConnector(f"unknown connector {name!r} (known: {known})") from None

    def resolve(self, qualified: str) -> tuple[ConnectorSpec, ActionSpec]:
        """``"shop.get_order"`` -> (connector, action)."""
        connector_name, dot, action_name = qualified.partition(".")
        if not dot or not action_name:
            raise UnknownAction(
                f"action names are written connector.action (e.g. shop.get_order), "
                f"got {qualified!r}"
            )
        spec = self.get(connector_name)
        action = spec.actions.get(action_name)
        if action is None:
            known = ", ".join(sorted(spec.actions)) or "none"
            raise UnknownAction(
                f"connector {connector_name!r} has no action {action_name!r} (actions: {known})"
            )
        return spec, action

    def __iter__(self) -> Iterator[ConnectorSpec]:
        return iter(sorted(self._by_name.values(), key=lambda s: s.name))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)
