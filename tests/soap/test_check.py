"""A SOAP connector is checked when it loads (`patchwire connector check`): an unreadable or
hostile WSDL, an operation the WSDL lacks and a WS-Security template naming no setting are
reported with file and line, before any call."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patchwire.connectors import load_connector_file
from patchwire.errors import SpecError
from tests.support.conformance import conformance_path

CONNECTOR = """name: calc
protocol: soap
soap:
  wsdl: {wsdl}
  ws_security: {{username: "{{user}}", password: "{{password}}"}}
base_url: http://www.dneonline.com
settings:
  password: {{secret: true}}
actions:
  add:
    soap: {{operation: Add}}
  sum:
    soap: {{operation: Sum, port: CalculatorSoap}}
"""


def problems_of(directory: Path, wsdl: str) -> list[str]:
    path = directory / "calc.yaml"
    path.write_text(CONNECTOR.format(wsdl=wsdl), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_connector_file(path)
    return [str(p) for p in caught.value.problems]


def test_an_operation_the_wsdl_lacks_and_an_undeclared_setting_are_reported_with_lines(
        tmp_path: Path) -> None:
    shutil.copyfile(conformance_path("wsdl", "dneonline-calculator.wsdl"),
                    tmp_path / "calculator.wsdl")
    problems = problems_of(tmp_path, "calculator.wsdl")
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{tmp_path / 'calc.yaml'}:5 at soap.ws_security.username: "
                                  "{user} names no setting")
    assert problems[1].startswith(f"{tmp_path / 'calc.yaml'}:13 at actions.sum.soap.operation: "
                                  "calculator.wsdl has no SOAP operation 'Sum'")
    assert "Add, Divide, Multiply, Subtract" in problems[1]


def test_a_missing_or_hostile_wsdl_is_reported_at_its_reference(tmp_path: Path) -> None:
    (missing,) = [p for p in problems_of(tmp_path, "absent.wsdl") if "soap.wsdl" in p]
    assert ":4 at soap.wsdl: " in missing and "cannot read the WSDL" in missing
    (tmp_path / "evil.wsdl").write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><d/>',
        encoding="utf-8")
    (hostile,) = [p for p in problems_of(tmp_path, "evil.wsdl") if "soap.wsdl" in p]
    assert "evil.wsdl: refused: it declares a DTD" in hostile
