"""Swagger 2.0 import time: the largest real Swagger 2.0 document tried (OpenShift's API,
1,201 operations, 4.5 MB) against the OpenAPI 3.0 import of GitHub's REST API (~1,200
operations, 13 MB) in the same process, as a ratio, plus absolute seconds.

Both documents come from scripts/fetch-openapi-fixtures.sh (npm packages, into
.fixtures-cache/swagger2/ and .fixtures-cache/openapi/). Each is read from disk on every
round (parsing included, as `patchwire connector import` does); rounds alternate between
the two documents so a slow moment of a shared machine hits both. The median and the best
of ``--rounds`` are reported, with how long converting the Swagger document to OpenAPI 3.0
takes alone and how long the pagination inference adds. Real Swagger 2.0 documents of
thousands of operations are rarely published whole, so a generated one of ``--operations``
(5,000 by default: list/create/get/update over shared definitions, form bodies, array
query parameters, cursor pages) is imported too. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from patchwire.connectors import openapi as openapi_module
from patchwire.connectors._openapi_source import load_document
from patchwire.connectors._swagger2 import convert_swagger2
from patchwire.connectors.openapi import import_openapi

CACHE = Path(__file__).resolve().parents[1] / ".fixtures-cache"
SWAGGER = CACHE / "swagger2" / "openshift-swagger-2.0.json"
BASELINE = CACHE / "openapi" / "github-api.github.com-3.0.json"


def timed(path: Path | str) -> tuple[float, int]:
    started = time.perf_counter()
    result = import_openapi(path)
    return time.perf_counter() - started, len(result.connector.actions)


def generated(operations: int) -> str:
    """A Swagger 2.0 document of ``operations`` operations, as JSON text."""
    definitions = {
        "Tag": {"type": "object", "properties": {
            "name": {"type": "string"}, "parent": {"$ref": "#/definitions/Tag"}}},
        "Item": {"type": "object", "required": ["name"], "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"},
            "tags": {"type": "array", "items": {"$ref": "#/definitions/Tag"}}}},
        "Page": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": "#/definitions/Item"}},
            "next_cursor": {"type": "string"}}},
    }
    ok = {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Item"}}}
    paths: dict[str, object] = {}
    for i in range(operations // 4):
        paths[f"/things{i}"] = {
            "get": {"operationId": f"listThings{i}", "parameters": [
                {"in": "query", "name": "cursor", "type": "string"},
                {"in": "query", "name": "ids", "type": "array", "items": {"type": "string"},
                 "collectionFormat": "multi"}],
                "responses": {"200": {"description": "ok",
                                      "schema": {"$ref": "#/definitions/Page"}}}},
            "post": {"operationId": f"createThing{i}", "consumes": [
                "application/x-www-form-urlencoded"], "parameters": [
                {"in": "formData", "name": "name", "type": "string", "required": True}],
                "responses": ok},
        }
        paths[f"/things{i}/{{id}}"] = {
            "parameters": [{"in": "path", "name": "id", "type": "string", "required": True}],
            "get": {"operationId": f"getThing{i}", "responses": ok},
            "put": {"operationId": f"putThing{i}", "parameters": [
                {"in": "body", "name": "body", "required": True,
                 "schema": {"$ref": "#/definitions/Item"}}], "responses": ok},
        }
    return json.dumps({"swagger": "2.0", "info": {"title": "Generated", "version": "1"},
                       "host": "api.example.com", "basePath": "/v1", "schemes": ["https"],
                       "paths": paths, "definitions": definitions})


def main(rounds: int, operations: int) -> dict[str, object]:
    for path in (SWAGGER, BASELINE):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run scripts/fetch-openapi-fixtures.sh")
    swagger: list[float] = []
    baseline: list[float] = []
    actions = {}
    timed(SWAGGER)  # warm-up: imports, regex caches
    for _ in range(rounds):
        spent, actions["swagger"] = timed(SWAGGER)
        swagger.append(spent)
        spent, actions["baseline"] = timed(BASELINE)
        baseline.append(spent)
    data = load_document(SWAGGER).data
    conversion = []
    for _ in range(rounds):
        started = time.perf_counter()
        convert_swagger2(data, "bench")
        conversion.append(time.perf_counter() - started)
    # the same import with the pagination inference switched off: what it adds
    real = vars(openapi_module)["infer_pagination"]
    setattr(openapi_module, "infer_pagination", lambda *args: None)  # noqa: B010
    try:
        without = [timed(SWAGGER)[0] for _ in range(rounds)]
    finally:
        setattr(openapi_module, "infer_pagination", real)  # noqa: B010
    big = generated(operations)
    big_times = []
    for _ in range(max(3, rounds // 2)):
        spent, actions["generated"] = timed(big)
        big_times.append(spent)
    med_s, med_b = statistics.median(swagger), statistics.median(baseline)
    figures: dict[str, object] = {
        "swagger_document": SWAGGER.name,
        "swagger_operations": actions["swagger"],
        "swagger_bytes": SWAGGER.stat().st_size,
        "swagger_import_s_median": round(med_s, 3),
        "swagger_import_s_best": round(min(swagger), 3),
        "swagger_conversion_s_median": round(statistics.median(conversion), 3),
        "swagger_import_without_pagination_inference_s_median": round(
            statistics.median(without), 3),
        "baseline_document": BASELINE.name,
        "baseline_operations": actions["baseline"],
        "baseline_bytes": BASELINE.stat().st_size,
        "baseline_import_s_median": round(med_b, 3),
        "baseline_import_s_best": round(min(baseline), 3),
        "ratio_swagger_to_baseline_median": round(med_s / med_b, 3),
        "generated_operations": actions["generated"],
        "generated_bytes": len(big),
        "generated_import_s_median": round(statistics.median(big_times), 3),
        "rounds": rounds,
    }
    print(f"{SWAGGER.name}: {actions['swagger']} actions, median {med_s:.3f} s "
          f"(conversion {statistics.median(conversion):.3f} s)")
    print(f"{BASELINE.name}: {actions['baseline']} actions, median {med_b:.3f} s")
    print(f"ratio {med_s / med_b:.3f}")
    print(f"generated Swagger 2.0: {actions['generated']} actions, median "
          f"{statistics.median(big_times):.3f} s")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--operations", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(main(args.rounds, args.operations)))
