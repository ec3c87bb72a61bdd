"""End-user tokens: a platform's backend asks for one per end user; the token reaches only
the routes that serve end users, and only what is that end user's; anything else does not
exist for it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from patchwire.store import Store
from patchwire.store.keys import KeyRepository
from tests.support.api import Api, problem_of


async def token_for(api: Api, end_user: str, **body: Any) -> dict[str, Any]:
    async with api.http.post(api.at(f"/api/v1/end-users/{end_user}/tokens"),
                             json=body or None) as resp:
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()
    return created


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_is_shown_once_and_only_its_digest_is_stored(api: Api) -> None:
    created = await token_for(api, "user:1", ttl_seconds=600)
    assert created["token"].startswith(f"pwu_{created['id']}_")
    assert created["end_user"] == "user:1"
    async with api.http.get(api.at("/api/v1/end-users/user:1/tokens")) as resp:
        listed = await resp.json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert created["token"] not in str(listed)
    secret = created["token"].rsplit("_", 1)[1]
    async with (await Store.open(api.settings.database_url) as store,
                store.engine.connect() as conn):
        dump = str((await conn.execute(sa.text("SELECT * FROM end_user_tokens"))).all())
    assert secret not in dump


async def test_an_end_user_token_lists_only_that_end_users_connections(api: Api) -> None:
    token = (await token_for(api, "u1"))["token"]
    async with api.http.get(api.at("/api/v1/connections"), headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()
        names = [c["name"] for c in await resp.json()]
    assert names == ["u1-shop"]


async def test_routes_that_do_not_serve_end_users_do_not_exist_for_their_tokens(
        api: Api) -> None:
    token = (await token_for(api, "u1"))["token"]
    for method, path in [("GET", "/api/v1/keys"), ("GET", "/api/v1/connectors"),
                         ("GET", "/metrics"), ("POST", "/api/v1/end-users/u1/tokens"),
                         ("GET", "/api/v1/webhooks/inbox"), ("GET", "/api/v1/no-such"),
                         ("POST", "/api/v1/definitions/reload")]:
        async with api.http.request(method, api.at(path), headers=bearer(token)) as resp:
            body = await problem_of(resp, 404)
        assert "u2" not in str(body)


async def test_a_revoked_or_forged_token_is_refused_as_invalid(api: Api) -> None:
    created = await token_for(api, "u1")
    async with api.http.post(api.at(f"/api/v1/end-users/u1/tokens/{created['id']}/revoke")
                             ) as resp:
        assert resp.status == 200 and (await resp.json())["revoked_at"]
    forged = created["token"][:-4] + "AAAA"
    for token in (created["token"], forged, "pwu_0123456789abcdef_" + "x" * 43):
        async with api.http.get(api.at("/api/v1/connections"), headers=bearer(token)) as resp:
            body = await problem_of(resp, 401)
        assert created["token"] not in str(body)


async def test_an_end_user_cannot_revoke_another_end_users_token(api: Api) -> None:
    other = await token_for(api, "u2")
    async with api.http.post(api.at(f"/api/v1/end-users/u1/tokens/{other['id']}/revoke")
                             ) as resp:
        await problem_of(resp, 404)
    async with api.http.get(api.at("/api/v1/connections"),
                            headers=bearer(other["token"])) as resp:
        assert resp.status == 200


async def test_a_hostile_end_user_id_is_refused_with_what_is_wrong(api: Api) -> None:
    for bad in (" u1", "u1%0d%0aX-Evil:%201", "a" * 201, "u%00"):
        async with api.http.post(api.at(f"/api/v1/end-users/{bad}/tokens")) as resp:
            assert resp.status in (404, 422), await resp.text()
    async with api.http.post(api.at("/api/v1/end-users/u1/tokens"),
                             json={"ttl_seconds": 10**9}) as resp:
        await problem_of(resp, 422)


async def test_a_key_with_the_connect_scope_hands_out_tokens_and_a_read_key_cannot(
        api: Api) -> None:
    async with await Store.open(api.settings.database_url) as store:
        _, connect_key = await KeyRepository(store).create("platform", ["connect"])
        _, read_key = await KeyRepository(store).create("grafana", ["read"])
    async with api.http.post(api.at("/api/v1/end-users/u1/tokens"),
                             headers=bearer(read_key)) as resp:
        await problem_of(resp, 403)
    async with api.http.post(api.at("/api/v1/end-users/u1/tokens"),
                             headers=bearer(connect_key)) as resp:
        assert resp.status == 201
        assert (await resp.json())["end_user"] == "u1"
