"""The hosted connect pages (``patchwire serve``): plain HTML that works without
JavaScript, styled with the dashboard's stylesheet.

* ``GET /connect/{token}`` — the connectors the link offers;
* ``GET /connect/{token}/{connector}`` — the credentials form, or (OAuth2) a redirect to
  the provider (a form first when the connector needs a plain setting, a tenant's name);
* ``POST /connect/{token}/{connector}`` — prove and save the credentials (or start OAuth2);
* ``GET /oauth/callback`` — the provider sends the browser back here.

The token in the URL is the credential: the routes are public. What the pages refuse
besides: framing (the SiteGuard in front of every route sets ``frame-ancestors 'none'``
and ``X-Frame-Options``, and these pages' own policy repeats it) and posts from another
site's page (the SiteGuard's same-origin rule, which counts the public URL's origin as this
server's own behind a proxy, checked again here). No page shows a secret back, sends the
token on to another site in a ``Referer``, or is cached.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from patchwire.access import PUBLIC, cross_site, requires
from patchwire.connect._flow import ConnectFlow, FormField
from patchwire.errors import (
    AuthError,
    CallError,
    ConfigError,
    ConnectSessionClosed,
    LookupFailed,
    OAuthError,
    StoreError,
    UnknownConnector,
    UnknownOAuthApp,
    VaultError,
)
from patchwire.store.connect import ConnectSessionRecord

__all__ = ["MAX_FORM_BYTES", "connect_pages"]

log = logging.getLogger("patchwire.connect")

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
#: the largest form body read: a few settings of at most 4 KiB each
MAX_FORM_BYTES: Final = 64 * 1024
#: no inline script or style anywhere; the stylesheet is this server's own
_POLICY: Final = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                  "frame-ancestors 'none'; base-uri 'none'")
#: "same-origin", not "no-referrer": under "no-referrer" a browser posts the page's own
#: form with ``Origin: null``, which the same-origin rule must refuse; other sites (the
#: provider, the return URL) still get no Referer, so never the link's token
_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin",
                   "Content-Security-Policy": _POLICY, "X-Frame-Options": "DENY",
                   "X-Content-Type-Options": "nosniff"}

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                   autoescape=select_autoescape(default=True, default_for_string=True))


def _page(template: str, status: int = 200, *, root: str, **context: Any) -> HTMLResponse:
    """``root``: the way back to the server's root from the page's URL (relative, so the
    pages work under a proxy's path prefix too)."""
    html = _env.get_template(template).render(assets=f"{root}assets", **context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _problem(status: int, title: str, message: str, *, root: str) -> HTMLResponse:
    return _page("problem.html", status, root=root, title=title, message=message)


def _redirect(url: str, status: int) -> Response:
    return RedirectResponse(url, status_code=status, headers=_HEADERS)


def _failure(exc: Exception, *, root: str) -> HTMLResponse:
    """The page for what went wrong: never a traceback, never a secret."""
    if isinstance(exc, ConnectSessionClosed):
        text = str(exc)
        return _problem(410, "Link no longer valid", f"{text[:1].upper()}{text[1:]}.",
                        root=root)
    if isinstance(exc, UnknownOAuthApp):
        return _problem(503, "Not set up yet", "This account cannot be connected here "
                        "yet: the service has not been set up for it. Please tell the "
                        "people running the chat.", root=root)
    if isinstance(exc, UnknownConnector):
        return _problem(404, "Not offered", "This link does not offer that account.",
                        root=root)
    if isinstance(exc, LookupFailed):
        return _problem(404, "Link not found", "This connect link is not valid. Ask the "
                        "chat for a new link.", root=root)
    if isinstance(exc, StoreError | VaultError):
        log.warning("connect page failed: %s", type(exc).__name__)
        return _problem(503, "Try again later", "The service cannot save accounts right "
                        "now. Please try again in a moment.", root=root)
    log.error("connect page failed: %s", type(exc).__name__)
    return _problem(500, "Something went wrong", "The account could not be connected. "
                    "Please try again, or ask the chat for a new link.", root=root)


def _done(rec: ConnectSessionRecord, *, root: str, status: int) -> Response:
    if rec.return_url:
        return _redirect(rec.return_url, status)
    return _page("done.html", root=root)


async def _form_body(request: Request) -> dict[str, str] | None:
    """The posted form (urlencoded), or None when it is too large; read up to
    :data:`MAX_FORM_BYTES` whatever the client says its length is."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200,
                          strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)  # the first of a repeated name, as a browser sends one
    return out


def connect_pages(flow: ConnectFlow) -> APIRouter:
    """The hosted pages over ``flow``."""
    router = APIRouter(include_in_schema=False)

    def own_origins() -> tuple[str, ...]:
        public = urlsplit(flow.redirect_uri)
        return (f"{public.scheme}://{public.netloc}".lower(),)

    def form(spec_title: str, fields: list[FormField], *, token: str, connector: str,
             status: int = 200, error: str | None = None, wrong: bool = False,
             values: Mapping[str, str] | None = None, oauth: bool = False) -> HTMLResponse:
        # secret fields are never filled back in: only plain values are re-displayed
        shown = {f.name: (values or {}).get(f.name, "") for f in fields if not f.secret}
        return _page("form.html", status, root="../../", title=spec_title, fields=fields,
                     values=shown, error=error, wrong=wrong, oauth=oauth,
                     back=f"../{token}", connector=connector)

    @router.get("/connect/{token}", dependencies=[requires(PUBLIC)])
    async def offer(token: str) -> Response:
        root = "../"
        try:
            rec = await flow.sessions.open_record(token)
            existing = await flow.existing(rec)
        except Exception as exc:
            return _failure(exc, root=root)
        return _page("connectors.html", root=root, offers=flow.offers(rec), token=token,
                     reconnect=existing is not None)

    @router.get("/connect/{token}/{connector}", dependencies=[requires(PUBLIC)])
    async def connector_page(token: str, connector: str) -> Response:
        root = "../../"
        try:
            rec = await flow.sessions.open_record(token)
            spec = flow.offered(rec, connector)
            fields = flow.fields(spec)
            title = spec.title or spec.name
            existing = await flow.existing(rec)
            if _is_oauth(flow, rec, connector):
                if not fields:
                    return _redirect(await flow.start_oauth(token, connector), 302)
                return form(title, fields, token=token, connector=connector, oauth=True,
                            values=existing.settings if existing else None)
            return form(title, fields, token=token, connector=connector,
                        values=existing.settings if existing else None)
        except Exception as exc:
            return _failure(exc, root=root)

    @router.post("/connect/{token}/{connector}", dependencies=[requires(PUBLIC)])
    async def connect(token: str, connector: str, request: Request) -> Response:
        root = "../../"
        refused = cross_site(request.scope, "POST", origins=own_origins())
        if refused is not None:
            return _problem(403, "Refused", "This form can only be sent from its own page.",
                            root=root)
        values = await _form_body(request)
        try:
            rec = await flow.sessions.open_record(token)
            spec = flow.offered(rec, connector)
        except Exception as exc:
            return _failure(exc, root=root)
        title = spec.title or spec.name
        fields = flow.fields(spec)
        oauth = _is_oauth(flow, rec, connector)
        if values is None:
            return form(title, fields, token=token, connector=connector, status=413,
                        error="What was sent is too large.", oauth=oauth)
        try:
            if oauth:
                return _redirect(await flow.start_oauth(token, connector, values), 303)
            done, _ = await flow.save_credentials(token, connector, values)
        except ValueError as exc:
            return form(title, fields, token=token, connector=connector, status=422,
                        error=str(exc), values=values, oauth=oauth)
        except (AuthError, OAuthError):
            # the API, or its login / token endpoint (token exchange, password grant),
            # refused what the person typed
            return form(title, fields, token=token, connector=connector, status=422,
                        error=f"{title} refused these credentials: check them and try "
                        "again.", wrong=True, values=values, oauth=oauth)
        except (CallError, ConfigError) as exc:
            # the upstream could not be reached, or a value does not fit the connector;
            # messages of the call path are redacted, and nothing was saved
            detail = str(exc) if isinstance(exc, ConfigError) else (
                f"{title} could not be reached to check them ({exc.code}).")
            return form(title, fields, token=token, connector=connector, status=422,
                        error=f"The credentials could not be checked: {detail}",
                        values=values, oauth=oauth)
        except Exception as exc:
            return _failure(exc, root=root)
        return _done(done, root=root, status=303)

    @router.get("/oauth/callback", dependencies=[requires(PUBLIC)])
    async def callback(request: Request) -> Response:
        root = "../"
        q = request.query_params
        try:
            done, _ = await flow.finish_oauth(state=q.get("state"), code=q.get("code"),
                                              error=q.get("error"), query=dict(q))
        except OAuthError as exc:
            return _problem(502, "Not connected", f"The sign-in did not complete "
                            f"({exc.error}). Open the link from the chat again to retry.",
                            root=root)
        except LookupFailed:
            return _problem(400, "Not connected", "This sign-in answer does not belong to "
                            "a connect link in progress. Open the link from the chat "
                            "again.", root=root)
        except Exception as exc:
            return _failure(exc, root=root)
        return _done(done, root=root, status=302)

    return router


def _is_oauth(flow: ConnectFlow, rec: ConnectSessionRecord, connector: str) -> bool:
    return any(o.connector == connector and o.kind == "oauth2" for o in flow.offers(rec))
