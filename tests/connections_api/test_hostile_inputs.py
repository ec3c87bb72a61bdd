"""Hostile and careless inputs to the connections API get typed 4xx problems saying what
is wrong, never a 500, and nothing is stored."""

from __future__ import annotations

from typing import Any

from tests.support.api import PROBLEM, Api
from tests.support.connections import send

PAGE = "/api/v1/connections"


async def refused(api: Api, method: str, path: str, status: int,
                  **kwargs: Any) -> dict[str, Any]:
    async with api.http.request(method, api.at(path), **kwargs) as resp:
        text = await resp.text()
        assert resp.status == status, text
        assert resp.content_type == PROBLEM, text
        body: dict[str, Any] = await resp.json(content_type=None)
    return body


async def test_a_line_break_in_a_header_bound_setting_is_a_422_not_a_500(api: Api) -> None:
    for value in ("k\r\nX-Evil: 1", "k\n", "k\x00"):
        body = await refused(api, "POST", PAGE, 422, json={
            "connector": "shop", "name": "crlf",
            "settings": {"sandbox_url": api.sandbox.url, "api_key": value}})
        assert "line break" in body["detail"]
        assert body["problems"][0]["path"] == "$.settings"
        await refused(api, "PATCH", f"{PAGE}/acme", 422,
                      json={"settings": {"api_key": value}})
    status, _, _ = await send(api, "GET", f"{PAGE}/crlf")
    assert status == 404


async def test_settings_the_connector_does_not_have_or_lacks_are_422(api: Api) -> None:
    body = await refused(api, "POST", PAGE, 422, json={
        "connector": "shop", "settings": {"sandbox_url": api.sandbox.url, "api_key": "k",
                                          "nope": 1}})
    assert "'nope'" in body["detail"]
    body = await refused(api, "POST", PAGE, 422, json={
        "connector": "shop", "settings": {"sandbox_url": api.sandbox.url}})
    assert "'api_key'" in body["detail"]
    await refused(api, "POST", PAGE, 422, json={
        "connector": "shop", "settings": {"sandbox_url": "file:///etc/passwd",
                                          "api_key": "k"}})


async def test_an_unknown_connector_is_a_404_naming_it(api: Api) -> None:
    body = await refused(api, "POST", PAGE, 404, json={"connector": "nope", "settings": {}})
    assert "nope" in body["detail"]


async def test_a_huge_body_is_refused_before_it_is_stored(api: Api) -> None:
    huge = "x" * (300 * 1024)
    await refused(api, "POST", PAGE, 413, json={
        "connector": "shop", "settings": {"sandbox_url": api.sandbox.url, "api_key": huge}})
    big = "x" * (100 * 1024)  # under the body's bound, over the settings'
    await refused(api, "POST", PAGE, 413, json={
        "connector": "shop", "settings": {"sandbox_url": api.sandbox.url, "api_key": big}})
    _, listed, _ = await send(api, "GET", PAGE)
    assert [c["name"] for c in listed] == ["acme", "u1-shop", "u2-shop"]


async def test_bad_names_end_users_labels_and_fields_are_422(api: Api) -> None:
    base = {"connector": "shop", "settings": {"sandbox_url": api.sandbox.url,
                                              "api_key": "k"}}
    for extra in ({"name": "../etc"}, {"name": "a b"}, {"name": "x" * 101},
                  {"end_user": " u1"}, {"end_user": "u\x00"}, {"end_user": "u" * 201},
                  {"label": "a\nb"}, {"owner": "u1"}, {"settings": "k"},
                  {"settings": {str(i): i for i in range(201)}}):
        await refused(api, "POST", PAGE, 422, json={**base, **extra})
    await refused(api, "POST", PAGE, 422, data=b"{not json",
                  headers={"Content-Type": "application/json"})


async def test_a_connection_cannot_be_moved_to_another_end_user(api: Api) -> None:
    body = await refused(api, "PATCH", f"{PAGE}/u1-shop", 422, json={"end_user": "u2"})
    assert body["problems"][0]["path"] == "$.end_user"
    await refused(api, "PATCH", f"{PAGE}/u1-shop", 422, json={"is_default": False})
    _, shop, _ = await send(api, "GET", f"{PAGE}/u1-shop")
    assert shop["end_user"] == "u1"


async def test_a_name_taken_is_a_409(api: Api) -> None:
    await refused(api, "POST", PAGE, 409, json={
        "connector": "shop", "name": "acme",
        "settings": {"sandbox_url": api.sandbox.url, "api_key": "k"}})
