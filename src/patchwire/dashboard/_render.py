"""Rendering the dashboard: its templates with their filters, inline SVG charts, and the
page responses every route module answers with."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from patchwire.errors import PatchwireError
from patchwire.tools import redact_arguments

__all__ = ["ASSETS", "STATIC", "Chart", "Pages", "is_partial", "line_chart", "templates"]

# -- rendering: templates, filters, inline SVG charts ----------------------------------

TEMPLATES = Path(__file__).parent / "templates"
#: JSON longer than this is cut on a page (a step output can be megabytes)
MAX_JSON_CHARS = 20_000


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def fmt_time(value: Any) -> str:
    """Epoch seconds or a datetime as ``2025-01-02 03:04:05`` (UTC)."""
    moment = _moment(value)
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_iso(value: Any) -> str:
    moment = _moment(value)
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def fmt_ago(value: Any, now: float | None = None) -> str:
    """``3 s ago``, ``in 5 min``: relative to now."""
    moment = _moment(value)
    if moment is None:
        return "—"
    delta = moment.timestamp() - (datetime.now(UTC).timestamp() if now is None else now)
    text = fmt_duration(abs(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def fmt_ms(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def fmt_pct(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def fmt_num(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def to_json(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    """Redacted, pretty JSON for a page (escaped by the template like any text)."""
    text = orjson.dumps(redact_arguments(value), default=str,
                        option=orjson.OPT_INDENT_2).decode()
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit:,} more characters not shown)"
    return text


def short(value: Any, limit: int = 120) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, iso=fmt_iso, ago=fmt_ago, duration=fmt_duration,
                       ms=fmt_ms, pct=fmt_pct, num=fmt_num, json=to_json, short=short)
    return env


@dataclass(frozen=True)
class Chart:
    """A line chart as SVG coordinates (numbers only, so nothing to escape)."""

    title: str
    width: int
    height: int
    lines: list[tuple[str, str]]  # (css class, "x,y x,y ...") per series, gaps split
    dots: list[tuple[str, float, float, str]]  # (css class, x, y, tooltip)
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    legend: list[tuple[str, str]]
    empty: bool


def line_chart(title: str, times: Sequence[datetime],
               series: Sequence[tuple[str, str, Sequence[float | None]]], *,
               fmt: str = "num", y_max: float | None = None, width: int = 420,
               height: int = 150) -> Chart:
    """``series``: (legend, css class, values per time) — None is a gap (no calls)."""
    left, right, top, bottom = 46, 8, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, _, vs in series for v in vs if v is not None]
    top_value = y_max if y_max is not None else max(values, default=0.0)
    top_value = top_value if top_value > 0 else 1.0
    n = max(1, len(times) - 1)

    def x(i: int) -> float:
        return round(left + plot_w * i / n, 1)

    def y(v: float) -> float:
        return round(top + plot_h * (1 - min(v, top_value) / top_value), 1)

    formats: dict[str, Callable[[float], str]] = {
        "pct": fmt_pct, "ms": fmt_ms, "num0": lambda v: fmt_num(v, 0)}
    label: Callable[[float], str] = formats.get(fmt, fmt_num)
    lines: list[tuple[str, str]] = []
    dots: list[tuple[str, float, float, str]] = []
    for legend, css, vs in series:
        run: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if len(run) > 1:
                    lines.append((css, " ".join(run)))
                run = []
                continue
            run.append(f"{x(i)},{y(v)}")
            dots.append((css, x(i), y(v), f"{legend} {fmt_time(times[i])}: {label(v)}"))
        if len(run) > 1:
            lines.append((css, " ".join(run)))
    y_labels = [(y(top_value * f), label(top_value * f)) for f in (0.0, 0.5, 1.0)]
    picks = sorted({0, len(times) // 2, len(times) - 1}) if times else []
    x_labels = [(x(i), times[i].astimezone(UTC).strftime("%m-%d %H:%M")) for i in picks]
    return Chart(title, width, height, lines, dots, y_labels, x_labels,
                 [(legend, css) for legend, css, _ in series], empty=not values)


STATIC = Path(__file__).parent / "static"
#: where the CSS and JS are served
ASSETS = "/assets"


def is_partial(request: Request) -> bool:
    """The page's script asks for a fragment to swap in (``X-Partial: 1``)."""
    return request.headers.get("x-partial") == "1"


class Pages:
    """The dashboard's templates, rendered as responses."""

    def __init__(self) -> None:
        self.env = templates()

    def page(self, template: str, request: Request, code: int = 200, /, **context: Any
             ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request, assets=ASSETS, path=request.url.path, now=time.time(),
            **context)
        return HTMLResponse(html, status_code=code)

    def not_found(self, request: Request, exc: PatchwireError) -> HTMLResponse:
        return self.page("message.html", request, 404, title="Not found", message=str(exc))
