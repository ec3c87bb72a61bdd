"""GraphQL schema import time: GitHub's public schema (npm @octokit/graphql-schema, ~1,700
types) imported into a connector, from its introspection JSON and from its SDL, against
graphql-core building the same schema alone in the same process (the floor any importer
on graphql-core starts from), as ratios, plus absolute seconds.

The schema comes from scripts/ci-graphql.sh (into .fixtures-cache/graphql/). Each round
reads the file from disk, as `patchwire connector import` does; rounds alternate between
the import and the baseline so a slow moment of a shared machine hits both. Ends with one
JSON line.

    python bench/graphql_import.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from graphql import build_client_schema, build_schema

from patchwire.connectors.graphql import import_graphql

SCHEMA = (Path(__file__).resolve().parents[1] / ".fixtures-cache" / "graphql" /
          "node_modules" / "@octokit" / "graphql-schema")


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _build_only(path: Path) -> object:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        return build_client_schema(data.get("data", data))
    return build_schema(text, assume_valid=True)


def measure(path: Path, rounds: int) -> dict[str, object]:
    actions = len(import_graphql(path, name="github").connector.actions)  # warm-up
    imports: list[float] = []
    builds: list[float] = []
    for _ in range(rounds):
        imports.append(_timed(lambda: import_graphql(path, name="github")))
        builds.append(_timed(lambda: _build_only(path)))
    med_i, med_b = statistics.median(imports), statistics.median(builds)
    print(f"{path.name}: {actions} actions, import median {med_i:.3f} s (best "
          f"{min(imports):.3f}), graphql-core's schema build alone {med_b:.3f} s")
    return {"file": path.name, "bytes": path.stat().st_size, "actions": actions,
            "import_s_median": round(med_i, 3), "import_s_best": round(min(imports), 3),
            "schema_build_s_median": round(med_b, 3),
            "ratio_import_to_schema_build": round(med_i / med_b, 3)}


def main(rounds: int) -> dict[str, object]:
    files = [SCHEMA / "schema.json", SCHEMA / "schema.graphql"]
    for path in files:
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run scripts/ci-graphql.sh")
    return {"benchmark": "graphql_import", "schema": "@octokit/graphql-schema",
            "rounds": rounds, "results": [measure(path, rounds) for path in files]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(main(args.rounds)))
