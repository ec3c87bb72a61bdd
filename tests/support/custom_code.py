"""Custom code for the tests of ``code:`` actions and steps: the deployment's code
directory written by the test, and its modules forgotten by the process afterwards."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_code(root: Path, files: dict[str, str]) -> Path:
    """The deployment's code directory ``root / "code"``, holding ``files`` (path ->
    source, dedented)."""
    code = root / "code"
    for name, source in files.items():
        path = code / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return code


@contextmanager
def code_modules_forgotten(root: Path) -> Iterator[None]:
    """On exit, drop every module imported from under ``root`` from ``sys.modules``: the
    tests' code modules (``shopcode``, ``versions``...) must not outlive their test."""
    try:
        yield
    finally:
        prefix = str(root)
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and file.startswith(prefix):
                sys.modules.pop(name, None)
