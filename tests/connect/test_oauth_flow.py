"""OAuth2 behind a connect link, against the sandbox's authorization server over real HTTP:
authorization code + PKCE + state, the deployment's OAuth app as the client, the tokens
stored encrypted with the end user's connection."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from patchwire.connect import OAuthApps
from patchwire.store import Store
from tests.support.connect import CLIENT_ID, CLIENT_SECRET, Site


async def with_app(site: Site) -> None:
    await site.pw.open()
    await OAuthApps(site.pw.runtime).set("oauthy", client_id=CLIENT_ID,
                                         client_secret=CLIENT_SECRET, scopes=["profile"])


async def consent(site: Site, link_url: str) -> str:
    """Open the connector's page and the provider's (auto-approving) consent: the URL the
    provider sends the browser back to."""
    status, html, headers = await site.page(f"{link_url}/oauthy")
    assert status == 302, html
    authorize = headers["Location"]
    assert authorize.startswith(f"{site.sandbox.url}/oauth/authorize?")
    status, html, headers = await site.page(authorize)
    assert status == 302, html
    back = headers["Location"]
    assert back.startswith(f"{site.url}/oauth/callback?")
    return back


async def test_the_authorize_url_asks_for_pkce_and_state_with_the_public_redirect_uri(
        site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    _, _, headers = await site.page(f"{link['url']}/oauthy")
    query = {k: v[0] for k, v in parse_qs(urlsplit(headers["Location"]).query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32
    assert query["redirect_uri"] == f"{site.url}/oauth/callback"
    assert query["scope"] == "profile"


async def test_signing_in_connects_the_end_user_with_tokens_stored_encrypted(
        site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    status, html, _ = await site.page(await consent(site, link["url"]))
    assert status == 200, html
    assert "Connected — you can return to the chat" in html
    [conn] = await site.pw.list_connections(end_user="u5")
    assert conn.connector == "oauthy" and conn.is_default
    # the end user's call works, with the token the code was traded for (PKCE passed:
    # the sandbox refuses an exchange whose verifier does not match the challenge)
    me = await site.pw.call("oauthy.me", end_user="u5")
    assert me["client_id"] == CLIENT_ID
    record = await site.pw.store.get_connection(conn.name)
    stored = site.pw.runtime.decrypt(record)
    access, refresh = stored["access_token"], stored["refresh_token"]
    assert access.startswith("at_") and refresh.startswith("rt_")
    async with await Store.open(site.database_url) as store, store.engine.connect() as db:
        rows = str((await db.execute(sa.text("SELECT * FROM connections"))).all())
        sessions = str((await db.execute(sa.text("SELECT * FROM connect_sessions"))).all())
        apps = str((await db.execute(sa.text("SELECT * FROM oauth_apps"))).all())
    # the tokens themselves (their 3-letter prefixes can occur in random ciphertext)
    assert access not in rows and refresh not in rows
    assert link["token"] not in sessions
    assert CLIENT_SECRET not in apps
    async with site.http.get(site.at(f"/api/v1/connect-sessions/{link['token']}")) as resp:
        assert (await resp.json())["status"] == "connected"


async def test_a_replayed_callback_is_refused_and_connects_nothing_more(site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    back = await consent(site, link["url"])
    assert (await site.page(back))[0] == 200
    status, html, _ = await site.page(back)
    assert status == 400, html
    assert "does not belong to a connect link in progress" in html
    assert len(await site.pw.list_connections(end_user="u5")) == 1


async def test_a_forged_or_missing_state_is_refused(site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    back = await consent(site, link["url"])
    query = parse_qs(urlsplit(back).query)
    for forged in (f"?code={query['code'][0]}&state=forged-state",
                   f"?code={query['code'][0]}", "", "?state=" + "s" * 5000):
        status, html, _ = await site.page(site.at(f"/oauth/callback{forged}"))
        assert status == 400, html
        assert "Traceback" not in html
    assert await site.pw.list_connections(end_user="u5") == []
    # the real answer still works: a forged one did not use the link up
    assert (await site.page(back))[0] == 200


async def test_a_refusal_at_the_provider_is_shown_and_the_link_stays_usable(
        site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    back = await consent(site, link["url"])
    state = parse_qs(urlsplit(back).query)["state"][0]
    status, html, _ = await site.page(site.at(
        f"/oauth/callback?error=access_denied&state={state}"))
    assert status == 502, html
    assert "access_denied" in html
    assert await site.pw.list_connections(end_user="u5") == []
    back = await consent(site, link["url"])  # try again
    assert (await site.page(back))[0] == 200


async def test_without_an_oauth_app_the_page_says_it_is_not_set_up(site: Site) -> None:
    link = await site.link(end_user="u5", connectors=("oauthy",))
    status, html, _ = await site.page(f"{link['url']}/oauthy")
    assert status == 503, html
    assert "not been set up" in html


async def test_reconnecting_replaces_the_tokens_of_the_same_connection(site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    await site.page(await consent(site, link["url"]))
    [conn] = await site.pw.list_connections(end_user="u5")
    before = site.pw.runtime.decrypt(await site.pw.store.get_connection(conn.name))
    again = await site.link(end_user="u5", connectors=(), connection=conn.name)
    status, html, _ = await site.page(await consent(site, again["url"]))
    assert status == 200, html
    [after] = await site.pw.list_connections(end_user="u5")
    assert after.name == conn.name
    tokens = site.pw.runtime.decrypt(await site.pw.store.get_connection(conn.name))
    assert tokens["access_token"] != before["access_token"]
    assert await site.pw.call("oauthy.me", end_user="u5")


async def test_the_return_url_gets_the_browser_back_after_signing_in(site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",),
                           return_url="http://127.0.0.1:9/done")
    status, _, headers = await site.page(await consent(site, link["url"]))
    assert status == 302
    assert headers["Location"] == "http://127.0.0.1:9/done"


async def test_the_token_keeper_renews_with_the_oauth_app_when_the_connection_has_no_client(
        site: Site) -> None:
    await with_app(site)
    link = await site.link(end_user="u5", connectors=("oauthy",))
    await site.page(await consent(site, link["url"]))
    [conn] = await site.pw.list_connections(end_user="u5")
    before = site.pw.runtime.decrypt(await site.pw.store.get_connection(conn.name))
    assert "client_id" not in conn.settings and "client_secret" not in before
    fresh = await site.pw.runtime.tokens.refresh(conn.name)
    assert fresh.access_token != before["access_token"]
    assert site.sandbox.state.oauth.stats.refreshes == 1
