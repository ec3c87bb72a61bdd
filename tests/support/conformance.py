"""Other people's test vectors and example documents, copied into the repository so a clone
needs nothing beside it (origin, commit and licence of each file: its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

#: ``tests/conformance/``
CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"


def conformance_path(*parts: str) -> Path:
    """A file or folder under ``tests/conformance/``, e.g. ``conformance_path("rfc",
    "rfc-vectors.json")``. A missing one fails the test: the data ships with the repository,
    so its absence is a broken checkout, not a reason to skip."""
    path = CONFORMANCE.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"conformance data {path} is missing (see tests/conformance/SOURCES.md)")
    return path
