"""``POST /api/v1/connections/{name}/test``: the connector's test call (one cheap read)
proves a connection's credentials over the API, as ``patchwire connection test`` does; a
refused key is a problem naming the refusal, never the key. Against the sandbox on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from patchwire import Patchwire
from tests.support.access import full_app, scope_of
from tests.support.api import Api
from tests.support.leaks import leaks_in, new_canary

PROBLEM = "application/problem+json"


async def post_test(api: Api, name: str) -> tuple[int, str, Any]:
    async with api.http.post(api.at(f"/api/v1/connections/{name}/test")) as resp:
        return resp.status, resp.content_type, await resp.json(content_type=None)


async def test_a_connection_with_good_credentials_answers_ok_with_the_test_call(
        api: Api) -> None:
    status, _, body = await post_test(api, "acme")

    assert status == 200, body
    assert body["ok"] is True and body["action"] == "shop.list_orders"
    assert body["status"] == 200 and body["elapsed_ms"] >= 0
    assert set(body) == {"ok", "action", "status", "elapsed_ms"}


async def test_a_refused_key_is_a_424_problem_that_never_shows_the_key(api: Api) -> None:
    wrong = new_canary("wrongkey")
    async with Patchwire(api.settings) as admin:
        await admin.add_connection("shop", "wrong",
                                   {"sandbox_url": api.sandbox.url, "api_key": wrong})

    status, content_type, body = await post_test(api, "wrong")

    assert status == 424, body
    assert content_type == PROBLEM
    assert body["type"].endswith("/auth_error") and body["upstream_status"] == 401
    assert body["action"] == "shop.list_orders" and body["connection"] == "wrong"
    assert "HTTP 401" in body["detail"]
    for secret in (wrong, api.canary):
        assert leaks_in(str(body), secret) == [], secret


async def test_an_unknown_connection_is_a_404_problem(api: Api) -> None:
    status, content_type, body = await post_test(api, "nope")

    assert status == 404 and content_type == PROBLEM, body
    assert "'nope'" in body["detail"]


def test_testing_a_connection_needs_the_run_scope(tmp_path: Path) -> None:
    assert scope_of(full_app(tmp_path), "POST", "/api/v1/connections/acme/test") == "run"
