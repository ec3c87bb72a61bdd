"""Keep secret values out of everything that leaves the call path as text."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REDACTED", "Redactor", "excerpt"]

REDACTED = "***"
#: secrets shorter than this are not searched for in text: they would mangle ordinary words
_MIN_SECRET_LEN = 4


class Redactor:
    """Replaces every known secret value (and its common encodings) with ``***``."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str]) -> None:
        from base64 import b64encode
        from urllib.parse import quote, quote_plus

        variants: set[str] = set()
        for s in secrets:
            if len(s) < _MIN_SECRET_LEN:
                continue
            variants.update({s, quote(s, safe=""), quote_plus(s)})
            variants.add(b64encode(s.encode()).decode().rstrip("="))
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def __bool__(self) -> bool:
        return self._pattern is not None


def excerpt(body: bytes, redact: Redactor, limit: int = 300) -> str:
    """A short, single-line, redacted excerpt of a response body for error messages."""
    text = body[: limit * 4].decode("utf-8", errors="replace")
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
