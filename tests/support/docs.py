"""The fenced examples of the repository's documentation, for tests that load or run them
as written (so a page's example cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DOCS", "fenced_blocks"]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def fenced_blocks(page: str, language: str = "yaml") -> list[str]:
    """The text of each ```` ```language ```` block of ``docs/<page>``, in order
    (``language`` ``""``: blocks of every language)."""
    fence = re.escape(language) if language else "[a-z]+"
    return re.findall(rf"^```{fence}\n(.*?)^```", (DOCS / page).read_text(encoding="utf-8"),
                      flags=re.MULTILINE | re.DOTALL)
