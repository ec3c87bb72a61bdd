"""Public WSDLs of real services (tests/conformance/wsdl/) import, and every action they
give passes every model provider's tool rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.wsdl import import_wsdl
from patchwire.tools import (
    ToolCatalog,
    anthropic_problems,
    export_tools,
    mcp_problems,
    openai_strict_problems,
)
from tests.support.conformance import conformance_path

CHECKERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "openai": openai_strict_problems,
    "openai-responses": openai_strict_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}

PUBLIC = {"dneonline-calculator.wsdl": 4, "vies-checkVatService.wsdl": 2,
          "noaa-ndfdXML.wsdl": 12}


@pytest.mark.parametrize(("file", "actions"), sorted(PUBLIC.items()))
def test_every_action_of_a_public_wsdl_passes_every_provider_checker(
        file: str, actions: int) -> None:
    result = import_wsdl(conformance_path("wsdl", file))
    assert len(result.connector.actions) == actions
    assert result.skipped == []
    catalog = ToolCatalog.build(ConnectorRegistry([result.connector]), every_action=True)
    assert len(catalog) == actions
    failures: list[str] = []
    for fmt, check in CHECKERS.items():
        for definition in export_tools(catalog, fmt):  # type: ignore[arg-type]
            name = definition.get("name") or definition["function"]["name"]
            failures += [f"{fmt} {name}: {p}" for p in check(definition)]
    assert failures == []
    strict = [d for d in export_tools(catalog, "openai") if d["function"]["strict"]]
    assert len(strict) == actions


def test_a_wsdl_with_soap_1_1_and_1_2_bindings_imports_each_operation_once() -> None:
    result = import_wsdl(conformance_path("wsdl", "dneonline-calculator.wsdl"))
    spec = result.connector
    assert spec.protocol == "soap" and spec.soap is not None
    assert (spec.soap.wsdl, spec.soap.version) == ("dneonline-calculator.wsdl", "1.1")
    assert spec.base_url == "http://www.dneonline.com"
    add = spec.actions["add"]
    assert add.soap is not None
    assert (add.soap.operation, add.soap.service, add.soap.port) == (
        "Add", "Calculator", "CalculatorSoap")
    assert add.description == "Adds two integers. This is a test WebService. ©DNE Online"
    assert add.input["required"] == ["intA", "intB"]
    assert add.input["properties"]["intA"] == {
        "type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert add.tool_spec is not None


def test_rpc_operations_take_their_message_parts_with_enumerations_and_patterns() -> None:
    spec = import_wsdl(conformance_path("wsdl", "noaa-ndfdXML.wsdl")).connector
    by_day = next(a for a in spec.actions.values()
                  if a.soap is not None and a.soap.operation == "NDFDgenByDay")
    props = by_day.input["properties"]
    assert props["format"] == {"type": "string", "enum": ["24 hourly", "12 hourly"]}
    assert props["startDate"] == {"type": "string", "format": "date"}
    assert props["latitude"] == {"type": "number"}
    assert by_day.description.startswith("Returns National Weather Service digital weather")
    subgrid = next(a for a in spec.actions.values()
                   if a.soap is not None and a.soap.operation == "NDFDgen")
    params = subgrid.input["properties"]["weatherParameters"]
    assert params["type"] == "object" and len(params["properties"]) > 50


def test_an_xsd_pattern_becomes_an_anchored_json_schema_pattern() -> None:
    spec = import_wsdl(conformance_path("wsdl", "vies-checkVatService.wsdl")).connector
    approx = spec.actions["check_vat_approx"].input
    assert approx["properties"]["traderCompanyType"]["pattern"] == r"^(?:[A-Z]{2}\-[1-9][0-9]?)$"
    assert approx["required"] == ["countryCode", "vatNumber"]
