"""Connectors: declarative descriptions of external APIs (YAML or imported OpenAPI)."""

from patchwire.connectors._hosts import host_setting_problem, setting_value_problems
from patchwire.connectors._loader import load_connector_file, load_connector_text
from patchwire.connectors._registry import ConnectorRegistry
from patchwire.connectors.spec import (
    ActionSpec,
    ConnectorSpec,
    ErrorRule,
    Pagination,
    RateLimit,
    RequestTemplate,
    RetryPolicy,
    SettingSpec,
    Timeouts,
)

from ._loader import dedupe_problems, pydantic_problems
from ._schemas import input_schema_problem
from ._template import MISSING, Template, compile_template, lookup, placeholders_in
from ._yaml import LineMap, format_path, load_yaml_with_lines

__all__ = [
    "MISSING",
    "ActionSpec",
    "ConnectorRegistry",
    "ConnectorSpec",
    "ErrorRule",
    "LineMap",
    "Pagination",
    "RateLimit",
    "RequestTemplate",
    "RetryPolicy",
    "SettingSpec",
    "Template",
    "Timeouts",
    "compile_template",
    "connector_json_schema",
    "dedupe_problems",
    "format_path",
    "host_setting_problem",
    "input_schema_problem",
    "load_connector_file",
    "load_connector_text",
    "load_yaml_with_lines",
    "lookup",
    "placeholders_in",
    "pydantic_problems",
    "setting_value_problems",
]


def connector_json_schema() -> dict[str, object]:
    """JSON Schema of the connector format (for editors and `patchwire connector schema`)."""
    schema = ConnectorSpec.model_json_schema(by_alias=True)
    # `tool: true` / `tool: false` are shorthands the model converts before validating
    tool = schema["$defs"]["ActionSpec"]["properties"]["tool"]
    tool["anyOf"].insert(0, {"type": "boolean"})
    # ...and so are `"100/minute per end_user"` and `cost: github`
    from .spec import _COST_PRESETS, _RATE_RE

    defs = schema["$defs"]
    defs["RateLimit"] = {"anyOf": [
        {"type": "string", "pattern": _RATE_RE.pattern,
         "description": "'100/minute', '10/second per connector', '100/minute per end_user'"},
        defs["RateLimit"]]}
    defs["GraphQLCost"] = {"anyOf": [
        {"type": "string", "enum": sorted(_COST_PRESETS), "description": "a ready-made rule"},
        defs["GraphQLCost"]]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Patchwire connector"
    return schema
