"""`patchwire connector import service.wsdl`: the connector written beside a copy of the
WSDL (and the schemas it includes), checked by `patchwire connector check`; XSD shapes
(choices, attributes, recursion, arrays, base64) become JSON Schema a model can fill."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from patchwire.connectors import load_connector_file
from patchwire.connectors.wsdl import WsdlImportError, import_wsdl, is_wsdl
from tests.support.cli import Cli
from tests.support.conformance import conformance_path

SHAPES = """<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:s" targetNamespace="urn:s">
<types><xs:schema targetNamespace="urn:s" elementFormDefault="qualified">
 <xs:include schemaLocation="common/types.xsd"/>
 <xs:complexType name="Node"><xs:sequence>
  <xs:element name="name" type="xs:string"/>
  <xs:element name="child" type="tns:Node" minOccurs="0" maxOccurs="unbounded"/>
 </xs:sequence><xs:attribute name="id" type="xs:int" use="required"/></xs:complexType>
 <xs:element name="Find"><xs:complexType><xs:sequence>
  <xs:choice><xs:element name="byId" type="xs:long"/><xs:element name="byName" type="xs:string"/></xs:choice>
  <xs:element name="tree" type="tns:Node" minOccurs="0"/>
  <xs:element name="tags" type="xs:string" minOccurs="0" maxOccurs="5"/>
  <xs:element name="photo" type="xs:base64Binary" minOccurs="0"/>
  <xs:element name="colour" type="tns:Colour"/>
  <xs:element name="size"><xs:simpleType><xs:restriction base="xs:int">
    <xs:minInclusive value="1"/><xs:maxInclusive value="10"/></xs:restriction></xs:simpleType></xs:element>
  <xs:any minOccurs="0" processContents="lax"/>
 </xs:sequence></xs:complexType></xs:element>
 <xs:element name="FindResponse"><xs:complexType><xs:sequence>
  <xs:element name="found" type="xs:boolean"/></xs:sequence></xs:complexType></xs:element>
</xs:schema></types>
<message name="In"><part name="parameters" element="tns:Find"/></message>
<message name="Out"><part name="parameters" element="tns:FindResponse"/></message>
<portType name="PT"><operation name="FindThings">
 <documentation>Finds things by id or by name.</documentation>
 <input message="tns:In"/><output message="tns:Out"/></operation></portType>
<binding name="B" type="tns:PT"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
 <operation name="FindThings"><soap:operation soapAction="urn:find"/><input><soap:body use="literal"/></input>
 <output><soap:body use="literal"/></output></operation></binding>
<service name="Thing Finder"><documentation>Finds things.</documentation>
 <port name="P" binding="tns:B"><soap:address location="https://things.example.com:8443/soap/finder"/></port></service>
</definitions>"""

TYPES = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:s">
 <xs:simpleType name="Colour"><xs:restriction base="xs:string">
  <xs:enumeration value="red"/><xs:enumeration value="green"/></xs:restriction></xs:simpleType>
</xs:schema>"""


def shapes_wsdl(directory: Path) -> Path:
    (directory / "common").mkdir(parents=True)
    (directory / "common" / "types.xsd").write_text(TYPES, encoding="utf-8")
    path = directory / "finder.wsdl"
    path.write_text(SHAPES, encoding="utf-8")
    return path


def test_xsd_shapes_become_json_schema_a_model_can_fill(tmp_path: Path) -> None:
    result = import_wsdl(shapes_wsdl(tmp_path))
    spec = result.connector
    assert spec.name == "thing_finder" and spec.description == "Finds things."
    assert spec.base_url == "https://things.example.com:8443"
    action = spec.actions["find_things"]
    assert action.description == "Finds things by id or by name."
    props = action.input["properties"]
    assert props["byId"]["type"] == "integer"
    assert "one of byName" in props["byId"]["description"]
    assert props["colour"] == {"type": "string", "enum": ["red", "green"]}
    assert props["size"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "maxItems": 5}
    assert props["photo"]["type"] == "string" and "base64" in props["photo"]["description"]
    tree = props["tree"]
    assert tree["required"] == ["name", "id"]
    child = tree["properties"]["child"]
    assert child["type"] == "array"
    assert "recursive" in child["items"]["description"]
    # the choice's alternatives and the optional ones are not required; xsd:any is left out
    assert action.input["required"] == ["colour", "size"]
    assert set(props) == {"byId", "byName", "tree", "tags", "photo", "colour", "size"}


@pytest.mark.slow  # a patchwire subprocess: ~5 s on a loaded machine
async def test_the_cli_writes_the_connector_beside_a_copy_of_the_wsdl_and_check_accepts_it(
        tmp_path: Path) -> None:
    cli = Cli(tmp_path / "work")
    source = shapes_wsdl(tmp_path / "download")
    target = cli.connectors / "finder.yaml"
    imported = await cli("connector", "import", str(source), "-o", str(target))
    assert imported.code == 0, imported
    assert "imported thing_finder: 1 action(s)" in imported.flat_err
    assert (cli.connectors / "finder.wsdl").read_text(encoding="utf-8") == SHAPES
    assert (cli.connectors / "common" / "types.xsd").is_file()
    data = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert data["protocol"] == "soap"
    assert data["soap"] == {"wsdl": "finder.wsdl"}
    assert data["actions"]["find_things"]["tool"] is True
    assert data["actions"]["find_things"]["soap"] == {
        "operation": "FindThings", "service": "Thing Finder", "port": "P"}
    spec = load_connector_file(target)  # what `patchwire connector check` does
    assert spec.soap is not None and spec.soap.wsdl == str(cli.connectors / "finder.wsdl")


@pytest.mark.slow  # a patchwire subprocess
async def test_the_cli_says_why_a_hostile_wsdl_is_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "work")
    wsdl = tmp_path / "evil.wsdl"
    wsdl.write_text(SHAPES.replace('<?xml version="1.0"?>',
                                   '<?xml version="1.0"?><!DOCTYPE definitions ['
                                   '<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
                    encoding="utf-8")
    refused = await cli("connector", "import", str(wsdl), "--stdout")
    assert refused.code != 0
    assert "evil.wsdl: refused: it declares a DTD" in refused.flat_err
    assert "Traceback" not in refused.err


def test_a_real_rpc_wsdl_imports_every_operation() -> None:
    # the largest public WSDL kept here; bench/wsdl_import.py measures how fast
    result = import_wsdl(conformance_path("wsdl", "noaa-ndfdXML.wsdl"))
    assert len(result.connector.actions) == 12


def test_a_wsdl_is_recognised_by_its_extension_or_its_root_and_urls_are_refused(
        tmp_path: Path) -> None:
    xml = tmp_path / "calculator.xml"
    xml.write_bytes(conformance_path("wsdl", "dneonline-calculator.wsdl").read_bytes())
    assert is_wsdl(xml) and is_wsdl("service.WSDL") and is_wsdl("https://x.example/svc?wsdl")
    assert not is_wsdl(conformance_path("openapi", "oai-v3.0-petstore.yaml"))
    with pytest.raises(WsdlImportError, match="save it first"):
        import_wsdl("https://x.example/svc?wsdl")
