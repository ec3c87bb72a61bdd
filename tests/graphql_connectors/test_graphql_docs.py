"""The example in docs/connectors/graphql.md is a connector that loads, and its documents
are valid against GitHub's public schema when that fixture is installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patchwire.connectors import load_connector_file, load_connector_text
from tests.support.docs import fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".fixtures-cache" / "graphql" / "node_modules" / "@octokit" / "graphql-schema"


def _example() -> str:
    return next(b for b in fenced_blocks("connectors/graphql.md")
                if b.startswith("name: github_graphql"))


def test_the_documented_example_loads() -> None:
    text = _example().replace("  schema: github.schema.json", "")
    spec = load_connector_text(text)
    assert spec.actions["list_open_issues"].pagination is not None
    assert spec.actions["add_comment"].graphql is not None
    assert spec.actions["add_comment"].graphql.kind == "mutation"


def test_the_documented_example_is_valid_against_githubs_schema(tmp_path: Path) -> None:
    schema = GITHUB / "schema.json"
    if not schema.exists():
        pytest.skip("GitHub's schema is not installed; run scripts/ci-graphql.sh")
    shutil.copy(schema, tmp_path / "github.schema.json")
    path = tmp_path / "github.yaml"
    path.write_text(_example(), encoding="utf-8")
    spec = load_connector_file(path)
    assert len(spec.actions) == 3
