"""SOAP actions through the whole call path against a real SOAP service (spyne): the WSDL
it publishes imported, its operations called, faults typed, every call in the call log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from patchwire.errors import UpstreamError, UpstreamValidationError
from tests.support.soap import SoapServer, imported_connector, soap_patchwire, spyne_server


@pytest.fixture
def server() -> Iterator[SoapServer]:
    with spyne_server(password="unused") as running:
        yield running


async def test_an_imported_wsdl_action_returns_the_services_answer_as_plain_data(
        server: SoapServer, tmp_path: Path) -> None:
    connector = imported_connector(tmp_path / "connectors", server.wsdl("/orders"))
    async with soap_patchwire(tmp_path / "home", connector) as pw:
        order = await pw.call("orders.get_order", {"order_id": "A-1"})
        assert order == {
            "id": "A-1", "status": "shipped", "total": 59.9,
            "placed": "2026-11-30T09:15:00+00:00",
            "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
            "lines": {"Line": [{"sku": "BOOK-1", "quantity": 2, "price": 19.95},
                               {"sku": "PEN-7", "quantity": 1, "price": 20}]},
        }
        records = await pw.recent_calls(action="orders.get_order")
        assert [(r.status, r.http_status) for r in records] == [("ok", 200)]


async def test_a_client_fault_becomes_an_upstream_validation_error_with_the_faultstring(
        server: SoapServer, tmp_path: Path) -> None:
    connector = imported_connector(tmp_path / "connectors", server.wsdl("/orders"))
    async with soap_patchwire(tmp_path / "home", connector) as pw:
        with pytest.raises(UpstreamValidationError) as caught:
            await pw.call("orders.get_order", {"order_id": "nope"})
        assert "no order nope" in caught.value.message
        assert caught.value.status == 500
        records = await pw.recent_calls(action="orders.get_order")
        assert [(r.status, r.error_class) for r in records] == [
            ("error", "upstream_validation_error")]


async def test_a_server_fault_becomes_an_upstream_error(server: SoapServer,
                                                         tmp_path: Path) -> None:
    connector = imported_connector(tmp_path / "connectors", server.wsdl("/orders"))
    async with soap_patchwire(tmp_path / "home", connector) as pw:
        with pytest.raises(UpstreamError) as caught:
            await pw.call("orders.break_down", {"reason": "disk full"})
        assert "the order database is down (disk full)" in caught.value.message


async def test_soap_1_2_actions_send_application_soap_xml_and_read_the_answer(
        server: SoapServer, tmp_path: Path) -> None:
    connector = imported_connector(tmp_path / "connectors", server.wsdl("/orders12"))
    assert "version: '1.2'" in connector.read_text()
    async with soap_patchwire(tmp_path / "home", connector) as pw:
        outcome = await pw.execute("orders.get_order", {"order_id": "A-1"})
        assert outcome.result["customer"]["name"] == "Ada Lovelace"
        with pytest.raises(UpstreamValidationError, match="no order B-2"):
            await pw.call("orders.get_order", {"order_id": "B-2"})


async def test_xml_in_a_string_argument_reaches_the_service_as_text_not_markup(
        server: SoapServer, tmp_path: Path) -> None:
    connector = imported_connector(tmp_path / "connectors", server.wsdl("/orders"))
    injected = "</note><admin>true</admin><note>&amp; ]]> <!--"
    async with soap_patchwire(tmp_path / "home", connector) as pw:
        assert await pw.call("orders.echo_note", {"note": injected}) == injected
