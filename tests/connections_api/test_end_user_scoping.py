"""An end user's token on the connections API: their own connections only — listed,
read, relabelled, made default, tested and removed — and everyone else's do not exist
(404, never 403, and no name of theirs in any answer)."""

from __future__ import annotations

from patchwire import Patchwire
from tests.support.api import Api
from tests.support.connections import end_user_token, send

PAGE = "/api/v1/connections"


async def test_an_end_user_sees_reads_and_tests_only_their_own_connections(
        api: Api) -> None:
    token = await end_user_token(api, "u1")
    status, listed, _ = await send(api, "GET", PAGE, token=token)
    assert status == 200 and [c["name"] for c in listed] == ["u1-shop"]
    status, listed, _ = await send(api, "GET", f"{PAGE}?end_user=u2", token=token)
    assert status == 200 and listed == []
    status, one, _ = await send(api, "GET", f"{PAGE}/u1-shop", token=token)
    assert status == 200 and one["end_user"] == "u1"
    status, tested, _ = await send(api, "POST", f"{PAGE}/u1-shop/test", token=token)
    assert status == 200 and tested["ok"] is True
    for method, path, body in [("GET", f"{PAGE}/u2-shop", None),
                               ("GET", f"{PAGE}/acme", None),
                               ("POST", f"{PAGE}/u2-shop/test", None),
                               ("PATCH", f"{PAGE}/u2-shop", {"label": "mine"}),
                               ("DELETE", f"{PAGE}/u2-shop", None),
                               ("DELETE", f"{PAGE}/acme", None)]:
        status, problem, raw = await send(api, method, path, token=token, json=body)
        assert status == 404, (method, path, problem)
        assert b"u2" not in raw.replace(b"u2-shop", b"") and b"acme" not in raw.replace(
            b"'acme'", b"")
    status, other, _ = await send(api, "GET", f"{PAGE}/u2-shop")
    assert other["label"] is None  # untouched


async def test_an_end_user_relabels_picks_a_default_and_removes_their_own(
        api: Api) -> None:
    async with Patchwire(api.settings) as admin:
        await admin.add_connection("shop", "u1-work", {"sandbox_url": api.sandbox.url,
                                                       "api_key": api.canary},
                                   end_user="u1")
    token = await end_user_token(api, "u1")
    status, changed, _ = await send(api, "PATCH", f"{PAGE}/u1-work", token=token,
                                    json={"label": "work", "is_default": True})
    assert status == 200, changed
    assert (changed["label"], changed["is_default"]) == ("work", True)
    _, listed, _ = await send(api, "GET", PAGE, token=token)
    assert {c["name"]: c["is_default"] for c in listed} == {"u1-shop": False,
                                                             "u1-work": True}
    status, _, _ = await send(api, "DELETE", f"{PAGE}/u1-shop", token=token)
    assert status == 204
    _, listed, _ = await send(api, "GET", PAGE, token=token)
    assert [c["name"] for c in listed] == ["u1-work"]


async def test_an_end_user_cannot_change_credentials_create_or_move_a_connection(
        api: Api) -> None:
    token = await end_user_token(api, "u1")
    status, problem, _ = await send(api, "PATCH", f"{PAGE}/u1-shop", token=token,
                                    json={"settings": {"api_key": "stolen"}})
    assert status == 403, problem
    status, problem, _ = await send(api, "PATCH", f"{PAGE}/u1-shop", token=token,
                                    json={"end_user": "u2"})
    assert status == 422, problem
    status, _, _ = await send(api, "PATCH", f"{PAGE}/u2-shop", token=token,
                              json={"end_user": "u1"})
    assert status in (404, 422)
    status, _, _ = await send(api, "POST", PAGE, token=token, json={
        "connector": "shop", "end_user": "u1",
        "settings": {"sandbox_url": api.sandbox.url, "api_key": "k"}})
    assert status == 404  # creating is not an end user's route at all
    _, mine, _ = await send(api, "GET", f"{PAGE}/u1-shop")
    _, theirs, _ = await send(api, "GET", f"{PAGE}/u2-shop")
    assert (mine["end_user"], theirs["end_user"]) == ("u1", "u2")
