"""Recorded responses: a recorder in front of the HTTP core's transport keeps each
exchange with the credentials redacted, the JSON file reads back, and a replay answers the
recorded requests offline, failing with an error naming any request it has no answer for."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from patchwire.connectors import Timeouts
from patchwire.errors import RecordingError, UnrecordedRequest
from patchwire.http import HttpCore, PreparedRequest, RawResponse
from patchwire.testing import (
    Exchange,
    MockTransport,
    Recording,
    RecordingTransport,
    Replay,
    instant_retries,
)
from tests.support.leaks import leaks_in
from tests.support.orders import BASE_URL, Opener


def orders_upstream(request: PreparedRequest) -> RawResponse:
    """Answers every order it is asked for, echoing the key it was sent (as a careless
    upstream might)."""
    order_id = request.url.rsplit("/", 1)[-1]
    return MockTransport.json({"id": order_id, "total": 12.5,
                               "seen_key": request.headers.get("X-Api-Key")},
                              headers={"X-Request-Id": f"req-{order_id}"})


async def record_two_orders(open_orders: Opener, path: Path) -> RecordingTransport:
    http = HttpCore(transport=MockTransport(orders_upstream))
    recorder = RecordingTransport.around(http)
    async with open_orders(http) as pw:
        await pw.call("orders.get_order", {"order_id": "1", "expand": "items"},
                      connection="acme")
        await pw.call("orders.get_order", {"order_id": "2"}, connection="acme")
    recorder.save(path)
    return recorder


async def test_a_recording_keeps_each_exchange_in_order_with_the_credentials_redacted(
        open_orders: Opener, api_key: str, tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "orders.json"
    await record_two_orders(open_orders, path)

    text = path.read_text()
    assert leaks_in(text, api_key) == []
    first, second = orjson.loads(text)["exchanges"]
    assert first["request"]["method"] == "GET"
    assert first["request"]["url"] == f"{BASE_URL}/orders/1?expand=items"
    assert first["request"]["headers"]["X-Api-Key"] == "***"
    assert first["response"]["status"] == 200
    assert ["X-Request-Id", "req-1"] in first["response"]["headers"]
    assert first["response"]["json"] == {"id": "1", "total": 12.5, "seen_key": "***"}
    assert second["request"]["url"] == f"{BASE_URL}/orders/2"


async def test_a_secret_given_to_the_recorder_is_redacted_in_every_encoding(
        tmp_path: Path) -> None:
    secret = "account-7f3e9a1c2b4d"

    def upstream(request: PreparedRequest) -> RawResponse:
        return MockTransport.response(
            200, f"hex {secret.encode().hex()} b64 {base64.b64encode(secret.encode()).decode()}",
            headers={"Content-Type": "text/plain", "X-Account": secret})

    http = HttpCore(transport=MockTransport(upstream))
    recorder = RecordingTransport(http.transport, secrets=[secret])
    await recorder.handle(PreparedRequest("GET", f"https://x.example/{secret}"),
                          http.limits(Timeouts()))
    path = recorder.save(tmp_path / "r.json")

    assert leaks_in(path.read_text(), secret) == []


async def test_a_replay_answers_the_recorded_calls_without_the_upstream(
        open_orders: Opener, tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    await record_two_orders(open_orders, path)

    replay = Replay(path)
    async with open_orders(HttpCore(transport=MockTransport(replay))) as pw:
        one = await pw.call("orders.get_order", {"order_id": "1", "expand": "items"},
                            connection="acme")
        two = await pw.call("orders.get_order", {"order_id": "2"}, connection="acme")

    assert one == {"id": "1", "total": 12.5, "seen_key": "***"}
    assert two["id"] == "2"
    replay.assert_all_used()


async def test_a_request_with_no_recording_is_an_unrecorded_request_naming_it(
        open_orders: Opener, tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    await record_two_orders(open_orders, path)
    transport = MockTransport(Replay(path))

    async with open_orders(HttpCore(transport=transport)) as pw:
        with instant_retries(), pytest.raises(UnrecordedRequest) as raised:
            await pw.call("orders.get_order", {"order_id": "3"}, connection="acme")

    assert raised.value.method == "GET"
    assert raised.value.url == f"{BASE_URL}/orders/3"
    message = str(raised.value)
    assert f"GET {BASE_URL}/orders/3" in message and str(path) in message
    assert f"recorded for this path or method: GET {BASE_URL}/orders/1?expand=items" in message
    assert len(transport.requests) == 1  # a test's mistake: never retried


async def test_each_recorded_answer_is_used_once_in_the_recorded_order(
        tmp_path: Path) -> None:
    url = "https://api.example.com/status"
    recording = Recording.from_json(orjson.dumps({
        "format": "patchwire-recording", "version": 1,
        "exchanges": [
            {"request": {"method": "GET", "url": url},
             "response": {"status": 202, "json": {"state": "pending"}}},
            {"request": {"method": "GET", "url": url},
             "response": {"status": 200, "json": {"state": "done"}}},
        ]}))
    replay = Replay(recording)

    answers = [replay(PreparedRequest("GET", url)) for _ in range(2)]
    with pytest.raises(UnrecordedRequest, match="all used"):
        replay(PreparedRequest("GET", url))

    assert [(a.status, orjson.loads(a.body)) for a in answers] == [
        (202, {"state": "pending"}), (200, {"state": "done"})]


def test_a_recorded_query_value_of_stars_matches_any_value_and_params_in_any_order() -> None:
    recording = Recording.from_json(orjson.dumps({
        "format": "patchwire-recording", "version": 1,
        "exchanges": [{"request": {"method": "get",
                                   "url": "https://api.example.com/items?key=***&page=2"},
                       "response": {"status": 200, "text": "ok"}}]}))

    answer = Replay(recording)(PreparedRequest(
        "GET", "https://api.example.com/items", params={"page": "2", "key": "live-key"}))

    assert answer.body == b"ok"


def test_a_replay_left_with_unused_recordings_names_them() -> None:
    recording = Recording.from_json(orjson.dumps({
        "format": "patchwire-recording", "version": 1,
        "exchanges": [{"request": {"method": "DELETE", "url": "https://api.example.com/a/1"},
                       "response": {"status": 204}}]}))

    with pytest.raises(AssertionError, match=r"never made: DELETE https://api\.example\.com/a/1"):
        Replay(recording).assert_all_used()


def test_a_binary_body_is_kept_as_base64_and_reads_back_the_same(tmp_path: Path) -> None:
    png = bytes(range(256))
    path = Recording([Exchange("GET", "https://cdn.example.com/a.png", 200, png,
                               response_headers=(("Content-Type", "image/png"),))]
                     ).save(tmp_path / "bin.json")

    stored = orjson.loads(path.read_bytes())["exchanges"][0]["response"]
    assert base64.b64decode(stored["base64"]) == png
    assert Recording.load(path).exchanges[0].body == png


def test_a_malformed_recording_is_a_recording_error_naming_the_file_and_the_place(
        tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps({
        "format": "patchwire-recording", "version": 1,
        "exchanges": [{"request": {"method": "GET", "url": "https://a.example/"},
                       "response": {"status": 700}}]}))

    with pytest.raises(RecordingError) as raised:
        Replay(path)

    assert str(path) in str(raised.value)
    assert "exchanges[0].response.status" in str(raised.value)


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"format": "har", "version": 1, '
                                     b'"exchanges": []}'],
                         ids=["not-json", "not-an-object", "another-format"])
def test_a_file_that_is_not_a_recording_is_a_recording_error(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.json"
    path.write_bytes(content)

    with pytest.raises(RecordingError, match="not a Patchwire recording"):
        Recording.load(path)


def test_a_missing_recording_is_a_recording_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"missing\.json: cannot read"):
        Recording.load(tmp_path / "missing.json")


def test_a_response_with_two_bodies_is_refused() -> None:
    with pytest.raises(RecordingError, match="one body"):
        Recording.from_json(orjson.dumps({
            "format": "patchwire-recording", "version": 1,
            "exchanges": [{"request": {"method": "GET", "url": "https://a.example/"},
                           "response": {"status": 200, "text": "a", "json": 1}}]}))
