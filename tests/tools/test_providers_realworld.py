"""Every action of real-world OpenAPI documents passes every provider's rule checker."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.openapi import import_openapi
from patchwire.tools import (
    StrictModeUnsupported,
    ToolCatalog,
    anthropic_problems,
    export_tools,
    mcp_problems,
    openai_strict_problems,
    openai_strict_schema,
)
from tests.support.conformance import realworld_documents

#: slow (every action of the real-world OpenAPI documents): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


CHECKERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "openai": openai_strict_problems,
    "openai-responses": openai_strict_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}


@pytest.mark.realworld
def test_every_real_world_action_passes_every_provider_checker() -> None:
    for path in realworld_documents():
        started = time.perf_counter()
        catalog = ToolCatalog.build(ConnectorRegistry([import_openapi(path).connector]),
                                    every_action=True)
        assert len(catalog) >= 150, path.name
        failures: list[str] = []
        for fmt, check in CHECKERS.items():
            definitions = export_tools(catalog, fmt)  # type: ignore[arg-type]
            assert len(definitions) == len(catalog)
            for definition in definitions:
                name = definition.get("name") or definition["function"]["name"]
                failures += [f"{fmt} {name}: {p}" for p in check(definition)]
        strict = sum(1 for d in export_tools(catalog, "openai") if d["function"]["strict"])
        print(f"\n{path.name}: {len(catalog)} actions x {len(CHECKERS)} formats checked, "
              f"{strict} strict for OpenAI, {len(catalog) - strict} non-strict, "
              f"{time.perf_counter() - started:.2f} s")
        assert failures == [], "\n".join(failures[:50])
        # Most actions must get a strict schema; a fallback is the exception.
        assert strict >= 0.9 * len(catalog), (path.name, strict, len(catalog))


@pytest.mark.realworld
def test_real_world_strict_fallbacks_name_a_reason_the_checker_agrees_with() -> None:
    for path in realworld_documents():
        catalog = ToolCatalog.build(ConnectorRegistry([import_openapi(path).connector]),
                                    every_action=True)
        for tool in catalog:
            try:
                openai_strict_schema(tool.input_schema)
            except StrictModeUnsupported as exc:
                assert exc.reasons and all(r.startswith("/") for r in exc.reasons), exc.reasons
                # Emitting the non-strict schema as if it were strict would be refused.
                loose = export_tools([tool], "openai")[0]
                assert loose["function"]["strict"] is False
                forced = {**loose, "function": {**loose["function"], "strict": True}}
                assert openai_strict_problems(forced), tool.name
