"""Tool search over the whole catalog: recall of a labelled set of requests, and latency.

Every file in ``bench/data/tool_queries/*.yaml`` is a YAML list of ``{q: request, a:
connector.action}``: what people ask a bot, and the catalog action that answers it. The
index is built over every action of every catalog connector (what ``patchwire tools
search --catalog`` searches) and each request is searched once for the figures, then
again in rounds for latency. A baseline ranking runs in the same process over the same
tools: the number of the request's words found in the tool's name, title and description
(the naive thing tool search replaces).

    python bench/tool_search.py                  # figures; last line: one JSON object
    python bench/tool_search.py --misses         # also the tuning half's misses
    python bench/tool_search.py --misses --all   # every miss, held-out half too

The labelled set is split in two by a stable hash of each request's text: a tuning half,
whose misses may be looked at to improve the ranking, and a held-out half, whose misses
are not listed unless asked (``--all``), so the held-out figures say how the ranking does
on requests it was not tuned on. Both halves and the whole are reported. A third split,
``bench/data/tool_queries_fresh/*.yaml`` (same format, written apart from the ranking by
someone who never saw its misses), is read when present and reported as ``fresh``: its
own figures only, never in the headline, and its requests and misses are never printed,
not even with ``--all``.

The headline searches the whole catalog (110 connectors); a real deployment enables a
handful. So each request is also searched as a *deployment*: an index over the tools of
the labelled connector and :data:`DEPLOYMENT_OTHERS` other connectors, drawn with a fixed
seed from the request's text, those sharing a catalog category with the labelled
connector first (a shop's deployment has several shop and payment connectors: the
figure stays hard). Reported as ``deployment`` recall@1/@5 per split.

Many requests fit several vendors equally ("cancel my subscription" with five billing
connectors in the catalog, none named); a deployment enables the connectors it uses and
its search ranks among those only. So for requests that name no connector the bench also
reports recall@5 counting an *equivalent action*: one with the labelled action's exact
name on a connector sharing one of the labelled connector's catalog categories
(``stripe.cancel_subscription`` ~ ``paddle.cancel_subscription``). The equivalence comes
from the catalog's data (action names, categories), not from labels per request.

Goals (issue 18): recall@5 ≥ 0.9, p95 search latency ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from patchwire.catalog import load_catalog
from patchwire.connectors import ConnectorSpec
from patchwire.tools import Tool, ToolCatalog, ToolIndex

DATA = Path(__file__).resolve().parent / "data" / "tool_queries"
#: the fresh split: never looked at while tuning, its misses never printed
FRESH = Path(__file__).resolve().parent / "data" / "tool_queries_fresh"
#: connectors a deployment enables besides the labelled one
DEPLOYMENT_OTHERS = 9
#: the deployments' draw (with each request's text): fixed, so runs compare
DEPLOYMENT_SEED = 18
#: searches per request for the latency figures (the first round warms caches)
ROUNDS = 5
_WORD = re.compile(r"[a-z0-9]+")


def load_queries(folder: Path = DATA) -> list[tuple[str, str, str]]:
    """(file, request, expected connector.action) of every labelled file in ``folder``
    (none when it does not exist)."""
    out: list[tuple[str, str, str]] = []
    for path in sorted(folder.glob("*.yaml")):
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


def half(query: str) -> str:
    """``tune`` or ``held_out``: a stable hash of the request's text, so a request stays
    in its half whatever is added around it."""
    return "tune" if hashlib.sha256(query.encode("utf-8")).digest()[0] < 128 else "held_out"


def equivalent(found: str, expected: str, categories: dict[str, set[str]]) -> bool:
    """``found`` is ``expected`` or the same action name on a connector sharing one of the
    expected connector's catalog categories."""
    if found == expected:
        return True
    f_conn, _, f_action = found.partition(".")
    e_conn, _, e_action = expected.partition(".")
    return f_action == e_action and bool(categories.get(f_conn, set())
                                         & categories.get(e_conn, set()))


def deployment(query: str, expected_connector: str, categories: dict[str, set[str]],
               connectors: Sequence[str]) -> list[str]:
    """The connectors a deployment answering ``query`` enables: the labelled one and
    :data:`DEPLOYMENT_OTHERS` others, those sharing one of its categories first, drawn
    with a seed fixed by the request's text (the same deployment on every run)."""
    seed = int.from_bytes(hashlib.sha256(
        f"{DEPLOYMENT_SEED}:{query}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    mine = categories.get(expected_connector, set())
    others = [c for c in connectors if c != expected_connector]
    near = [c for c in others if categories.get(c, set()) & mine]
    far = [c for c in others if not categories.get(c, set()) & mine]
    rng.shuffle(near)
    rng.shuffle(far)
    return [expected_connector, *(near + far)[:DEPLOYMENT_OTHERS]]


def deployment_ranked(queries: Sequence[tuple[str, str, str]], tools: Sequence[Tool],
                      specs: Sequence[ConnectorSpec], categories: dict[str, set[str]]
                      ) -> list[list[str]]:
    """Each request's top five in its own deployment's index (built over that
    deployment's tools only, as a deployment builds it)."""
    names = sorted(spec.name for spec in specs)
    by_connector: dict[str, list[Tool]] = {}
    for tool in tools:
        by_connector.setdefault(tool.connector, []).append(tool)
    out: list[list[str]] = []
    for _, q, a in queries:
        enabled = deployment(q, a.partition(".")[0], categories, names)
        index = ToolIndex.build([t for c in enabled for t in by_connector.get(c, [])],
                                connectors=[s for s in specs if s.name in enabled])
        out.append([h.tool.target for h in index.search(q, limit=5)])
    return out


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 (0 for no values)."""
    if len(values) < 20:
        return (statistics.median(values) if values else 0.0), max(values, default=0.0)
    return statistics.median(values), statistics.quantiles(values, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true",
                        help="print the tuning half's requests whose action is not first")
    parser.add_argument("--all", action="store_true",
                        help="with --misses: the held-out half's misses too")
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
    # the fresh split: counted, never printed (its requests are not to be tuned on)
    fresh_labelled = load_queries(FRESH)
    fresh = [(f, q, a) for f, q, a in fresh_labelled if a in targets]
    if len(fresh) < len(fresh_labelled):
        print(f"fresh: {len(fresh_labelled) - len(fresh)} requests name no catalog action; "
              "left out", file=sys.stderr)

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
    categories = {spec.name: {str(c) for c in spec.catalog.categories}
                  for spec in registry if spec.catalog is not None}
    specs = list(registry)
    deployed = deployment_ranked(queries, list(catalog), specs, categories)
    dep1, dep5 = recall(deployed, expected)
    halves = [half(q) for _, q, _ in queries]
    split: dict[str, dict[str, float]] = {}
    for name in ("tune", "held_out"):
        picked = [i for i, h in enumerate(halves) if h == name]
        h1, h5 = recall([ranked[i] for i in picked], [expected[i] for i in picked])
        d1, d5 = recall([deployed[i] for i in picked], [expected[i] for i in picked])
        split[name] = {"queries": len(picked), "recall_at_1": h1, "recall_at_5": h5,
                       "deployment_recall_at_1": d1, "deployment_recall_at_5": d5}
    if fresh:
        fresh_expected = [a for _, _, a in fresh]
        f1, f5 = recall([[h.tool.target for h in index.search(q, limit=5)]
                         for _, q, _ in fresh], fresh_expected)
        fd1, fd5 = recall(deployment_ranked(fresh, list(catalog), specs, categories),
                          fresh_expected)
        # the word-overlap baseline on it too: how hard the fresh requests are
        fb1, fb5 = recall([rank_baseline(q, 5) for _, q, _ in fresh], fresh_expected)
        split["fresh"] = {"queries": len(fresh), "recall_at_1": f1, "recall_at_5": f5,
                          "deployment_recall_at_1": fd1, "deployment_recall_at_5": fd5,
                          "baseline_recall_at_1": fb1, "baseline_recall_at_5": fb5}
    # requests naming no connector: would an equivalent action of the same kind of
    # vendor do (what a deployment that enabled only one of them would find)?
    unnamed = [i for i, (_, q, _) in enumerate(queries) if not index.mentioned_connectors(q)]
    unnamed_exact = sum(1 for i in unnamed if expected[i] in ranked[i][:5])
    unnamed_equivalent = sum(1 for i in unnamed if any(
        equivalent(found, expected[i], categories) for found in ranked[i][:5]))
    with_equivalent = (sum(1 for i in range(len(queries)) if expected[i] in ranked[i][:5])
                       - unnamed_exact + unnamed_equivalent) / (len(queries) or 1)
    if args.misses:
        for (f, q, a), r, h in zip(queries, ranked, halves, strict=True):
            if r[:1] != [a] and (h == "tune" or args.all):
                where = r.index(a) + 1 if a in r else "-"
                named = "named" if index.mentioned_connectors(q) else "unnamed"
                print(f"{h} {named} {f}: {q!r} → {a} (rank {where}); got {', '.join(r[:3])}",
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
        "deployment_connectors": DEPLOYMENT_OTHERS + 1,
        "deployment_recall_at_1": dep1,
        "deployment_recall_at_5": dep5,
        "tune": split["tune"],
        "held_out": split["held_out"],
        "fresh": split.get("fresh"),
        "unnamed_vendor_queries": len(unnamed),
        "unnamed_vendor_recall_at_5": round(unnamed_exact / (len(unnamed) or 1), 4),
        "unnamed_vendor_recall_at_5_equivalent": round(
            unnamed_equivalent / (len(unnamed) or 1), 4),
        "recall_at_5_equivalent": round(with_equivalent, 4),
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
    print(f"  deployments of {DEPLOYMENT_OTHERS + 1} connectors: recall@1 {dep1:.3f}, "
          f"recall@5 {dep5:.3f}", file=sys.stderr)
    for name, figs in split.items():
        print(f"  {name:<9} {figs['queries']:>4} requests: recall@1 {figs['recall_at_1']:.3f}, "
              f"recall@5 {figs['recall_at_5']:.3f}; deployment recall@1 "
              f"{figs['deployment_recall_at_1']:.3f}, recall@5 "
              f"{figs['deployment_recall_at_5']:.3f}", file=sys.stderr)
    print(f"  {len(unnamed)} requests name no connector: recall@5 "
          f"{unnamed_exact / (len(unnamed) or 1):.3f}, counting an equivalent action "
          f"{unnamed_equivalent / (len(unnamed) or 1):.3f}; all requests counting "
          f"equivalents {with_equivalent:.3f}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
