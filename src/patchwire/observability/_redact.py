"""Keep secret values out of everything that leaves the call path as text."""

from __future__ import annotations

import re
from base64 import b64encode
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import orjson

__all__ = ["REDACTED", "Redactor", "encodings", "excerpt"]

REDACTED = "***"
#: secrets (and encodings) shorter than this are not searched for in text: they would
#: mangle ordinary words
_MIN_SECRET_LEN = 4
#: up to this many texts to look for, one regex alternation (fast in C for a connection's
#: few secrets); beyond it, a lookup by first characters (see ``Redactor.__init__``)
_REGEX_MAX = 256


def encodings(secret: str) -> set[str]:
    """The forms in which a careless upstream echoes ``secret``: as is, percent-encoded,
    JSON-escaped, hex (both cases), UTF-16 (as a body decoded as UTF-8 shows it), and
    base64 / base64url, alone or inside a longer encoded value (``Basic
    base64(user:secret)``).

    Base64 of a secret inside a longer value depends on where it falls in the 3-byte
    groups: for each of the three alignments the characters made of the secret's bytes
    alone are searched for; they appear whatever surrounds it.
    """
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             orjson.dumps(secret).decode()[1:-1], raw.hex(), raw.hex().upper()}
    if secret.isascii():
        forms.add(secret.encode("utf-16-le").decode())
    alone = b64encode(raw).decode().rstrip("=")
    cores = [alone]
    for shift in range(3):
        encoded = b64encode(b"\0" * shift + raw).decode()
        first_group = -(-shift // 3)  # the first 3-byte group made of secret bytes only
        last_group = (shift + len(raw)) // 3
        cores.append(encoded[4 * first_group : 4 * last_group])
    for core in cores:
        forms.update((core, core.replace("+", "-").replace("/", "_")))
    return {f for f in forms if len(f) >= _MIN_SECRET_LEN}


class Redactor:
    """Replaces every known secret value, in each of its :func:`encodings`, with ``***``.

    The encodings are worked out once, when the redactor is built (once per connection),
    not each time text is redacted.
    """

    __slots__ = ("_by_prefix", "_pattern", "_variants", "longest")

    def __init__(self, secrets: Iterable[str]) -> None:
        variants: set[str] = set()
        for s in secrets:
            if len(s) >= _MIN_SECRET_LEN:
                variants |= encodings(s)
        ordered = sorted(variants, key=len, reverse=True)
        self._variants = tuple(ordered)
        #: the longest text redacted: how far a secret cut by a window can reach into it
        self.longest = len(ordered[0]) if ordered else 0
        self._pattern: re.Pattern[str] | None = None
        self._by_prefix: dict[str, tuple[str, ...]] | None = None
        if len(ordered) <= _REGEX_MAX:
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        else:
            # a regex alternation tries its branches at every position: with thousands of
            # secrets (the log redactor's book) one line took a second; a lookup of each
            # position's first characters costs the same however many there are
            by_prefix: dict[str, list[str]] = {}
            for variant in ordered:  # longest first, as the alternation would try them
                by_prefix.setdefault(variant[:_MIN_SECRET_LEN], []).append(variant)
            self._by_prefix = {k: tuple(v) for k, v in by_prefix.items()}

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            return self._pattern.sub(REDACTED, text)
        if self._by_prefix is None:
            return text
        return self._scan(text, self._by_prefix)

    @staticmethod
    def _scan(text: str, by_prefix: dict[str, tuple[str, ...]]) -> str:
        out: list[str] = []
        get = by_prefix.get
        i = last = 0
        end = len(text) - _MIN_SECRET_LEN
        while i <= end:
            candidates = get(text[i : i + _MIN_SECRET_LEN])
            if candidates is not None:
                for variant in candidates:
                    if text.startswith(variant, i):
                        out.append(text[last:i])
                        out.append(REDACTED)
                        i = last = i + len(variant)
                        break
                else:
                    i += 1
            else:
                i += 1
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def __bool__(self) -> bool:
        return bool(self._variants)

    def cut_partial(self, text: str) -> str:
        """``text`` without a trailing start of a secret: for text that was cut off from a
        longer one, where a secret running past the cut cannot be matched whole."""
        if not self._variants or not text:
            return text
        cut = 0
        for variant in self._variants:
            for k in range(min(len(variant) - 1, len(text)), cut, -1):
                if text.endswith(variant[:k]):
                    cut = k
                    break
        return text[: len(text) - cut] if cut else text


def excerpt(body: bytes, redact: Redactor, limit: int = 300) -> str:
    """A short, single-line, redacted excerpt of a response body for error messages.

    Secrets are redacted before anything is cut: a secret across the cut cannot leave a
    readable prefix behind.
    """
    window = limit * 4 + redact.longest
    text = redact(body[:window].decode("utf-8", errors="replace"))
    if len(body) > window:
        # a character cut in two decodes as U+FFFD: what precedes it may start a secret
        text = redact.cut_partial(text.rstrip("\ufffd"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
