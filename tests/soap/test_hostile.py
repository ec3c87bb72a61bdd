"""The attackers a SOAP connector meets: a hostile WSDL (XXE, entity bombs, imports from
the network or from outside its directory), a hostile upstream answer (XXE, entity bomb,
depth bomb, huge body), and prompt-injected arguments. Each is refused with a typed error
saying why, or made harmless, and the upstream side is a real server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.wsdl import WsdlImportError, import_wsdl
from patchwire.errors import (
    CallError,
    ResponseMappingError,
    UpstreamError,
    UpstreamValidationError,
)
from tests.support.conformance import conformance_path
from tests.support.hostile import memory_peak
from tests.support.leaks import leaks_in, new_canary
from tests.support.servers import serve
from tests.support.settings import local_settings

ENVELOPE = ('<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            "<soap:Body>{}</soap:Body></soap:Envelope>")
ADD_RESULT = '<AddResponse xmlns="http://tempuri.org/"><AddResult>{}</AddResult></AddResponse>'
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                    for i in range(1, 10))
          + "]>")


def hostile_wsdl(directory: Path, prolog: str = "", imports: str = "",
                 name: str = "svc.wsdl") -> Path:
    """A small valid WSDL with ``prolog`` before its root and ``imports`` in its schema."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"""<?xml version="1.0"?>{prolog}
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:h" targetNamespace="urn:h">
<types><xs:schema targetNamespace="urn:h" elementFormDefault="qualified">{imports}
 <xs:element name="Ping"><xs:complexType><xs:sequence>
  <xs:element name="text" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
 <xs:element name="PingResponse"><xs:complexType><xs:sequence>
  <xs:element name="text" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
</xs:schema></types>
<message name="In"><part name="parameters" element="tns:Ping"/></message>
<message name="Out"><part name="parameters" element="tns:PingResponse"/></message>
<portType name="PT"><operation name="Ping"><input message="tns:In"/><output message="tns:Out"/></operation></portType>
<binding name="B" type="tns:PT"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
 <operation name="Ping"><soap:operation soapAction="urn:ping"/><input><soap:body use="literal"/></input>
 <output><soap:body use="literal"/></output></operation></binding>
<service name="Svc"><port name="P" binding="tns:B"><soap:address location="http://example.com/ping"/></port></service>
</definitions>""", encoding="utf-8")
    return path


# -- hostile WSDLs ------------------------------------------------------------------------------


def test_a_wsdl_with_an_external_entity_is_refused_without_reading_the_file(
        tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    wsdl = hostile_wsdl(tmp_path / "w", f'<!DOCTYPE definitions [<!ENTITY xxe SYSTEM '
                                        f'"file://{secret}">]>')
    with pytest.raises(WsdlImportError, match="declares a DTD") as caught:
        import_wsdl(wsdl)
    assert "top secret" not in str(caught.value)


def test_a_wsdl_holding_an_entity_bomb_is_refused_at_once(tmp_path: Path) -> None:
    wsdl = hostile_wsdl(tmp_path, LAUGHS.removeprefix('<?xml version="1.0"?>')
                        .replace("lolz", "definitions"))
    started = time.perf_counter()
    with memory_peak() as peak, pytest.raises(WsdlImportError, match="DTD"):
        import_wsdl(wsdl)
    assert time.perf_counter() - started < 10  # a bound against a hang, not a speed figure
    assert peak[0] < 20 * 1024 * 1024


@dataclass
class Counter:
    paths: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            self.paths.append(request.path)
            return web.Response(text='<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>',
                                content_type="text/xml")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


@pytest.mark.parametrize("kind", ["xsd-import", "xsd-include"])
async def test_a_wsdl_importing_from_the_network_is_refused_and_nothing_is_fetched(
        tmp_path: Path, kind: str) -> None:
    counter = Counter()
    async with serve(counter.app()) as url:
        element = ("import namespace=\"urn:evil\"" if kind == "xsd-import" else "include")
        wsdl = hostile_wsdl(tmp_path, imports=f'<xs:{element} schemaLocation="{url}/evil.xsd"/>')
        with pytest.raises(WsdlImportError, match="never fetched from the network"):
            import_wsdl(wsdl)
    assert counter.paths == []


async def test_a_schema_imported_by_url_is_read_from_a_copy_beside_the_wsdl_never_fetched(
        tmp_path: Path) -> None:
    counter = Counter()
    (tmp_path / "colours.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:c">'
        '<xs:simpleType name="Colour"><xs:restriction base="xs:string">'
        '<xs:enumeration value="red"/></xs:restriction></xs:simpleType></xs:schema>',
        encoding="utf-8")
    async with serve(counter.app()) as url:
        wsdl = hostile_wsdl(tmp_path, imports=f'<xs:import namespace="urn:c" '
                                              f'schemaLocation="{url}/schemas/colours.xsd"/>')
        result = import_wsdl(wsdl)
    assert counter.paths == []
    assert sorted(p.name for p in result.files) == ["colours.xsd", "svc.wsdl"]


def test_a_wsdl_including_a_file_outside_its_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:h"/>',
        encoding="utf-8")
    for location in ("../outside.xsd", f"file://{tmp_path}/outside.xsd", "/etc/passwd"):
        wsdl = hostile_wsdl(tmp_path / "w", imports=f'<xs:include schemaLocation="{location}"/>')
        with pytest.raises(WsdlImportError, match="outside the WSDL's directory"):
            import_wsdl(wsdl)


def test_a_schema_included_from_beside_the_wsdl_is_read(tmp_path: Path) -> None:
    (tmp_path / "types.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:h">'
        '<xs:simpleType name="Colour"><xs:restriction base="xs:string">'
        '<xs:enumeration value="red"/><xs:enumeration value="blue"/></xs:restriction>'
        "</xs:simpleType></xs:schema>", encoding="utf-8")
    wsdl = hostile_wsdl(tmp_path, imports='<xs:include schemaLocation="types.xsd"/>')
    result = import_wsdl(wsdl)
    assert sorted(p.name for p in result.files) == ["svc.wsdl", "types.xsd"]
    assert list(result.connector.actions) == ["ping"]


def test_a_file_that_is_not_a_wsdl_is_an_import_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "svc.wsdl"
    bad.write_text("<definitions><unclosed></definitions>", encoding="utf-8")
    with pytest.raises(WsdlImportError, match=r"svc\.wsdl"):
        import_wsdl(bad)
    with pytest.raises(WsdlImportError, match="cannot read"):
        import_wsdl(tmp_path / "missing.wsdl")


# -- hostile answers ----------------------------------------------------------------------------


@dataclass
class Scripted:
    """An upstream answering each request with the next (status, body); records requests."""

    answers: list[tuple[int, bytes]]
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            self.seen.append((dict(request.headers), await request.read()))
            status, body = self.answers.pop(0)
            return web.Response(status=status, body=body,
                                headers={"Content-Type": "text/xml; charset=utf-8"})

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", handler)
        return app


def calculator_yaml(version: str = "1.1", extra: str = "") -> str:
    """A connector written by hand over the public calculator WSDL (base_url a setting)."""
    wsdl = conformance_path("wsdl", "dneonline-calculator.wsdl")
    return f"""
name: calc
protocol: soap
soap: {{wsdl: "{wsdl}", version: "{version}"}}
base_url: "{{url}}"
settings:
  url: {{}}
retry: {{attempts: 1}}
{extra}
actions:
  add:
    input:
      type: object
      properties: {{intA: {{type: integer}}, intB: {{type: integer}}}}
      required: [intA, intB]
    soap: {{operation: Add}}
"""


@asynccontextmanager
async def calculator(tmp_path: Path, upstream: Scripted, version: str = "1.1",
                     extra: str = "") -> AsyncIterator[Patchwire]:
    async with serve(upstream.app()) as url:
        spec = load_connector_text(calculator_yaml(version, extra), "<calc>")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("calc", "main", {"url": url})
            yield pw


async def test_the_envelope_goes_to_the_address_path_with_the_soap_1_1_headers(
        tmp_path: Path) -> None:
    upstream = Scripted([(200, ENVELOPE.format(ADD_RESULT.format(5)).encode())])
    async with calculator(tmp_path, upstream) as pw:
        assert await pw.call("calc.add", {"intA": 2, "intB": 3}) == 5
    headers, body = upstream.seen[0]
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert headers["SOAPAction"] == '"http://tempuri.org/Add"'
    assert b"<ns0:intA>2</ns0:intA><ns0:intB>3</ns0:intB>" in body


async def test_a_soap_1_2_connector_sends_the_action_in_the_content_type(
        tmp_path: Path) -> None:
    answer = ('<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/'
              f'soap-envelope"><soap:Body>{ADD_RESULT.format(7)}</soap:Body></soap:Envelope>')
    upstream = Scripted([(200, answer.encode())])
    async with calculator(tmp_path, upstream, version="1.2") as pw:
        assert await pw.call("calc.add", {"intA": 3, "intB": 4}) == 7
    headers, body = upstream.seen[0]
    assert headers["Content-Type"] == (
        'application/soap+xml; charset=utf-8; action="http://tempuri.org/Add"')
    assert "SOAPAction" not in headers
    assert b"http://www.w3.org/2003/05/soap-envelope" in body


async def test_a_fault_in_a_200_answer_is_still_a_typed_error(tmp_path: Path) -> None:
    fault = ENVELOPE.format("<soap:Fault><faultcode>soap:Client</faultcode>"
                            "<faultstring>intA is too large</faultstring></soap:Fault>")
    upstream = Scripted([(200, fault.encode())])
    async with calculator(tmp_path, upstream) as pw:
        with pytest.raises(UpstreamValidationError, match="intA is too large") as caught:
            await pw.call("calc.add", {"intA": 2, "intB": 3})
        assert caught.value.status == 200


async def test_an_empty_accepted_answer_of_a_one_way_operation_is_null(
        tmp_path: Path) -> None:
    upstream = Scripted([(202, b"")])
    async with calculator(tmp_path, upstream) as pw:
        assert await pw.call("calc.add", {"intA": 2, "intB": 3}) is None


async def test_an_answer_that_is_not_soap_falls_back_to_the_status_rules(
        tmp_path: Path) -> None:
    upstream = Scripted([(502, b"<html><body>Bad Gateway</body></html>")])
    async with calculator(tmp_path, upstream) as pw:
        with pytest.raises(UpstreamError) as caught:
            await pw.call("calc.add", {"intA": 2, "intB": 3})
        assert caught.value.status == 502


@pytest.mark.parametrize("answer", [
    pytest.param(('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                  + ENVELOPE.removeprefix('<?xml version="1.0" encoding="utf-8"?>')
                  .format(ADD_RESULT.format("&xxe;"))), id="xxe"),
    pytest.param(LAUGHS + ENVELOPE.removeprefix('<?xml version="1.0" encoding="utf-8"?>')
                 .format(ADD_RESULT.format("&lol9;")), id="billion-laughs"),
    pytest.param(ENVELOPE.format("<a>" * 5000 + "</a>" * 5000), id="depth-bomb"),
])
async def test_a_hostile_answer_is_refused_with_a_mapping_error(
        tmp_path: Path, answer: str) -> None:
    upstream = Scripted([(200, answer.encode())])
    async with calculator(tmp_path, upstream) as pw:
        started = time.perf_counter()
        with memory_peak() as peak, pytest.raises(ResponseMappingError) as caught:
            await pw.call("calc.add", {"intA": 2, "intB": 3})
        assert time.perf_counter() - started < 10  # a bound against a hang, not a speed figure
    assert peak[0] < 50 * 1024 * 1024
    assert "root:" not in str(caught.value)  # /etc/passwd was never read into it


async def test_a_huge_answer_stops_at_the_connectors_response_limit(tmp_path: Path) -> None:
    huge = ENVELOPE.format(ADD_RESULT.format("1" + "0" * 3_000_000)).encode()
    upstream = Scripted([(200, huge)])
    async with calculator(tmp_path, upstream, extra="max_response_bytes: 100000") as pw:
        with pytest.raises(CallError):
            await pw.call("calc.add", {"intA": 2, "intB": 3})
        records = await pw.recent_calls(action="calc.add")
    assert records[0].status == "error"


async def test_markup_in_arguments_is_escaped_inside_the_envelope(tmp_path: Path) -> None:
    upstream = Scripted([(200, ENVELOPE.format(
        '<checkVatResponse xmlns="urn:ec.europa.eu:taxud:vies:services:checkVat:types">'
        "<countryCode>XX</countryCode><vatNumber>2</vatNumber>"
        "<requestDate>2026-12-07+01:00</requestDate><valid>false</valid>"
        "</checkVatResponse>").encode())])
    wsdl = conformance_path("wsdl", "vies-checkVatService.wsdl")
    text = f"""
name: vies
protocol: soap
soap: {{wsdl: "{wsdl}"}}
base_url: "{{url}}"
settings: {{url: {{}}}}
actions:
  check_vat:
    input:
      type: object
      properties: {{countryCode: {{type: string}}, vatNumber: {{type: string}}}}
    soap: {{operation: checkVat}}
"""
    injected = '</countryCode><vatNumber>1</vatNumber><x xmlns="evil">&amp;'
    async with serve(upstream.app()) as url:
        spec = load_connector_text(text, "<vies>")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("vies", "main", {"url": url})
            answer = await pw.call("vies.check_vat",
                                   {"countryCode": injected, "vatNumber": "2"})
    assert answer["valid"] is False and answer["requestDate"].startswith("2026-12-07")
    body = upstream.seen[0][1]
    assert b"&lt;/countryCode&gt;&lt;vatNumber&gt;1&lt;/vatNumber&gt;" in body
    assert b"&amp;amp;" in body
    assert body.count(b"<ns0:vatNumber>") == 1


async def test_free_xml_in_an_answer_reaches_the_result_as_text(tmp_path: Path) -> None:
    wsdl = hostile_wsdl(tmp_path / "w")
    text = wsdl.read_text(encoding="utf-8")
    open_any = ('<xs:element name="PingResponse"><xs:complexType><xs:sequence>\n'
                '  <xs:element name="text" type="xs:string"/>')
    assert open_any in text
    wsdl.write_text(text.replace(open_any, open_any + '<xs:any minOccurs="0" '
                                 'processContents="lax"/>'), encoding="utf-8")
    answer = ENVELOPE.format('<PingResponse xmlns="urn:h"><text>pong</text>'
                             '<extra xmlns="urn:x">hi &amp; bye</extra></PingResponse>')
    upstream = Scripted([(200, answer.encode())])
    connector = f"""
name: ping
protocol: soap
soap: {{wsdl: "{wsdl}"}}
base_url: "{{url}}"
settings: {{url: {{}}}}
actions:
  ping:
    input: {{type: object, properties: {{text: {{type: string}}}}}}
    soap: {{operation: Ping}}
"""
    async with serve(upstream.app()) as url:
        spec = load_connector_text(connector, "<ping>")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("ping", "main", {"url": url})
            result = await pw.call("ping.ping", {"text": "ping"})
    assert result["text"] == "pong"
    assert result["_value_1"].startswith("<extra xmlns=")
    assert result["_value_1"].endswith(">hi &amp; bye</extra>")


async def test_a_fault_repeating_a_secret_names_it_redacted(tmp_path: Path) -> None:
    secret = new_canary("key")
    fault = ENVELOPE.format("<soap:Fault><faultcode>soap:Server</faultcode><faultstring>"
                            f"key {secret} is not valid here</faultstring></soap:Fault>")
    upstream = Scripted([(500, fault.encode())])
    extra = 'auth: {type: api_key, name: X-Key, value: "{key}"}\n'
    async with serve(upstream.app()) as url:
        spec = load_connector_text(calculator_yaml(extra=extra).replace(
            "  url: {}", "  url: {}\n  key: {secret: true}"), "<calc>")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("calc", "main", {"url": url, "key": secret})
            with pytest.raises(UpstreamError) as caught:
                await pw.call("calc.add", {"intA": 2, "intB": 3})
            records = await pw.recent_calls(action="calc.add")
    assert upstream.seen[0][0]["X-Key"] == secret
    assert "is not valid here" in caught.value.message
    for text in (str(caught.value), caught.value.body_excerpt, repr(records)):
        assert leaks_in(text, secret) == []
