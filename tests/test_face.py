"""``patchwire`` offers what an application embedding Patchwire needs (docs/embedding.md):
the facade and the runtime, the tool invoker and its result, tool export, the REST app,
flow engines, settings and every error — each name resolving to the real thing."""

from __future__ import annotations

from pathlib import Path

import pytest

import patchwire
import patchwire.errors
from patchwire.flows import FlowEngine, TemporalEngine
from tests.support.settings import local_settings

EMBEDDING = ("Patchwire", "Runtime", "ToolInvoker", "ToolResult", "export_tools",
             "create_app", "Settings", "load_settings", "Engine", "FlowEngine")


def test_every_error_of_the_error_tree_is_on_the_face() -> None:
    missing = sorted(set(patchwire.errors.__all__) - set(patchwire.__all__))

    assert missing == []
    for name in patchwire.errors.__all__:
        assert getattr(patchwire, name) is getattr(patchwire.errors, name)


def test_what_an_embedding_application_needs_resolves_from_the_face() -> None:
    from patchwire.runtime import Runtime
    from patchwire.server import create_app
    from patchwire.tools import ToolInvoker, ToolResult, export_tools

    assert set(EMBEDDING) <= set(patchwire.__all__)
    assert patchwire.Runtime is Runtime
    assert patchwire.create_app is create_app
    assert (patchwire.ToolInvoker, patchwire.ToolResult, patchwire.export_tools) == (
        ToolInvoker, ToolResult, export_tools)
    for name in patchwire.__all__:
        assert getattr(patchwire, name) is not None, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Patchwyre'"):
        _ = patchwire.Patchwyre  # type: ignore[attr-defined]


def test_the_faces_flow_engine_is_the_one_the_settings_ask_for(tmp_path: Path) -> None:
    embedded = patchwire.Patchwire(local_settings(tmp_path))
    temporal = patchwire.Patchwire(local_settings(tmp_path, engine="temporal"))
    odd = patchwire.Patchwire(local_settings(tmp_path, engine="quantum"))

    assert type(patchwire.FlowEngine(embedded, {})) is FlowEngine
    assert type(patchwire.FlowEngine(temporal, {})) is TemporalEngine
    with pytest.raises(patchwire.ConfigError, match="'embedded' or 'temporal', got 'quantum'"):
        patchwire.FlowEngine(odd, {})
