"""The call request: one object says everything about a call — its idempotency key, the
page it reads — and the call path validates its arguments once, whoever calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patchwire import InputValidationError, PaginationError, Patchwire
from patchwire.calls import CallRequest, CompiledAction, PageCursor
from patchwire.errors import CallContext
from patchwire.tools import ToolInvoker
from tests.support.upstream import patchwire_serving

CONNECTOR = """
name: ledger
base_url: "{url}"
settings: {url: {}}
auth: {type: none}
retry: {attempts: 1, idempotency_header: Idempotency-Key}
actions:
  get_entry:
    input: {type: object, properties: {id: {type: string}}, required: [id],
            additionalProperties: false}
    request: {path: "/entries/{id}"}
    tool: {description: One ledger entry.}
  add_entry:
    input: {type: object, properties: {amount: {type: integer}, key: {type: string}},
            required: [amount]}
    request: {method: POST, path: /entries, headers: {Idempotency-Key: "{key}"},
              body: {amount: "{amount}"}}
  list_entries:
    input: {type: object, properties: {limit: {type: integer}}}
    request: {path: /entries, query: {limit: "{limit}"}}
    pagination: {style: cursor, next_cursor: next, items: entries, cursor_param: after,
                 limit_param: limit, page_size: 10}
"""


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, list[web.Request]]]:
    seen: list[web.Request] = []

    async def entry(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"id": request.match_info["id"]})

    async def add(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"added": (await request.json())["amount"]}, status=201)

    async def listing(request: web.Request) -> web.Response:
        seen.append(request)
        after = request.query.get("after")
        return web.json_response({"entries": [{"after": after}],
                                  "next": None if after else "c-2"})

    app = web.Application()
    app.router.add_get("/entries/{id}", entry)
    app.router.add_post("/entries", add)
    app.router.add_get("/entries", listing)
    async with patchwire_serving(tmp_path, app, CONNECTOR) as pw:
        yield pw, seen


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every validation of a call's arguments, by action (counted where the call path
    checks them)."""
    counted: list[str] = []
    check = CompiledAction.validate

    def counting(self: CompiledAction, arguments: Any, context: CallContext) -> None:
        counted.append(self.qualified)
        check(self, arguments, context)

    monkeypatch.setattr(CompiledAction, "validate", counting)
    return counted


async def test_a_call_request_with_an_explicit_idempotency_key_reaches_the_upstream_header(
        ledger: tuple[Patchwire, list[web.Request]]) -> None:
    pw, seen = ledger
    outcome = await pw.calls.execute(CallRequest(
        "ledger.add_entry", {"amount": 5}, "main", idempotency_key="run-1:charge"))
    assert outcome.result == {"added": 5}
    assert seen[-1].headers["Idempotency-Key"] == "run-1:charge"


async def test_an_idempotency_key_the_arguments_set_wins_over_the_requests(
        ledger: tuple[Patchwire, list[web.Request]]) -> None:
    pw, seen = ledger
    await pw.calls.execute(CallRequest("ledger.add_entry", {"amount": 5, "key": "mine"},
                                       "main", idempotency_key="run-1:charge"))
    assert seen[-1].headers["Idempotency-Key"] == "mine"


async def test_an_idempotent_action_is_sent_without_the_idempotency_key(
        ledger: tuple[Patchwire, list[web.Request]]) -> None:
    pw, seen = ledger
    await pw.calls.execute(CallRequest("ledger.get_entry", {"id": "1"}, "main",
                                       idempotency_key="run-1:read"))
    assert "Idempotency-Key" not in seen[-1].headers


async def test_a_page_cursor_sets_its_parameters_and_keeps_the_page_size_the_call_asks(
        ledger: tuple[Patchwire, list[web.Request]]) -> None:
    pw, seen = ledger
    await pw.calls.execute(CallRequest("ledger.list_entries", {}, "main", page=PageCursor(
        {"after": "c-2"}, page_size=("limit", 10))))
    assert (seen[-1].query["after"], seen[-1].query["limit"]) == ("c-2", "10")
    await pw.calls.execute(CallRequest("ledger.list_entries", {"limit": 3}, "main",
                                       page=PageCursor(page_size=("limit", 10))))
    assert seen[-1].query["limit"] == "3"


async def test_a_page_cursor_to_another_origin_is_refused_and_the_refusal_is_logged(
        ledger: tuple[Patchwire, list[web.Request]]) -> None:
    pw, seen = ledger
    with pytest.raises(PaginationError, match="another origin"):
        await pw.calls.execute(CallRequest("ledger.list_entries", {}, "main", page=PageCursor(
            url="http://127.0.0.2:9/entries?after=x")))
    assert seen == []
    (record,) = await pw.recent_calls()
    assert (record.status, record.error_class) == ("error", "pagination_error")


async def test_a_call_validates_its_arguments_once(
        ledger: tuple[Patchwire, list[web.Request]], validations: list[str]) -> None:
    pw, _ = ledger
    await pw.call("ledger.get_entry", {"id": "1"}, connection="main")
    assert validations == ["ledger.get_entry"]


async def test_a_tool_call_validates_its_arguments_once_before_its_approval_gate(
        ledger: tuple[Patchwire, list[web.Request]], validations: list[str]) -> None:
    pw, seen = ledger
    result = await ToolInvoker(pw).invoke("ledger_get_entry", {"id": "1"})
    assert result.status == "ok", result.text
    assert validations == ["ledger.get_entry"]
    assert len(seen) == 1


async def test_a_validated_call_request_is_sent_without_checking_it_again(
        ledger: tuple[Patchwire, list[web.Request]], validations: list[str]) -> None:
    pw, seen = ledger
    call = pw.calls.validate(CallRequest("ledger.get_entry", {"id": "2"}, "main"))
    outcome = await pw.calls.execute(call)
    assert outcome.result == {"id": "2"} and validations == ["ledger.get_entry"]
    with pytest.raises(InputValidationError) as refused:
        pw.calls.validate(CallRequest("ledger.get_entry", {"id": 2}, "main"))
    assert refused.value.problems[0].path == "$.id"
    # refused before the call: nothing reached the upstream, nothing reached the call log
    assert len(seen) == 1 and len(await pw.recent_calls()) == 1


async def test_every_page_of_a_listing_is_validated_once(
        ledger: tuple[Patchwire, list[web.Request]], validations: list[str]) -> None:
    pw, seen = ledger
    records = await pw.call("ledger.list_entries", {}, connection="main", paginate=True)
    assert records == [{"after": None}, {"after": "c-2"}]
    assert validations == ["ledger.list_entries"]
    assert [r.query.get("after") for r in seen] == [None, "c-2"]
    assert {r.query["limit"] for r in seen} == {"10"}
