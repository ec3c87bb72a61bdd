"""REST APIs that speak XML: ``body_type: xml`` requests written from the rendered body,
XML answers (by content type) mapped to JSON-like data for JSONata, and XML error answers
feeding the connector's error rules — over real HTTP to an aiohttp upstream on loopback."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp import web

from patchwire import NotFoundError, Patchwire, UpstreamValidationError
from patchwire.errors import RequestRenderError
from tests.support.upstream import patchwire_serving

CONNECTOR = """
name: erp
base_url: "{url}"
settings:
  url: {}
retry: {attempts: 1}
errors:
  - {status: 422, when: "Error.Code = 'E_QTY'", error: validation,
     message: "'quantity refused: ' & Error.Text"}
actions:
  list_orders:
    request: {path: /orders}
  order_totals:
    request: {path: /orders}
    response: >-
      {'ids': Orders.Order.'@id', 'total': $sum(Orders.Order.Total.$number()),
       'currency': Orders.'@currency'}
  get_order:
    input: {type: object, properties: {id: {type: string}}, required: [id]}
    request: {path: "/orders/{id}"}
    errors:
      - {status: 404, when: "Fault.Code = 'NO_ORDER'", error: not_found,
         message: "'no order ' & $input.id & ': ' & Fault.Reason"}
  create_order:
    input:
      type: object
      properties:
        id: {type: string}
        customer: {type: string}
        skus: {type: array, items: {type: string}}
        note: {type: string}
        rush: {type: boolean}
      required: [id, customer]
    request:
      method: POST
      path: /orders
      body_type: xml
      body:
        Order:
          "@id": "{id}"
          "@xmlns": "urn:example:orders"
          Customer: "{customer}"
          Line: "{skus}"
          Note: "{note}"
          Rush: "{rush}"
  soap_like:
    input: {type: object, properties: {q: {type: string}}}
    request:
      method: POST
      path: /raw
      headers: {Content-Type: "text/xml; charset=utf-8"}
      body_type: xml
      body: {Query: {"#text": "{q}"}}
  send_anything:
    input: {type: object}
    request: {method: POST, path: /raw, body_type: xml, body: "{$input}"}
"""

ORDERS = b"""<?xml version="1.0" encoding="UTF-8"?>
<o:Orders xmlns:o="urn:example:orders" xmlns:x="urn:example:extra" currency="EUR">
  <!-- a comment is not data -->
  <o:Order id="A1" x:priority="high"><o:Total>10.50</o:Total><o:Note/></o:Order>
  <o:Order id="B2"><o:Total>4.50</o:Total><o:Note>leave at <![CDATA[<door>]]></o:Note></o:Order>
  <o:Summary>two orders <o:Count>2</o:Count> in all</o:Summary>
</o:Orders>"""


class XmlUpstream:
    """Answers XML; remembers each request's content type and body."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    def app(self) -> web.Application:
        async def orders(request: web.Request) -> web.Response:
            return web.Response(body=ORDERS, content_type="application/xml")

        async def order(request: web.Request) -> web.Response:
            if request.match_info["id"] == "latin":
                body = ('<?xml version="1.0" encoding="ISO-8859-1"?>'
                        '<Order><Customer>Müller</Customer></Order>').encode("latin-1")
                return web.Response(body=body, headers={"Content-Type": "text/xml"})
            return web.Response(
                status=404, content_type="application/soap+xml",
                body=b"<Fault><Code>NO_ORDER</Code><Reason>gone</Reason></Fault>")

        async def create(request: web.Request) -> web.Response:
            body = await request.read()
            self.seen.append((request.headers.get("Content-Type", ""), body))
            if b"<Customer>refuse</Customer>" in body:
                return web.Response(status=422, content_type="text/xml",
                                    body=b"<Error><Code>E_QTY</Code><Text>max 5</Text></Error>")
            return web.Response(status=201, content_type="application/xml",
                                body=b'<Created id="1"/>')

        app = web.Application()
        app.router.add_get("/orders", orders)
        app.router.add_get("/orders/{id}", order)
        app.router.add_post("/orders", create)
        app.router.add_post("/raw", create)
        return app


def _with(tmp_path: Path, upstream: XmlUpstream) -> AbstractAsyncContextManager[Patchwire]:
    return patchwire_serving(tmp_path, upstream.app(), CONNECTOR)


async def test_an_xml_answer_becomes_data_with_attributes_repeats_and_local_names(
        tmp_path: Path) -> None:
    async with _with(tmp_path, XmlUpstream()) as pw:
        result = await pw.call("erp.list_orders", {})
    assert result == {"Orders": {
        "@currency": "EUR",
        "Order": [
            {"@id": "A1", "@priority": "high", "Total": "10.50", "Note": None},
            {"@id": "B2", "Total": "4.50", "Note": "leave at <door>"},
        ],
        "Summary": {"Count": "2", "#text": "two orders  in all"},
    }}


async def test_a_response_mapping_reads_an_xml_answer_with_jsonata(tmp_path: Path) -> None:
    async with _with(tmp_path, XmlUpstream()) as pw:
        result = await pw.call("erp.order_totals", {})
    assert result == {"ids": ["A1", "B2"], "total": 15.0, "currency": "EUR"}


async def test_an_xml_answer_in_its_declared_encoding_is_read_as_text(tmp_path: Path) -> None:
    async with _with(tmp_path, XmlUpstream()) as pw:
        result = await pw.call("erp.get_order", {"id": "latin"})
    assert result == {"Order": {"Customer": "Müller"}}


async def test_an_xml_error_answer_feeds_the_actions_error_rules(tmp_path: Path) -> None:
    async with _with(tmp_path, XmlUpstream()) as pw:
        with pytest.raises(NotFoundError) as caught:
            await pw.call("erp.get_order", {"id": "42"})
    assert "no order 42: gone" in caught.value.message
    assert caught.value.status == 404


async def test_an_xml_error_answer_feeds_the_connectors_error_rules(tmp_path: Path) -> None:
    async with _with(tmp_path, XmlUpstream()) as pw:
        with pytest.raises(UpstreamValidationError) as caught:
            await pw.call("erp.create_order", {"id": "1", "customer": "refuse"})
    assert "quantity refused: max 5" in caught.value.message


async def test_an_xml_request_body_is_written_from_the_rendered_mapping(tmp_path: Path) -> None:
    upstream = XmlUpstream()
    async with _with(tmp_path, upstream) as pw:
        result = await pw.call("erp.create_order", {
            "id": "7", "customer": 'Ann & "Bob" <Ltd>', "skus": ["a-1", "b-2"], "rush": True})
    assert result == {"Created": {"@id": "1"}}
    ((content_type, body),) = upstream.seen
    assert content_type == "application/xml"
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(body)
    ns = "{urn:example:orders}"
    assert root.tag == f"{ns}Order" and root.attrib == {"id": "7"}
    # the argument's markup characters arrive as its text, escaped on the wire
    assert root.findtext(f"{ns}Customer") == 'Ann & "Bob" <Ltd>'
    assert b"Ann &amp; \"Bob\" &lt;Ltd&gt;" in body
    assert [e.text for e in root.findall(f"{ns}Line")] == ["a-1", "b-2"]  # a list repeats
    assert root.findtext(f"{ns}Rush") == "true"
    assert root.find(f"{ns}Note") is None  # an argument not given: no element


async def test_an_xml_body_keeps_the_content_type_the_action_sets(tmp_path: Path) -> None:
    upstream = XmlUpstream()
    async with _with(tmp_path, upstream) as pw:
        await pw.call("erp.soap_like", {"q": "a]]>b"})
    ((content_type, body),) = upstream.seen
    assert content_type == "text/xml; charset=utf-8"
    assert ElementTree.fromstring(body).text == "a]]>b"


@pytest.mark.parametrize(("arguments", "says"), [
    ({"a": 1, "b": 2}, "one key, the root element's name (got a, b)"),
    ({"x><script": "1"}, "'x><script' (at $) is not an XML element name"),
    ({"root": {"ok": {"bad name": 1}}}, "'bad name' (at $.root.ok) is not an XML element name"),
    ({"root": {"@on click": "x"}}, "'@on click' (at $.root) is not an XML attribute name"),
    ({"root": {"@id": {"nested": 1}}}, "attribute '@id' (at $.root) must be a single value"),
    ({"root": [[1, 2]]}, "a list inside a list has no XML form (at $.root[0])"),
    ({"root": "bell\x07"}, "$.root holds a control character that XML cannot carry"),
])
async def test_arguments_that_cannot_be_xml_are_refused_before_anything_is_sent(
        tmp_path: Path, arguments: dict[str, Any], says: str) -> None:
    upstream = XmlUpstream()
    async with _with(tmp_path, upstream) as pw:
        with pytest.raises(RequestRenderError) as caught:
            await pw.call("erp.send_anything", arguments)
    assert says in caught.value.message
    assert upstream.seen == []  # nothing reached the upstream


async def test_an_argument_cannot_inject_markup_through_an_xml_value(tmp_path: Path) -> None:
    upstream = XmlUpstream()
    hostile = '</Customer><Admin>true</Admin><Customer>'
    async with _with(tmp_path, upstream) as pw:
        await pw.call("erp.create_order", {"id": '1" admin="true', "customer": hostile})
    root = ElementTree.fromstring(upstream.seen[0][1])
    ns = "{urn:example:orders}"
    assert root.attrib == {"id": '1" admin="true'}
    assert root.findtext(f"{ns}Customer") == hostile
    assert root.find(f"{ns}Admin") is None
