"""The error answers in the OpenAPI document: every ``/api/`` operation declares RFC 9457
problem details (``application/problem+json``) as its ``default`` response, and its 422
as the same shape (FastAPI would declare its own ``HTTPValidationError``, which this API
never sends). Clients generated from the document then parse errors as they arrive, and
schemathesis checks error bodies against the schema too, not only successes.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

__all__ = ["PROBLEM_SCHEMA", "declare_problems"]

PROBLEM = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details. ``type`` ends in Patchwire's error code; "
                   "call errors add the call's context (action, connection, request_id, "
                   "run_id, retry_after...), validation errors a ``problems`` list.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "https://patchwire.dev/errors/{code}"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "problems": {
            "type": "array",
            "description": "what is wrong with the request, one entry per problem",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_REF = {"$ref": "#/components/schemas/Problem"}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def declare_problems(app: FastAPI, *, prefix: str = "/api/") -> None:
    """Make ``app.openapi()`` declare problem details on every operation under
    ``prefix`` (built once, on first use, like FastAPI's own)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for path, item in schema.get("paths", {}).items():
            if not path.startswith(prefix):
                continue
            for method in _METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                content = {PROBLEM: {"schema": _REF}}
                if "422" in responses:
                    responses["422"] = {"description": "The request is invalid",
                                        "content": content}
                responses.setdefault("default", {
                    "description": "An error, as RFC 9457 problem details",
                    "content": content})
        # FastAPI's validation schemas are referenced by nothing now
        for unused in ("HTTPValidationError", "ValidationError"):
            if not _referenced(schema, unused):
                schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _referenced(schema: dict[str, Any], name: str) -> bool:
    return f'"#/components/schemas/{name}"' in json.dumps(schema)
