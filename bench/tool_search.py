"""Tool search over the whole catalog: recall of a labelled set of requests, and latency.

Every file in ``bench/data/tool_queries/*.yaml`` is a YAML list of ``{q: request, a:
connector.action}``: what people ask a bot, and the catalog action that answers it. The
index is built over every action of every catalog connector (what ``patchwire tools
search --catalog`` searches) and each request is searched once for the figures, then
again in rounds for latency. A baseline ranking runs in the same process over the same
tools: the number of the request's words found in the tool's name, title and description
(the naive thing tool search replaces).

    python bench/tool_search.py             # figures; last line: one JSON object
    python bench/tool_search.py --misses    # also every request whose action is not 1st

Goals (issue 18): recall@5 ≥ 0.9, p95 search latency ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from patchwire.catalog import load_catalog
from patchwire.tools import Tool, ToolCatalog, ToolIndex

DATA = Path(__file__).resolve().parent / "data" / "tool_queries"
#: searches per request for the latency figures (the first round warms caches)
ROUNDS = 5
_WORD = re.compile(r"[a-z0-9]+")


def load_queries() -> list[tuple[str, str, str]]:
    """(file, request, expected connector.action) of every labelled file."""
    out: list[tuple[str, str, str]] = []
    for path in sorted(DATA.glob("*.yaml")):
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("q"), str) \
                    and isinstance(item.get("a"), str):
                out.append((path.name, item["q"], item["a"]))
    return out


def baseline(tools: Sequence[Tool]) -> Callable[[str, int], list[str]]:
    """Word overlap: how many of the request's words the tool's text holds."""
    texts = [(t.target, set(_WORD.findall(
        f"{t.name} {t.title} {t.description}".replace("_", " ").lower()))) for t in tools]

    def rank(query: str, limit: int) -> list[str]:
        words = set(_WORD.findall(query.lower()))
        scored = sorted(((len(words & known), target) for target, known in texts),
                        key=lambda p: (-p[0], p[1]))
        return [target for score, target in scored[:limit] if score > 0]

    return rank


def recall(ranked: list[list[str]], expected: list[str]) -> tuple[float, float]:
    n = len(expected) or 1
    at1 = sum(1 for r, a in zip(ranked, expected, strict=True) if r[:1] == [a]) / n
    at5 = sum(1 for r, a in zip(ranked, expected, strict=True) if a in r[:5]) / n
    return round(at1, 4), round(at5, 4)


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 (0 for no values)."""
    if len(values) < 20:
        return (statistics.median(values) if values else 0.0), max(values, default=0.0)
    return statistics.median(values), statistics.quantiles(values, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true",
                        help="print every request whose action is not ranked first")
    args = parser.parse_args()

    registry = load_catalog().registry()
    catalog = ToolCatalog.build(registry, every_action=True)
    started = time.perf_counter()
    index = ToolIndex.build(catalog, connectors=registry)
    build_ms = (time.perf_counter() - started) * 1000
    targets = {t.target for t in catalog}

    labelled = load_queries()
    unknown = [(f, q, a) for f, q, a in labelled if a not in targets]
    for f, q, a in unknown:
        print(f"{f}: {a} is no catalog action (request {q!r}); left out", file=sys.stderr)
    queries = [(f, q, a) for f, q, a in labelled if a in targets]
    expected = [a for _, _, a in queries]

    ranked = [[h.tool.target for h in index.search(q, limit=5)] for _, q, _ in queries]
    rank_baseline = baseline(list(catalog))
    ranked_base = [rank_baseline(q, 5) for _, q, _ in queries]

    # wall-clock time, and the thread's CPU time (on a shared machine the wall clock's
    # tail is mostly other processes' turns)
    latencies: list[float] = []
    cpu: list[float] = []
    for round_ in range(ROUNDS):
        for _, q, _ in queries:
            t0, c0 = time.perf_counter(), time.thread_time()
            index.search(q, limit=5)
            if round_:
                latencies.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)

    at1, at5 = recall(ranked, expected)
    base1, base5 = recall(ranked_base, expected)
    if args.misses:
        for (f, q, a), r in zip(queries, ranked, strict=True):
            if r[:1] != [a]:
                where = r.index(a) + 1 if a in r else "-"
                print(f"{f}: {q!r} → {a} (rank {where}); got {', '.join(r[:3])}",
                      file=sys.stderr)
    per_file: dict[str, list[int]] = {}
    for (f, _, a), r in zip(queries, ranked, strict=True):
        hit_miss = per_file.setdefault(f, [0, 0])
        hit_miss[0 if a in r[:5] else 1] += 1
    for f, (hits, misses) in sorted(per_file.items()):
        print(f"  {f:<28} {hits + misses:>4} requests  recall@5 "
              f"{hits / (hits + misses):.2f}", file=sys.stderr)

    p50, p95 = percentiles(latencies)
    cpu50, cpu95 = percentiles(cpu)
    figures = {
        "queries": len(queries),
        "queries_left_out": len(unknown),
        "tools": len(index),
        "connectors": len(registry),
        "recall_at_1": at1,
        "recall_at_5": at5,
        "baseline_recall_at_1": base1,
        "baseline_recall_at_5": base5,
        "search_p50_ms": round(p50, 3),
        "search_p95_ms": round(p95, 3),
        "search_cpu_p50_ms": round(cpu50, 3),
        "search_cpu_p95_ms": round(cpu95, 3),
        "index_build_ms": round(build_ms, 1),
    }
    print(f"{len(queries)} requests over {len(index)} tools of {len(registry)} connectors: "
          f"recall@1 {at1:.3f}, recall@5 {at5:.3f} (baseline word overlap: {base1:.3f}, "
          f"{base5:.3f}); search p50 {p50:.2f} ms, p95 {p95:.2f} ms (CPU p50 {cpu50:.2f} "
          f"ms, p95 {cpu95:.2f} ms)", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
