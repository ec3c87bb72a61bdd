"""The example connector of docs/connectors/soap.md loads beside the public calculator
WSDL and calls as the page says (against a loopback server answering like the service)."""

from __future__ import annotations

import shutil
from pathlib import Path

from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_file
from tests.support.conformance import conformance_path
from tests.support.docs import fenced_blocks
from tests.support.servers import serve
from tests.support.settings import local_settings

ANSWER = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap='
          '"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><{op}Response '
          'xmlns="http://tempuri.org/"><{op}Result>{value}</{op}Result></{op}Response>'
          "</soap:Body></soap:Envelope>")


def connector_example() -> str:
    return next(b for b in fenced_blocks("connectors/soap.md")
                if b.startswith("name: calculator"))


async def test_the_documented_soap_connector_works_as_documented(tmp_path: Path) -> None:
    shutil.copyfile(conformance_path("wsdl", "dneonline-calculator.wsdl"),
                    tmp_path / "calculator.wsdl")
    (tmp_path / "calculator.yaml").write_text(connector_example(), encoding="utf-8")
    spec = load_connector_file(tmp_path / "calculator.yaml")
    seen: list[tuple[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        action = request.headers["SOAPAction"].strip('"').rsplit("/", 1)[1]
        seen.append((request.path, action))
        value = {"Add": 5, "Divide": 3}[action]
        return web.Response(text=ANSWER.format(op=action, value=value),
                            content_type="text/xml")

    app = web.Application()
    app.router.add_post("/calculator.asmx", handler)
    async with serve(app) as url:
        local = spec.model_copy(update={"base_url": url})
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([local])) as pw:
            await pw.add_connection("calculator", "main", {})
            assert await pw.call("calculator.add", {"intA": 2, "intB": 3}) == 5
            assert await pw.call("calculator.divide", {"intA": 9, "intB": 3}) == {"quotient": 3}
    assert seen == [("/calculator.asmx", "Add"), ("/calculator.asmx", "Divide")]
