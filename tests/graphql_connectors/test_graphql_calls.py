"""GraphQL actions through the call path, against graphql-core's executor on loopback:
requests, answers, typed errors, partial data, relay pages, cost pauses, hostile answers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from patchwire.errors import (
    AuthError,
    NotFoundError,
    PaginationError,
    RateLimitedError,
    ResponseMappingError,
    UpstreamValidationError,
)
from tests.support.graphql import CONNECTOR, GraphQLUpstream, graphql_patchwire


async def test_a_query_sends_its_arguments_as_variables_and_maps_the_only_root_field(
        tmp_path: Path) -> None:
    upstream = GraphQLUpstream()
    async with graphql_patchwire(tmp_path, upstream) as pw:
        result = await pw.call("gh.get_repository", {"owner": "octo", "name": "hello"})
    assert result == {"name": "hello", "stars": 42, "owner": "octo"}
    sent = upstream.bodies[0]
    assert sent["variables"] == {"owner": "octo", "name": "hello"}
    assert "operationName" not in sent  # one operation: nothing to choose
    assert "octo" not in sent["query"]
    assert upstream.headers[0]["Authorization"] == "Bearer tok-s3cret-1"
    assert upstream.headers[0]["Content-Type"] == "application/json"


async def test_a_prompt_injected_argument_stays_a_variable_and_never_reaches_the_document(
        tmp_path: Path) -> None:
    upstream = GraphQLUpstream()
    hostile = '") { deleteAll } mutation X { deleteAll } #'
    async with graphql_patchwire(tmp_path, upstream) as pw:
        result = await pw.call("gh.echo", {"text": hostile})
    assert result == hostile  # echoed back as the string it is
    assert upstream.deleted == 0
    assert upstream.bodies[0]["query"] == "query Echo($text: String!) { echo(text: $text) }"
    assert upstream.bodies[0]["variables"] == {"text": hostile}


async def test_a_mutation_sends_input_objects_and_enums_as_variables(tmp_path: Path) -> None:
    upstream = GraphQLUpstream()
    async with graphql_patchwire(tmp_path, upstream) as pw:
        result = await pw.call("gh.add_item", {"input": {"name": "x"}})
    assert result == {"id": "99", "name": "x"}
    assert upstream.bodies[0]["variables"] == {"input": {"name": "x"}}


@pytest.mark.parametrize(("name", "error", "words"), [
    ("missing", NotFoundError, "Could not resolve to a Repository"),
    ("private", AuthError, "Resource not accessible"),
])
async def test_graphql_errors_in_a_200_become_typed_errors(
        tmp_path: Path, name: str, error: type[Exception], words: str) -> None:
    async with graphql_patchwire(tmp_path, GraphQLUpstream()) as pw:
        with pytest.raises(error) as caught:
            await pw.call("gh.get_repository", {"owner": "o", "name": name})
    assert words in str(caught.value)
    assert "tok-s3cret-1" not in str(caught.value)


async def test_a_rate_limited_graphql_error_says_when_to_retry_from_its_extensions(
        tmp_path: Path) -> None:
    async with graphql_patchwire(tmp_path, GraphQLUpstream()) as pw:
        with pytest.raises(RateLimitedError) as caught:
            await pw.call("gh.secret")
    assert caught.value.retry_after == 7


async def test_a_document_the_upstream_refuses_is_a_validation_error(tmp_path: Path) -> None:
    # the upstream's schema lacks what the connector's (stale) schema declares
    text = CONNECTOR.replace("  schema: schema.graphql\n", "").replace(
        '"query Echo($text: String!) { echo(text: $text) }"',
        '"query Echo($text: String!) { echo(text: $text) gone }"')
    async with graphql_patchwire(tmp_path, GraphQLUpstream(), text=text) as pw:
        with pytest.raises(UpstreamValidationError) as caught:
            await pw.call("gh.echo", {"text": "a"})
    assert "gone" in str(caught.value)


async def test_partial_data_is_a_result_that_says_it_is_partial(tmp_path: Path) -> None:
    async with graphql_patchwire(tmp_path, GraphQLUpstream()) as pw:
        result = await pw.call("gh.partial")
    assert result == {"partial": True, "data": {"ok": "fine", "bad": None},
                      "errors": [{"message": "the bad field failed",
                                  "path": ["partial", "bad"], "code": "INTERNAL"}]}


async def test_relay_pages_send_the_cursor_as_a_variable_until_has_next_page_is_false(
        tmp_path: Path) -> None:
    upstream = GraphQLUpstream(item_count=7)
    async with graphql_patchwire(tmp_path, upstream) as pw:
        items = [i async for i in pw.paginate("gh.list_items")]
    assert [i["id"] for i in items] == [str(n) for n in range(7)]
    assert len(upstream.bodies) == 3
    assert upstream.bodies[0]["variables"] == {"first": 3}
    cursors = [b["variables"].get("after") for b in upstream.bodies]
    assert cursors[0] is None and cursors[1] and cursors[2] and cursors[1] != cursors[2]
    assert all(b["query"] == upstream.bodies[0]["query"] for b in upstream.bodies)


async def test_relay_pages_stop_at_max_items_with_a_page_no_bigger(tmp_path: Path) -> None:
    upstream = GraphQLUpstream(item_count=50)
    async with graphql_patchwire(tmp_path, upstream) as pw:
        items = [i async for i in pw.paginate("gh.list_items", max_items=2)]
    assert len(items) == 2
    assert upstream.bodies[0]["variables"] == {"first": 2}


async def test_a_relay_cursor_that_repeats_stops_the_walk(tmp_path: Path) -> None:
    page = {"data": {"items": {"nodes": [{"id": "1", "name": "a"}],
                               "pageInfo": {"hasNextPage": True, "endCursor": "same"}}}}
    upstream = GraphQLUpstream(raw=[(200, json.dumps(page).encode(), "application/json")] * 3)
    async with graphql_patchwire(tmp_path, upstream) as pw:
        with pytest.raises(PaginationError, match="already followed"):
            _ = [i async for i in pw.paginate("gh.list_items")]
    assert len(upstream.bodies) == 2


async def test_a_spent_cost_budget_pauses_the_next_calls_like_a_429(tmp_path: Path) -> None:
    # GitHub's rateLimit says 0 left until a reset an hour away: beyond the wait cap, so the
    # next call fails at once with when to retry, and never reaches the upstream
    upstream = GraphQLUpstream(rate_remaining=0, rate_reset_at="2099-01-01T00:00:00Z")
    async with graphql_patchwire(tmp_path, upstream) as pw:
        assert await pw.call("gh.repo_with_limits", {"name": "a"}) == {"name": "a"}
        with pytest.raises(RateLimitedError) as caught:
            await pw.call("gh.get_repository", {"owner": "o", "name": "b"})
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600
    assert len(upstream.bodies) == 1


async def test_a_cost_budget_left_does_not_pause(tmp_path: Path) -> None:
    upstream = GraphQLUpstream(rate_remaining=10)
    async with graphql_patchwire(tmp_path, upstream) as pw:
        for _ in range(3):
            await pw.call("gh.repo_with_limits", {"name": "a"})
    assert len(upstream.bodies) == 3


@pytest.mark.parametrize(("raw", "error", "words"), [
    ((200, b"<html>oops</html>", "text/html"), ResponseMappingError, "other than JSON"),
    ((200, b"[1, 2]", "application/json"), ResponseMappingError, "not a list"),
    ((200, b'{"data": [1]}', "application/json"), ResponseMappingError, "not a list"),
    ((200, b'{"data": "x"}', "application/json"), ResponseMappingError, "not a string"),
    ((200, b"{}", "application/json"), ResponseMappingError, "neither data nor errors"),
    ((200, b'{"errors": "boom"}', "application/json"), Exception, "boom"),
    ((200, b"[" * 100_000, "application/json"), ResponseMappingError, "other than JSON"),
    ((200, json.dumps({"errors": [{"message": {"x": 1}, "extensions": {"code": 5},
                                   "path": [[1]] * 1000}]}).encode(), "application/json"),
     Exception, "unknown error"),
])
async def test_hostile_answers_become_typed_errors_not_tracebacks(
        tmp_path: Path, raw: tuple[int, bytes, str], error: type[Exception],
        words: str) -> None:
    upstream = GraphQLUpstream(raw=[raw])
    async with graphql_patchwire(tmp_path, upstream) as pw:
        with pytest.raises(error) as caught:
            await pw.call("gh.echo", {"text": "a"})
    assert words in str(caught.value)


async def test_a_huge_errors_array_is_read_in_bounded_time_and_summarised(
        tmp_path: Path) -> None:
    errors = [{"message": "x" * 1_000, "extensions": {"code": "BAD_USER_INPUT"}}] * 20_000
    body = json.dumps({"errors": errors}).encode()
    upstream = GraphQLUpstream(raw=[(200, body, "application/json")])
    async with graphql_patchwire(tmp_path, upstream) as pw:
        with pytest.raises(UpstreamValidationError) as caught:
            await pw.call("gh.echo", {"text": "a"})
    assert "(and 19999 more)" in str(caught.value)
    assert len(str(caught.value)) < 2000


async def test_graphql_errors_in_a_4xx_answer_are_typed_by_their_codes(tmp_path: Path) -> None:
    body = json.dumps({"errors": [{"message": "Bad credentials",
                                   "extensions": {"code": "UNAUTHENTICATED"}}]}).encode()
    upstream = GraphQLUpstream(raw=[(400, body, "application/json")])
    async with graphql_patchwire(tmp_path, upstream) as pw:
        with pytest.raises(AuthError, match="Bad credentials"):
            await pw.call("gh.echo", {"text": "a"})


async def test_shopifys_throttle_status_pauses_the_connection_until_enough_is_restored(
        tmp_path: Path) -> None:
    # 20 points left, the query costs 50, 10 restored per second: 3 s until it fits again
    answer = {"data": {"echo": "a"}, "extensions": {"cost": {
        "requestedQueryCost": 50, "actualQueryCost": 50,
        "throttleStatus": {"maximumAvailable": 1000, "currentlyAvailable": 20,
                           "restoreRate": 10}}}}
    upstream = GraphQLUpstream(raw=[(200, json.dumps(answer).encode(), "application/json")])
    text = CONNECTOR.replace("cost: github", "cost: shopify")
    async with graphql_patchwire(tmp_path, upstream, text=text) as pw:
        assert await pw.call("gh.echo", {"text": "a"}) == "a"
        http = pw.runtime.http
        spec = pw.runtime.connectors.get("gh")
        bucket = http.guard(spec).buckets("main", None)[-1]
        left = bucket.paused_until - time.monotonic()
    assert 2.0 < left <= 3.0


async def test_a_throttled_error_takes_its_wait_from_the_cost_rule(tmp_path: Path) -> None:
    answer = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
              "extensions": {"cost": {"requestedQueryCost": 100, "throttleStatus": {
                  "maximumAvailable": 1000, "currentlyAvailable": 40, "restoreRate": 50}}}}
    upstream = GraphQLUpstream(raw=[(200, json.dumps(answer).encode(), "application/json")])
    text = CONNECTOR.replace("cost: github", "cost: shopify")
    async with graphql_patchwire(tmp_path, upstream, text=text) as pw:
        with pytest.raises(RateLimitedError) as caught:
            await pw.call("gh.echo", {"text": "a"})
    assert caught.value.retry_after == pytest.approx(1.2)


async def test_an_upstream_echoing_the_token_in_its_errors_never_shows_it(
        tmp_path: Path) -> None:
    leak = {"errors": [{"message": "token tok-s3cret-1 is not valid here",
                        "extensions": {"code": "FORBIDDEN"}}],
            "data": {"echo": "a"}}
    body = json.dumps(leak).encode()
    upstream = GraphQLUpstream(raw=[(200, body, "application/json"),
                                    (200, json.dumps({"errors": leak["errors"]}).encode(),
                                     "application/json")])
    async with graphql_patchwire(tmp_path, upstream) as pw:
        partial = await pw.call("gh.echo", {"text": "a"})
        with pytest.raises(AuthError) as caught:
            await pw.call("gh.echo", {"text": "a"})
    assert "tok-s3cret-1" not in json.dumps(partial)
    assert "tok-s3cret-1" not in str(caught.value)
    assert "tok-s3cret-1" not in json.dumps(caught.value.to_dict())
