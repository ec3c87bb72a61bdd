"""Result shaping: what a model reads of an action's result.

A per-tool JSONata projection keeps the relevant fields; a size cap (8 KB by default) keeps
a long list from flooding the model's context. A cut result says so explicitly, with the
counts, so the model can narrow its request instead of believing it saw everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from patchwire.expressions import Expression

__all__ = ["ShapedResult", "shape_result"]


@dataclass(frozen=True, slots=True)
class ShapedResult:
    data: Any
    text: str
    truncated: bool = False


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _largest_fit(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k in [0, n] with ``fits(k)``, assuming fits is monotone (binary search)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _note(total: int, limit: int, shown: int | None = None, of: int | None = None,
          where: str = "") -> str:
    what = (f"showing the first {shown} of {of} items{where}" if shown is not None
            else "showing only its beginning")
    return (f"[truncated: the full result is {total} bytes, over this tool's {limit}-byte "
            f"limit; {what}. Ask for less (filters, a smaller page) to see the rest.]")


def shape_result(result: Any, *, projection: Expression | None = None,
                 max_bytes: int = 8192) -> ShapedResult:
    value = projection.evaluate(result) if projection is not None else result
    raw = _dumps(value)
    if len(raw) <= max_bytes:
        return ShapedResult(value, raw.decode())
    total = len(raw)
    if isinstance(value, list):
        items = value

        def fits(k: int) -> bool:
            return len(_dumps(items[:k])) + 2 + len(_note(total, max_bytes, k, len(items))) \
                <= max_bytes

        k = _largest_fit(len(items), fits)
        if k:
            data = items[:k]
            return ShapedResult(data, _dumps(data).decode() + "\n"
                                + _note(total, max_bytes, k, len(items)), True)
    elif isinstance(value, dict):
        lists = [(key, v) for key, v in value.items() if isinstance(v, list) and v]
        if lists:
            key, field = max(lists, key=lambda kv: len(_dumps(kv[1])))
            where = f" of {key!r}"
            mapping = value

            def fits_in(k: int) -> bool:
                trial = {**mapping, key: field[:k]}
                return (len(_dumps(trial)) + 2
                        + len(_note(total, max_bytes, k, len(field), where)) <= max_bytes)

            k = _largest_fit(len(field), fits_in)
            if fits_in(k):
                shaped = {**mapping, key: field[:k]}
                return ShapedResult(shaped, _dumps(shaped).decode() + "\n"
                                    + _note(total, max_bytes, k, len(field), where), True)
    note = _note(total, max_bytes)
    cut = raw[: max(0, max_bytes - len(note) - 1)].decode("utf-8", errors="ignore")
    return ShapedResult(None, cut + "\n" + note, True)
