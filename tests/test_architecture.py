"""The shape of the code, checked: layers that do not import each other in circles, packages
that talk through their faces, one group-commit writer, SQL only where data lives, and one
way to talk HTTP to an upstream (see docs/architecture.md).

Read from the source with ``ast`` (nothing is imported), so a rule broken in a module no
test imports is still caught.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "patchwire"

#: packages that present things to people and programs: no SQL of their own
OUTER_PACKAGES = ("patchwire.cli", "patchwire.server", "patchwire.dashboard", "patchwire.tools")


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    #: every patchwire module this one imports, type-only imports included
    imports: set[str] = field(default_factory=set)
    #: (line, imported module) of imports that name an underscore module
    private_imports: list[tuple[int, str]] = field(default_factory=list)


def _modules() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        out[name] = Module(name, path, ast.parse(path.read_text(), str(path)), is_package)
    for module in out.values():
        for node in ast.walk(module.tree):
            for target in _imported(module, node, out):
                if target != module.name:
                    module.imports.add(target)
                if any(part.startswith("_") for part in target.split(".")[1:]):
                    module.private_imports.append((getattr(node, "lineno", 0), target))
    return out


def _imported(module: Module, node: ast.AST, modules: dict[str, Module]) -> Iterator[str]:
    """The patchwire modules an import statement loads (``from p import m`` loads p.m)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.name.split(".")
            if not module.is_package:
                base.pop()
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                 for alias in node.names]
    else:
        return
    for name in names:
        if not name.startswith("patchwire"):
            continue
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        yield name


def _package_of(module: Module) -> str:
    """``patchwire.flows`` for anything under flows/; ``patchwire`` for top-level modules."""
    parts = module.name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or module.is_package else "patchwire"


def _face_of(name: str) -> str:
    """The package whose ``__init__`` should be imported instead of ``name``."""
    parts = name.split(".")
    kept = [parts[0]]
    for part in parts[1:]:
        if part.startswith("_"):
            break
        kept.append(part)
    return ".".join(kept)


def _cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(modules[root].imports)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(modules[child].imports))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return _modules()


def test_no_modules_import_each_other_in_a_circle_not_even_for_type_hints(
    modules: dict[str, Module],
) -> None:
    assert _cycles(modules) == []


def test_the_cycle_finder_finds_a_cycle_through_a_type_only_import() -> None:
    a = Module("patchwire.a", Path("a.py"), ast.parse(""), False, {"patchwire.b"})
    b = Module("patchwire.b", Path("b.py"), ast.parse(""), False, {"patchwire.a"})
    c = Module("patchwire.c", Path("c.py"), ast.parse(""), False, {"patchwire.a"})
    assert _cycles({"patchwire.a": a, "patchwire.b": b, "patchwire.c": c}) == [
        ["patchwire.a", "patchwire.b"]]


def test_no_package_imports_another_packages_underscore_module(
    modules: dict[str, Module],
) -> None:
    offenders = [
        f"{module.path.relative_to(SRC)}:{line} imports {target}"
        for module in modules.values()
        for line, target in module.private_imports
        if _face_of(target) != _package_of(module)
    ]
    assert offenders == []


def test_only_the_outer_layers_know_the_patchwire_facade(modules: dict[str, Module]) -> None:
    """Engines get narrow interfaces; the facade sits on top of the import graph."""
    outer = ("patchwire.cli", "patchwire.server", "patchwire.dashboard")
    offenders = sorted(
        name for name, module in modules.items()
        if "patchwire._patchwire" in module.imports and name != "patchwire"
        and not name.startswith(outer)
    )
    assert offenders == []


def _calls_to(module: Module, dotted: str) -> list[int]:
    owner, attr = dotted.rsplit(".", 1)
    return [
        node.lineno for node in ast.walk(module.tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == attr and ast.unparse(node.func.value).endswith(owner)
    ]


def test_one_module_opens_sqlite_connections_for_group_commit(
    modules: dict[str, Module],
) -> None:
    openers = sorted(name for name, module in modules.items()
                     if _calls_to(module, "sqlite3.connect"))
    assert len(openers) <= 1, openers


_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH)\s", re.I)


def _sql_in(module: Module) -> list[str]:
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import) and any(
                alias.name.startswith("sqlalchemy") for alias in node.names):
            found.append(f"line {node.lineno}: import sqlalchemy")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _SQL.match(node.value) and " FROM " in node.value.upper() + " "):
            found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in ("engine", "begin_nested") and \
                ast.unparse(node.value).endswith("store"):
            found.append(f"line {node.lineno}: reaches the store's engine")
    return found


def test_no_sql_in_the_cli_the_server_the_dashboard_or_the_tools(
    modules: dict[str, Module],
) -> None:
    offenders = {
        str(module.path.relative_to(SRC)): problems
        for name, module in modules.items()
        if name.startswith(OUTER_PACKAGES) and (problems := _sql_in(module))
    }
    assert offenders == {}


def test_the_sql_finder_sees_sqlalchemy_text_and_the_stores_engine() -> None:
    source = ("from sqlalchemy import select\n"
              "q = 'SELECT id FROM runs'\n"
              "async def f(pw):\n    async with pw.store.engine.connect() as c: ...\n")
    found = _sql_in(Module("patchwire.cli.x", Path("x.py"), ast.parse(source), False))
    assert len(found) == 3, found


def test_no_aiohttp_session_outside_the_http_package(modules: dict[str, Module]) -> None:
    offenders: dict[str, list[int]] = defaultdict(list)
    for name, module in modules.items():
        if name.startswith("patchwire.http"):
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and node.attr in (
                    "ClientSession", "TCPConnector") and ast.unparse(node.value) == "aiohttp":
                offenders[name].append(node.lineno)
            if isinstance(node, ast.ImportFrom) and node.module == "aiohttp" and any(
                    alias.name in ("ClientSession", "TCPConnector") for alias in node.names):
                offenders[name].append(node.lineno)
    assert dict(offenders) == {}
