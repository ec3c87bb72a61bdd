from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The ``patchwire`` command run in ``tmp_path``: its ``flows/`` is the flow directory."""
    return Cli(tmp_path)


@pytest.fixture
async def cli_with_examples(cli: Cli) -> Cli:
    """``cli`` after `patchwire init --examples`: the shipped example flows (and syncs) are
    copied into its ``flows/`` (``syncs/``), as a user opts in to them."""
    result = await cli("init", "--examples")
    assert result.code == 0, result
    return cli
