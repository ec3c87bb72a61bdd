"""An rpc-style operation (the NDFD weather service's WSDL) through the call path: its
message parts are the arguments, its answer's part is the result, and the import says the
binding is SOAP-encoded."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_file
from patchwire.connectors.wsdl import import_wsdl
from tests.support.conformance import conformance_path
from tests.support.servers import serve
from tests.support.settings import local_settings

NS = "http://graphical.weather.gov/xml/DWMLgen/wsdl/ndfdXML.wsdl"
ANSWER = ('<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV='
          '"http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
          f'<ns1:NDFDgenByDayResponse xmlns:ns1="{NS}"><dwmlByDayOut>&lt;dwml version='
          '"1.0"/&gt;</dwmlByDayOut></ns1:NDFDgenByDayResponse></SOAP-ENV:Body>'
          "</SOAP-ENV:Envelope>")


async def test_an_rpc_operation_sends_its_parts_and_returns_its_answer_part(
        tmp_path: Path) -> None:
    wsdl = tmp_path / "ndfdXML.wsdl"
    shutil.copyfile(conformance_path("wsdl", "noaa-ndfdXML.wsdl"), wsdl)
    result = import_wsdl(wsdl, name="weather")
    assert any('use="encoded"' in w for w in result.warnings)
    seen: list[tuple[str, str, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers["SOAPAction"], await request.read()))
        return web.Response(text=ANSWER, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    async with serve(app) as url:
        data = yaml.safe_load(result.to_yaml())
        data["base_url"] = url
        (tmp_path / "weather.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        spec = load_connector_file(tmp_path / "weather.yaml")
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("weather", "main", {})
            answer = await pw.call("weather.ndf_dgen_by_day", {
                "latitude": 38.99, "longitude": -77.01, "startDate": "2026-12-07",
                "numDays": 2, "Unit": "m", "format": "24 hourly"})
    assert answer == '<dwml version="1.0"/>'
    path, action, body = seen[0]
    assert path == "/xml/SOAP_server/ndfdXMLserver.php"
    assert action == f'"{NS}#NDFDgenByDay"'
    assert (f'<ns0:NDFDgenByDay xmlns:ns0="{NS}"><latitude>38.99</latitude>'
            "<longitude>-77.01</longitude><startDate>2026-12-07</startDate>"
            "<numDays>2</numDays><Unit>m</Unit><format>24 hourly</format>").encode() in body
