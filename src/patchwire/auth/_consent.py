"""The authorization-code flow for a person at a terminal: a one-shot loopback listener.

RFC 8252 (OAuth for native apps): the redirect goes to ``http://127.0.0.1:<port>/callback``
on this machine, so no server has to be reachable from the provider. The listener accepts
exactly one answer whose ``state`` matches, then closes. Settings the connector takes from
the callback's query (``settings_from_callback``: QuickBooks' realmId) are checked there,
fill the token request's URL if it names them, and come back with the tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import html
from collections.abc import Callable

from aiohttp import web

from patchwire.auth._pkce import PkcePair
from patchwire.auth._tokens import TokenSet
from patchwire.auth.oauth2 import OAuth2Client, new_authorization
from patchwire.errors import OAuthError

__all__ = ["DEFAULT_CONSENT_TIMEOUT", "consent_via_loopback"]

DEFAULT_CONSENT_TIMEOUT = 300.0
_DONE_PAGE = ("<!doctype html><title>Patchwire</title><p>Patchwire is connected. "
              "You can close this window.</p>")
_FAILED_PAGE = "<!doctype html><title>Patchwire</title><p>Authorization failed: {}</p>"


async def consent_via_loopback(
    client: OAuth2Client,
    *,
    on_url: Callable[[str], None],
    port: int = 0,
    consent_timeout: float = DEFAULT_CONSENT_TIMEOUT,
    connection: str | None = None,
) -> TokenSet:
    """Show the authorize URL (``on_url``), wait for the redirect, exchange the code."""
    answer: asyncio.Future[tuple[str, dict[str, str]]] = (
        asyncio.get_running_loop().create_future())
    expected_state: list[str] = []

    async def callback(request: web.Request) -> web.Response:
        q = request.query
        state = q.get("state", "")
        # A request without our state (a stray browser tab, a forged link) is ignored.
        if not expected_state or not hmac.compare_digest(state, expected_state[0]):
            return web.Response(status=400, text="unexpected state")
        if not answer.done():
            if "error" in q:
                answer.set_exception(OAuthError(
                    f"the provider refused authorization: {q.get('error')}"
                    + (f" ({q['error_description']})" if "error_description" in q else ""),
                    error=q.get("error", "access_denied"), connection=connection))
            elif "code" in q:
                try:
                    # a forged or hostile value (a shop of "evil.com") fails here, shown
                    learned = client.callback_settings(q)
                except OAuthError as exc:
                    answer.set_exception(exc)
                else:
                    answer.set_result((q["code"], learned))
            else:
                return web.Response(status=400, text="no code in the redirect")
        failed = answer.done() and answer.exception() is not None
        reason = q.get("error", "invalid_setting" if failed else "")
        return web.Response(
            text=_FAILED_PAGE.format(html.escape(reason[:64])) if failed else _DONE_PAGE,
            content_type="text/html")

    app = web.Application()
    app.router.add_get("/callback", callback)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        redirect_uri = f"http://127.0.0.1:{bound}/callback"
        url, state, pkce = new_authorization(client, redirect_uri)
        expected_state.append(state)
        on_url(url)
        try:
            code, learned = await asyncio.wait_for(answer, consent_timeout)
        except TimeoutError:
            raise OAuthError(f"no authorization arrived within {consent_timeout:g} s",
                             error="timeout", connection=connection) from None
        exchanging = client.with_values(learned) if learned else client
        tokens = await exchanging.exchange_code(code, redirect_uri=redirect_uri,
                                                code_verifier=_verifier(pkce))
        if not learned:
            return tokens
        return dataclasses.replace(tokens, settings={**learned, **tokens.settings})
    finally:
        await runner.cleanup()


def _verifier(pkce: PkcePair | None) -> str | None:
    return pkce.verifier if pkce is not None else None
