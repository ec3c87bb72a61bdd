"""``/api/v1/connections`` over REST: create, list, read, change, remove and test, with
what a person needs to judge a connection (health, token status, last success, last error
class) and never a secret value, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from patchwire.sandbox import Sandbox
from tests.support.api import Api
from tests.support.connections import operator_key, send
from tests.support.leaks import leaks_in, leaks_in_database, new_canary

#: the longest wait for the call log's batches to reach the store (a bound, not a figure)
BOUND = 10.0

PAGE = "/api/v1/connections"


async def create(api: Api, **body: Any) -> dict[str, Any]:
    status, created, _ = await send(api, "POST", PAGE, json=body)
    assert status == 201, created
    return dict(created)


async def test_a_connection_is_created_read_changed_listed_and_removed_over_rest(
        api: Api, store_url: str) -> None:
    key = new_canary("newkey")
    bodies: list[bytes] = []
    created = await create(api, connector="shop", name="u3-work", end_user="u3",
                           label="work", settings={"sandbox_url": api.sandbox.url,
                                                   "api_key": key})
    assert (created["name"], created["end_user"], created["label"]) == ("u3-work", "u3",
                                                                       "work")
    assert created["secrets_set"] == ["api_key"]
    assert created["settings"] == {"sandbox_url": api.sandbox.url}
    assert created["health"] == "healthy" and created["needs_reauth"] is False
    assert created["token"] is None  # an API-key connector has no token to show

    status, one, raw = await send(api, "GET", f"{PAGE}/u3-work")
    assert status == 200 and one == created
    bodies.append(raw)

    status, changed, raw = await send(api, "PATCH", f"{PAGE}/u3-work",
                                      json={"label": "personal", "is_default": True})
    assert status == 200, changed
    assert (changed["label"], changed["is_default"]) == ("personal", True)
    bodies.append(raw)

    status, listed, raw = await send(api, "GET", f"{PAGE}?end_user=u3")
    assert status == 200 and [c["name"] for c in listed] == ["u3-work"]
    bodies.append(raw)
    status, page, _ = await send(api, "GET", f"{PAGE}?limit=2")
    assert [c["name"] for c in page] == ["acme", "u1-shop"]
    status, page, _ = await send(api, "GET", f"{PAGE}?limit=2&after=u1-shop")
    assert [c["name"] for c in page] == ["u2-shop", "u3-work"]

    status, _, raw = await send(api, "DELETE", f"{PAGE}/u3-work")
    assert status == 204 and raw == b""
    status, _, _ = await send(api, "GET", f"{PAGE}/u3-work")
    assert status == 404
    for raw in bodies:
        assert leaks_in(raw, key) == []


async def test_a_name_is_made_up_when_none_is_given(api: Api) -> None:
    created = await create(api, connector="shop", end_user="u9",
                           settings={"sandbox_url": api.sandbox.url, "api_key": "k"})
    assert created["name"].startswith("shop-") and len(created["name"]) == 13


async def test_last_success_and_last_error_class_come_from_the_call_log(
        api: Api, sandbox: Sandbox) -> None:
    status, body, _ = await send(api, "POST", f"{PAGE}/acme/test")
    assert status == 200, body
    wrong = new_canary("wrongkey")
    await create(api, connector="shop", name="wrong",
                 settings={"sandbox_url": sandbox.url, "api_key": wrong})
    status, body, _ = await send(api, "POST", f"{PAGE}/wrong/test")
    assert status == 424, body
    async with api.http.post(api.at("/api/v1/actions/shop.get_order/call"),
                             json={"input": {"order_id": "no-such"}, "connection": "acme"}
                             ) as resp:
        assert resp.status == 424  # a 404 upstream: the request's fault, not the key's

    # the call log is written in batches (every 0.25 s): read until every record asserted
    # below is there, bounded in time, not in rounds (a loaded machine may do 100 rounds
    # before one batch is written)
    async with asyncio.timeout(BOUND):
        while True:
            _, acme, _ = await send(api, "GET", f"{PAGE}/acme")
            _, bad, _ = await send(api, "GET", f"{PAGE}/wrong")
            if (acme["last_success_at"] and acme["last_error_class"]
                    and bad["last_error_class"]):
                break
            await api.http.get(api.at("/healthz"))
    assert acme["last_success_at"] is not None
    assert acme["last_error_class"] == "not_found"
    assert bad["last_success_at"] is None and bad["last_error_class"] == "auth_error"
    _, listed, _ = await send(api, "GET", PAGE)
    by_name = {c["name"]: c for c in listed}
    assert by_name["acme"] == acme and by_name["wrong"] == bad


async def test_test_true_saves_nothing_when_the_credentials_are_refused(api: Api) -> None:
    wrong = new_canary("wrongkey")
    status, body, raw = await send(api, "POST", PAGE, json={
        "connector": "shop", "name": "tried", "test": True,
        "settings": {"sandbox_url": api.sandbox.url, "api_key": wrong}})
    assert status == 424, body
    assert body["type"].endswith("/auth_error")
    assert leaks_in(raw, wrong) == []
    status, _, _ = await send(api, "GET", f"{PAGE}/tried")
    assert status == 404

    status, body, _ = await send(api, "POST", PAGE, json={
        "connector": "shop", "name": "tried", "test": True,
        "settings": {"sandbox_url": api.sandbox.url, "api_key": api.canary}})
    assert status == 201, body


async def test_no_answer_and_no_row_holds_a_secret_in_any_encoding(
        api: Api, store_url: str) -> None:
    key = new_canary("apikey")
    raws = []
    for method, path, body, expected in [
            ("POST", PAGE, {"connector": "shop", "name": "leaky", "end_user": "u5",
                            "settings": {"sandbox_url": api.sandbox.url, "api_key": key}},
             201),
            ("PATCH", f"{PAGE}/leaky", {"settings": {"api_key": key + "2"}}, 200),
            ("GET", f"{PAGE}/leaky", None, 200), ("GET", PAGE, None, 200),
            ("POST", f"{PAGE}/leaky/test", None, 424),  # the shop takes only the canary
            ("POST", PAGE, {"connector": "shop", "name": "leaky",
                            "settings": {"sandbox_url": api.sandbox.url, "api_key": key}},
             409),
            ("POST", PAGE, {"connector": "shop", "name": "bad",
                            "settings": {"sandbox_url": api.sandbox.url,
                                         "api_key": key + "\r\nX-Evil: 1"}}, 422)]:
        status, _, raw = await send(api, method, path, json=body)
        assert status == expected, (method, path, raw)
        raws.append(raw)
    for raw in raws:
        for secret in (key, api.canary):
            assert leaks_in(raw, secret) == [], raw
    assert await leaks_in_database(store_url, key) == {}


async def test_creating_changing_and_removing_needs_an_admin_key(api: Api) -> None:
    admin = await operator_key(api, "admin")
    runner = await operator_key(api, "run")
    reader = await operator_key(api, "read")
    body = {"connector": "shop", "settings": {"sandbox_url": api.sandbox.url,
                                              "api_key": "k"}}
    for key in (runner, reader):
        status, _, _ = await send(api, "POST", PAGE, token=key, json=body)
        assert status == 403
        status, _, _ = await send(api, "PATCH", f"{PAGE}/acme", token=key,
                                  json={"label": "x"})
        assert status == 403
        status, _, _ = await send(api, "DELETE", f"{PAGE}/acme", token=key)
        assert status == 403
    status, _, _ = await send(api, "GET", f"{PAGE}/acme", token=reader)
    assert status == 200
    status, _, _ = await send(api, "POST", PAGE, token=admin, json=body)
    assert status == 201
    status, _, _ = await send(api, "DELETE", f"{PAGE}/acme", token=admin)
    assert status == 204
