"""The REST side of connect links and OAuth apps: links for an end user (by a platform's
backend, or by the end user's own token), their status with a bounded long poll, and
OAuth apps whose secret is written, never read back."""

from __future__ import annotations

import asyncio

from tests.support.api import problem_of
from tests.support.connect import CLIENT_ID, CLIENT_SECRET, Site


async def test_a_link_is_created_for_an_end_user_and_reports_pending(site: Site) -> None:
    link = await site.link(end_user="user:42", connectors=("shop", "oauthy"))
    assert link["url"] == f"{site.url}/connect/{link['token']}"
    async with site.http.get(site.at(f"/api/v1/connect-sessions/{link['token']}")) as resp:
        body = await resp.json()
    assert body["status"] == "pending" and body["end_user"] == "user:42"
    assert body["connectors"] == ["shop", "oauthy"] and body["connection"] is None


async def test_an_unknown_connector_or_a_hostile_return_url_is_a_422_naming_it(
        site: Site) -> None:
    for body, where in (({"connectors": ["shop", "nosuch"]}, "nosuch"),
                        ({"connectors": ["shop"], "return_url": "javascript:alert(1)"},
                         "return_url"),
                        ({"connectors": ["shop"], "return_url": "data:text/html,x"},
                         "return_url"),
                        ({"connectors": []}, "connectors")):
        async with site.http.post(site.at("/api/v1/connect-sessions"),
                                  json={"end_user": "u1", **body}) as resp:
            problem = await problem_of(resp, 422)
        assert where in problem["detail"]


async def test_the_long_poll_returns_when_the_end_user_connects(site: Site) -> None:
    link = await site.link()

    async def poll() -> dict[str, object]:
        async with site.http.get(site.at(f"/api/v1/connect-sessions/{link['token']}"),
                                 params={"wait": "30"}) as resp:
            assert resp.status == 200
            body: dict[str, object] = await resp.json()
            return body

    waiting = asyncio.create_task(poll())
    status, _, _ = await site.post_form(f"{link['url']}/shop", {"api_key": site.canary})
    assert status == 200
    async with asyncio.timeout(8):  # woken by the page, well within the 30 s bound
        body = await waiting
    assert body["status"] == "connected"


async def test_a_wait_beyond_the_bound_is_refused(site: Site) -> None:
    link = await site.link()
    async with site.http.get(site.at(f"/api/v1/connect-sessions/{link['token']}"),
                             params={"wait": "31"}) as resp:
        await problem_of(resp, 422)
    async with site.http.get(site.at("/api/v1/connect-sessions/" + "x" * 43)) as resp:
        await problem_of(resp, 404)


async def test_an_end_users_token_makes_links_for_itself_only(site: Site) -> None:
    async def token_of(end_user: str) -> str:
        async with site.http.post(site.at(f"/api/v1/end-users/{end_user}/tokens")) as resp:
            assert resp.status == 201
            text: str = (await resp.json())["token"]
            return text

    mine = {"Authorization": f"Bearer {await token_of('u1')}"}
    theirs = {"Authorization": f"Bearer {await token_of('u2')}"}
    async with site.http.post(site.at("/api/v1/me/connect-sessions"), headers=mine,
                              json={"connectors": ["shop"]}) as resp:
        assert resp.status == 201, await resp.text()
        token = (await resp.json())["token"]
    async with site.http.get(site.at(f"/api/v1/me/connect-sessions/{token}"),
                             headers=mine) as resp:
        assert (await resp.json())["end_user"] == "u1"
    async with site.http.get(site.at(f"/api/v1/me/connect-sessions/{token}"),
                             headers=theirs) as resp:
        await problem_of(resp, 404)
    # the operator's route is not an end user's
    async with site.http.post(site.at("/api/v1/connect-sessions"), headers=mine,
                              json={"end_user": "u2", "connectors": ["shop"]}) as resp:
        assert resp.status == 404
    async with site.http.post(site.at("/api/v1/me/connect-sessions"),
                              json={"connectors": ["shop"]}) as resp:
        await problem_of(resp, 422)  # an operator has no end user of its own


async def test_an_oauth_app_is_set_listed_and_removed_never_showing_its_secret(
        site: Site) -> None:
    url = site.at("/api/v1/oauth-apps/oauthy")
    async with site.http.put(url, json={"client_id": CLIENT_ID,
                                        "client_secret": CLIENT_SECRET,
                                        "scopes": ["profile", "email"]}) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    assert CLIENT_SECRET not in text
    for path in ("/api/v1/oauth-apps/oauthy", "/api/v1/oauth-apps"):
        async with site.http.get(site.at(path)) as resp:
            text = await resp.text()
        assert CLIENT_ID in text and CLIENT_SECRET not in text
        assert '"client_secret_set":true' in text.replace(" ", "")
    async with site.http.delete(url) as resp:
        assert resp.status == 204
    async with site.http.get(url) as resp:
        await problem_of(resp, 404)


async def test_an_oauth_app_for_a_connector_without_oauth2_or_unknown_is_refused(
        site: Site) -> None:
    body = {"client_id": "id", "client_secret": "secret"}
    async with site.http.put(site.at("/api/v1/oauth-apps/shop"), json=body) as resp:
        await problem_of(resp, 400)
    async with site.http.put(site.at("/api/v1/oauth-apps/nosuch"), json=body) as resp:
        await problem_of(resp, 404)
    async with site.http.put(site.at("/api/v1/oauth-apps/oauthy"),
                             json={**body, "client_id": "a\r\nb"}) as resp:
        await problem_of(resp, 422)
