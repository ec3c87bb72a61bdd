"""The documentation's XML, CSV and binary example works as written: its connector (the
first YAML block of the section) loads and each action gives what the page says, against
an upstream on loopback answering what the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire, UpstreamValidationError
from patchwire.connectors import ConnectorRegistry, load_connector_text
from tests.support.servers import serve
from tests.support.settings import local_settings

ROOT = Path(__file__).resolve().parents[2]
#: the section's own page, or connectors.md once it is merged there
PAGES = (ROOT / "docs" / "connectors" / "xml-csv-binary.md", ROOT / "docs" / "connectors.md")
HEADING = "## XML, CSV and binary answers"


def section() -> str:
    for page in PAGES:
        if page.exists() and HEADING in (text := page.read_text()):
            start = text.index(HEADING)
            end = text.find("\n## ", start + len(HEADING))
            return text[start:] if end < 0 else text[start:end]
    raise AssertionError(f"no page holds {HEADING!r}")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), re.S)


PDF = b"%PDF-1.7\n" + bytes(range(256)) + b"\n%%EOF\n"


def upstream(sent: list[bytes]) -> web.Application:
    async def orders(request: web.Request) -> web.Response:
        return web.Response(body=blocks("xml")[0].encode(), content_type="application/xml")

    async def create(request: web.Request) -> web.Response:
        sent.append(await request.read())
        if b"<Customer>nobody</Customer>" in sent[-1]:
            return web.Response(status=422, content_type="application/xml",
                                body=b"<Error><Code>E_QTY</Code><Text>max 5</Text></Error>")
        return web.Response(status=201)

    async def report(request: web.Request) -> web.Response:
        return web.Response(text="region,amount\nEU,10\nUS,7\n", content_type="text/csv")

    async def invoice(request: web.Request) -> web.Response:
        return web.Response(body=PDF, content_type="application/pdf", headers={
            "Content-Disposition": 'attachment; filename="INV-2026-001.pdf"'})

    app = web.Application()
    app.router.add_get("/orders", orders)
    app.router.add_post("/orders", create)
    app.router.add_get("/reports/sales.csv", report)
    app.router.add_get("/invoices/{number}.pdf", invoice)
    return app


async def test_the_documented_xml_csv_and_binary_connector_works_as_written(
        tmp_path: Path) -> None:
    spec = load_connector_text(blocks("yaml")[0], "erp.yaml")
    sent: list[bytes] = []
    async with serve(upstream(sent)) as url, Patchwire(
            local_settings(tmp_path / "home"), connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("erp", "main", {"base_url": url, "api_key": "k"})
        totals = await pw.call("erp.list_orders", {})
        await pw.call("erp.create_order",
                      {"id": "7", "customer": "Ann & Co", "skus": ["a-1", "b-2"]})
        with pytest.raises(UpstreamValidationError) as refused:
            await pw.call("erp.create_order", {"id": "8", "customer": "nobody"})
        report = await pw.call("erp.sales_report", {})
        invoice = await pw.call("erp.get_invoice", {"number": "2026-001"})
    assert totals == {"ids": ["A1", "B2"], "total": 15, "currency": "EUR"}
    assert sent[0].decode() == blocks("xml")[1].strip()
    assert "quantity refused: max 5" in refused.value.message
    assert report == [{"region": "EU", "amount": "10"}]
    assert invoice["content_type"] == "application/pdf"
    assert invoice["filename"] == "INV-2026-001.pdf" and invoice["size"] == len(PDF)
