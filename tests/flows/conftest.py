from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.clirun import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The ``patchwire`` command run in ``tmp_path``: its ``flows/`` is the flow directory."""
    return Cli(tmp_path)
