from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The ``patchwire`` command with its home, store and connectors under ``tmp_path``."""
    return Cli(tmp_path)
