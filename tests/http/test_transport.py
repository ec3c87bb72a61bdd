"""The transport boundary of the HTTP core: an injected transport (``MockTransport``)
answers calls without a network and is held to the same rules as the built-in ones (body
limit, status range, error mapping, retries), and the core follows redirects itself, hop
by hop through whichever transport is in use."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.spec import ConnectorSpec, RetryPolicy
from patchwire.errors import CallContext, CallTimeoutError, TransportError
from patchwire.http import (
    HttpCore,
    Limits,
    MockTransport,
    PreparedRequest,
    RawResponse,
    RetryDecision,
    Transport,
    instant_retries,
)
from tests.support.settings import local_settings
from tests.support.wire import ONE_TRY, TIMEOUTS, send


async def test_a_mock_transport_answers_calls_from_a_plain_or_an_async_function() -> None:
    def plain(request: PreparedRequest) -> RawResponse:
        return MockTransport.json({"path": request.url.rsplit("/", 1)[1]})

    async def awaited(request: PreparedRequest) -> RawResponse:
        return MockTransport.response(201, "made", headers={"X-Id": "7"})

    for handler, expected in ((plain, (200, b'{"path":"orders"}')), (awaited, (201, b"made"))):
        transport = MockTransport(handler)
        assert isinstance(transport, Transport)
        http = HttpCore(transport=transport)
        response = await send(http, PreparedRequest("POST", "https://api.example/orders",
                                                    data=b"{}", idempotent=False))
        await http.close()
        assert (response.status, response.body) == expected
        assert response.url == "https://api.example/orders"  # the request's, unless told
        assert [r.method for r in transport.requests] == ["POST"]
        assert transport.closed  # the core closes the transport it was given


async def test_a_handler_answering_something_else_than_a_response_is_a_type_error() -> None:
    http = HttpCore(transport=MockTransport(lambda request: {"not": "a response"}))  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="must answer a RawResponse, not dict"):
        await send(http, PreparedRequest("GET", "https://api.example/x"))


async def test_a_mock_answer_over_max_response_bytes_fails_the_call_as_on_the_network() -> None:
    spec = ConnectorSpec(name="big", base_url="https://api.example", max_response_bytes=1000)
    http = HttpCore(transport=MockTransport(
        lambda request: MockTransport.response(200, b"x" * (500 if "small" in request.url
                                                            else 5000))))

    async def call(where: str) -> RawResponse:
        return await http.send(PreparedRequest("GET", f"https://api.example/{where}"),
                               timeouts=TIMEOUTS, retry=ONE_TRY, context=CallContext(),
                               decision=RetryDecision(), connector=spec)

    with pytest.raises(TransportError, match=r"larger than 1000 bytes \(max_response_bytes"):
        await call("big")
    assert len((await call("small")).body) == 500


async def test_a_status_outside_100_599_from_any_transport_fails_the_call() -> None:
    http = HttpCore(transport=MockTransport(lambda request: MockTransport.response(600)))
    with pytest.raises(TransportError, match="the status 600 is outside 100-599"):
        await send(http, PreparedRequest("GET", "https://api.example/x"))


@pytest.mark.parametrize(("failure", "error", "words"), [
    (aiohttp.ClientConnectionError("reset by peer"), TransportError,
     "connection error after 3 attempts: ClientConnectionError: reset by peer"),
    (TimeoutError(), CallTimeoutError,
     "no complete response within the timeout (connect 2s, read 5s, total 5s) after 3 "
     "attempts"),
])
async def test_a_failing_mock_is_retried_by_policy_then_mapped_like_a_network_failure(
    failure: Exception, error: type[Exception], words: str,
) -> None:
    def broken(request: PreparedRequest) -> RawResponse:
        raise failure

    transport = MockTransport(broken)
    http = HttpCore(transport=transport)
    with instant_retries(), pytest.raises(error) as info:
        await http.send(PreparedRequest("GET", "https://api.example/x"), timeouts=TIMEOUTS,
                        retry=RetryPolicy(attempts=3), context=CallContext(),
                        decision=RetryDecision())
    assert str(info.value) == words
    assert len(transport.requests) == 3


async def test_the_core_follows_redirects_through_the_transport_by_aiohttps_rules() -> None:
    hops = {
        "https://api.example/a": (307, "/b"),  # same origin: everything goes along
        "https://api.example/b": (303, "https://elsewhere.example/c"),  # GET, off origin
        "https://elsewhere.example/c": (302, "d"),  # relative to the hop's URL
    }

    def upstream(request: PreparedRequest) -> RawResponse:
        if request.url in hops:
            status, location = hops[request.url]
            return MockTransport.response(status, headers={"Location": location})
        return MockTransport.json({"landed": request.url})

    transport = MockTransport(upstream)
    http = HttpCore(transport=transport)
    response = await send(http, PreparedRequest(
        "POST", "https://api.example/a",
        {"Authorization": "Bearer s3cret", "X-Api-Key": "k", "X-Plain": "p",
         "Content-Length": "2"},
        cookies={"session": "c"}, data=b"{}", idempotent=False,
        credentials=frozenset({"x-api-key"})))
    assert response.body == b'{"landed":"https://elsewhere.example/d"}'
    assert response.url == "https://elsewhere.example/d"
    _, b, c, d = transport.requests
    assert (b.method, b.data, b.headers["Authorization"], b.cookies) == (
        "POST", b"{}", "Bearer s3cret", {"session": "c"})
    for hop in (c, d):  # a 303 makes a GET without body; another origin gets no credentials
        assert (hop.method, hop.data, hop.cookies) == ("GET", None, None)
        assert set(hop.headers) == {"X-Plain"}


async def test_the_tenth_redirect_in_a_row_fails_the_call_and_without_following_a_3xx_is_the_answer(
) -> None:
    transport = MockTransport(lambda request: MockTransport.response(
        302, headers={"Location": f"{request.url}x"}))
    http = HttpCore(transport=transport)
    with pytest.raises(TransportError, match="the upstream redirected too often after 1 "
                                             "attempt: 10 redirects in a row"):
        await send(http, PreparedRequest("GET", "https://api.example/x"))
    assert len(transport.requests) == 10
    limits = Limits(aiohttp.ClientTimeout(total=5))
    answer = await http.exchange(PreparedRequest("GET", "https://api.example/x"), limits,
                                 follow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (302, "https://api.example/xx")


async def test_a_user_tests_a_connector_through_patchwire_with_a_mock_transport(
    tmp_path: Path,
) -> None:
    connector = """
name: shop
base_url: "https://shop.example"
settings:
  api_key: {secret: true}
auth: {type: api_key, in: header, name: X-Api-Key}
actions:
  get_order:
    request: {path: "/orders/{order_id}"}
    input: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
"""

    def shop(request: PreparedRequest) -> RawResponse:
        assert request.headers["X-Api-Key"] == "k-1"
        return MockTransport.json({"id": request.url.rsplit("/", 1)[1], "total": 12})

    transport = MockTransport(shop)
    registry = ConnectorRegistry([load_connector_text(connector, "shop.yaml")])
    async with Patchwire(local_settings(tmp_path / "home"), connectors=registry,
                         http=HttpCore(transport=transport)) as pw:
        await pw.add_connection("shop", "c1", {"api_key": "k-1"})
        assert await pw.call("shop.get_order", {"order_id": "42"}) == {"id": "42",
                                                                        "total": 12}
    assert [r.url for r in transport.requests] == ["https://shop.example/orders/42"]
