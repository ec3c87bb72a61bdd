"""Checking action input schemas: valid JSON Schema 2020-12 that the call path can compile.

jsonschema-rs does both: it checks the meta-schema in a few µs (pure-Python
``check_schema`` costs 0.6 to 8 ms a schema, which made loading a 1,200-action connector take
seconds) and it is the validator the call path uses, so a schema that passes here is one
the call path can build — including its regular expressions.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

__all__ = ["input_schema_problem"]

Path = tuple[str | int, ...]


def input_schema_problem(
    schema: Any, *, what: str = "an action's input schema"
) -> tuple[Path, str] | None:
    """(path inside the schema, message) of the first problem, or None when usable.

    ``what`` names the schema in the message (flows check their input schema here too).
    """
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        return tuple(exc.instance_path), f"not a valid JSON Schema: {_first_line(exc)}"
    except jsonschema_rs.ReferencingError as exc:
        return (), f"not a valid JSON Schema: {exc}"
    try:
        jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        return (), f"cannot be compiled: {str(exc).splitlines()[0]}"
    if isinstance(schema, dict) and schema.get("type", "object") != "object":
        return (), f"{what} must describe an object"
    return None


def _first_line(exc: jsonschema_rs.ValidationError) -> str:
    return str(exc.message).splitlines()[0]
