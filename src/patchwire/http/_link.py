"""The HTTP ``Link`` header (RFC 8288): parsing and finding a page's ``rel="next"``.

A hand-written scanner rather than a split on ``,`` and ``;``: target URIs and quoted
parameter values may contain both, and one header may carry several links. Malformed
link-values are skipped instead of failing the whole header, as RFC 8288 Appendix B's
parsing algorithm does: one odd link must not hide the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin

__all__ = ["ExtValue", "Link", "find_link", "parse_link_header"]

_WS = " \t"


@dataclass(frozen=True, slots=True)
class ExtValue:
    """An RFC 8187 extended parameter value (``title*=UTF-8'de'n%c3%a4chstes``)."""

    charset: str
    language: str
    value: str


@dataclass(frozen=True, slots=True)
class Link:
    """One link-value: its target as written, its relation types and other parameters.

    ``params`` keys are lower-cased (parameter names are case-insensitive); ``rel`` keeps
    the relation types as written — compare them with :meth:`has_rel`.
    """

    target: str
    rel: tuple[str, ...] = ()
    params: dict[str, str | ExtValue] = field(default_factory=dict)

    def has_rel(self, relation: str) -> bool:
        # RFC 8288 section 2.1: relation types compare case-insensitively.
        wanted = relation.casefold()
        return any(r.casefold() == wanted for r in self.rel)


def parse_link_header(values: str | Iterable[str]) -> list[Link]:
    """Every link in one ``Link`` field value or in several (one per header line)."""
    fields = [values] if isinstance(values, str) else list(values)
    links: list[Link] = []
    for value in fields:
        links.extend(_Scanner(value).links())
    return links


def find_link(values: str | Iterable[str], relation: str, base_url: str) -> str | None:
    """The absolute target of the first link with ``relation``, resolved against
    ``base_url`` (the request's URL); ``None`` when there is none."""
    for link in parse_link_header(values):
        if link.has_rel(relation):
            return urljoin(base_url, link.target)
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def links(self) -> list[Link]:
        out: list[Link] = []
        # Each pass consumes at least one character or ends, so this loop is bounded by
        # the header's length.
        while self.pos < len(self.text):
            start = self.pos
            link = self._link_value()
            if link is not None:
                out.append(link)
            self._skip_to_next_value()
            if self.pos == start:
                self.pos += 1
        return out

    # -- grammar -----------------------------------------------------------------------

    def _link_value(self) -> Link | None:
        self._skip_ws()
        if not self._eat("<"):
            return None
        end = self.text.find(">", self.pos)
        if end < 0:
            self.pos = len(self.text)
            return None
        target = self.text[self.pos : end].strip()
        self.pos = end + 1
        rel: tuple[str, ...] | None = None
        params: dict[str, str | ExtValue] = {}
        while True:
            self._skip_ws()
            if not self._eat(";"):
                break
            self._skip_ws()
            name = self._token().lower()
            if not name:
                continue
            self._skip_ws()
            raw: str | None = None
            if self._eat("="):
                self._skip_ws()
                raw = self._quoted() if self._peek() == '"' else self._token()
            value: str | ExtValue = raw or ""
            if name.endswith("*") and raw is not None:
                value = _ext_value(raw)
            if name == "rel":
                # Section 3.3: a second rel parameter is ignored.
                if rel is None:
                    rel = tuple(str(value).split())
                continue
            params.setdefault(name, value)
        return Link(target, rel or (), params)

    def _token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ';,="' + _WS:
            self.pos += 1
        return self.text[start : self.pos]

    def _quoted(self) -> str:
        self.pos += 1  # the opening quote
        chars: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\" and self.pos < len(self.text):
                chars.append(self.text[self.pos])
                self.pos += 1
            elif ch == '"':
                break
            else:
                chars.append(ch)
        return "".join(chars)

    def _skip_to_next_value(self) -> None:
        # After a link-value (or garbage) move past the next top-level comma, stepping over
        # quoted strings and <...> so their commas are not taken for separators.
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == ",":
                self.pos += 1
                return
            if ch == '"':
                self._quoted()
            elif ch == "<":
                end = self.text.find(">", self.pos)
                self.pos = len(self.text) if end < 0 else end + 1
            else:
                self.pos += 1

    def _skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def _eat(self, ch: str) -> bool:
        if self._peek() == ch:
            self.pos += 1
            return True
        return False

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""


def _ext_value(raw: str) -> str | ExtValue:
    parts = raw.split("'", 2)
    if len(parts) != 3:
        return raw
    charset, language, encoded = parts
    try:
        decoded = unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (LookupError, UnicodeDecodeError):
        return raw
    return ExtValue(charset, language, decoded)
