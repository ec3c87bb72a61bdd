"""SOAP header elements a WSDL declares (a Salesforce-style SessionHeader) come from
`soap.headers`, rendered over the connection's settings, in the envelopes of the operations
that declare them only."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_file
from patchwire.connectors.wsdl import import_wsdl
from patchwire.errors import RequestRenderError, SpecError
from tests.support.leaks import new_canary
from tests.support.servers import serve
from tests.support.settings import local_settings

WSDL = """<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:crm" targetNamespace="urn:crm">
<types><xs:schema targetNamespace="urn:crm" elementFormDefault="qualified">
 <xs:element name="SessionHeader"><xs:complexType><xs:sequence>
  <xs:element name="sessionId" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
 <xs:element name="login"><xs:complexType><xs:sequence>
  <xs:element name="username" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
 <xs:element name="query"><xs:complexType><xs:sequence>
  <xs:element name="queryString" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
 <xs:element name="result"><xs:complexType><xs:sequence>
  <xs:element name="size" type="xs:int"/></xs:sequence></xs:complexType></xs:element>
</xs:schema></types>
<message name="Header"><part name="SessionHeader" element="tns:SessionHeader"/></message>
<message name="loginIn"><part name="parameters" element="tns:login"/></message>
<message name="queryIn"><part name="parameters" element="tns:query"/></message>
<message name="Out"><part name="parameters" element="tns:result"/></message>
<portType name="PT">
 <operation name="login"><input message="tns:loginIn"/><output message="tns:Out"/></operation>
 <operation name="query"><input message="tns:queryIn"/><output message="tns:Out"/></operation>
</portType>
<binding name="B" type="tns:PT"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
 <operation name="login"><soap:operation soapAction=""/><input><soap:body use="literal"/></input>
  <output><soap:body use="literal"/></output></operation>
 <operation name="query"><soap:operation soapAction=""/>
  <input><soap:header message="tns:Header" part="SessionHeader" use="literal"/>
   <soap:body parts="parameters" use="literal"/></input>
  <output><soap:body use="literal"/></output></operation>
</binding>
<service name="CRM"><port name="P" binding="tns:B"><soap:address location="https://crm.example.com/services/Soap/u/38.0"/></port></service>
</definitions>"""

ANSWER = ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/'
          'soap/envelope/"><soapenv:Body><result xmlns="urn:crm"><size>3</size></result>'
          "</soapenv:Body></soapenv:Envelope>")


def connector(directory: Path, session: str = "{session_id}") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "crm.wsdl").write_text(WSDL, encoding="utf-8")
    result = import_wsdl(directory / "crm.wsdl", name="crm", base_url="{url}")
    assert any("SessionHeader" in w for w in result.warnings)
    text = result.to_yaml().replace(
        "soap:\n  wsdl: crm.wsdl\n",
        f'soap:\n  wsdl: crm.wsdl\n  headers:\n    SessionHeader: {{sessionId: "{session}"}}\n'
    ).replace("base_url: '{url}'\n", "base_url: '{url}'\nsettings:\n  url: {}\n"
              "  session_id: {secret: true, required: false}\n")
    path = directory / "crm.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_a_declared_soap_header_is_sent_with_the_operations_that_take_it(
        tmp_path: Path) -> None:
    session = new_canary("session")
    bodies: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(text=ANSWER, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/services/Soap/u/38.0", handler)
    spec = load_connector_file(connector(tmp_path / "connectors"))
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                         connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("crm", "main", {"url": url, "session_id": session})
        await pw.add_connection("crm", "anonymous", {"url": url})
        assert await pw.call("crm.query", {"queryString": "SELECT Id FROM Account"},
                             connection="main") == 3
        assert await pw.call("crm.login", {"username": "ada"}, connection="main") == 3
        with pytest.raises(RequestRenderError, match=r"soap\.headers\.SessionHeader"):
            await pw.call("crm.query", {"queryString": "x"}, connection="anonymous")
    query, login = bodies
    assert (f'<soap-env:Header><ns0:SessionHeader xmlns:ns0="urn:crm"><ns0:sessionId>'
            f"{session}</ns0:sessionId></ns0:SessionHeader></soap-env:Header>").encode() in query
    assert b"Header" not in login and session.encode() not in login


def test_a_header_template_naming_no_setting_is_a_load_problem(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"soap\.headers\.SessionHeader: \{token\} names no"):
        load_connector_file(connector(tmp_path / "connectors", session="{token}"))
