"""Other people's test vectors and example documents, copied into the repository so a clone
needs nothing beside it (origin, commit and licence of each file: its SOURCES.md), and the
real-world OpenAPI documents fetched for the import tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


#: real-world OpenAPI documents (scripts/fetch-openapi-fixtures.sh puts them there from the
#: npm registry; they are not in git)
REALWORLD = Path(__file__).resolve().parents[2] / ".fixtures-cache" / "openapi"


def realworld_documents() -> list[Path]:
    """The real-world OpenAPI documents; without them a skip locally and a failure under
    ``CI``, so the pipeline cannot silently stop reading them."""
    documents = sorted(p for p in REALWORLD.iterdir() if p.suffix in (".json", ".yaml", ".yml")
                       ) if REALWORLD.is_dir() else []
    if not documents:
        message = (f"no documents in {REALWORLD}: run scripts/fetch-openapi-fixtures.sh "
                   "(needs npm and the npm registry)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return documents
