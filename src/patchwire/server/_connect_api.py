"""REST routes for connect links and OAuth apps, and the hosted connect pages.

* ``POST /api/v1/connect-sessions`` (``connect``): a single-use link for one end user,
  ``{token, url, expires_at}``; ``POST /api/v1/me/connect-sessions`` does the same for the
  end user whose token makes the request (an end user's backend, a model's tool).
* ``GET /api/v1/connect-sessions/{token}`` (``connect``; ``.../me/...`` for an end user's
  own): ``pending``, ``connected`` or ``expired``; ``?wait=`` seconds (at most 30) waits
  for it to stop being pending — a long poll, so a backend resumes the conversation.
* ``PUT/GET/DELETE /api/v1/oauth-apps/{connector}``, ``GET /api/v1/oauth-apps``
  (``admin``): the deployment's OAuth2 client per connector; the secret is written, never
  read back.
* The pages at ``/connect/{token}`` and ``/oauth/callback`` (``patchwire.connect``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from patchwire.access import end_user_of, requires
from patchwire.connect import (
    DEFAULT_SESSION_TTL,
    MAX_CLIENT_ID,
    MAX_CLIENT_SECRET,
    MAX_CONNECTORS,
    MAX_RETURN_URL,
    MAX_SESSION_TTL,
    MAX_WAIT,
    ConnectFlow,
    ConnectSession,
    OAuthApp,
    OAuthApps,
    connect_pages,
)
from patchwire.errors import UnknownConnector
from patchwire.store.end_users import MAX_END_USER

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["connect_router"]

ConnectorPath = Annotated[str, Path(min_length=1, max_length=200,
                                    description="the connector's name (e.g. calendar)")]
TokenPath = Annotated[str, Path(min_length=1, max_length=100,
                                description="the link's token (the last part of its URL)")]

WaitQuery = Annotated[float, Query(ge=0, le=MAX_WAIT, description=(
    "wait up to this many seconds for the link to stop being pending (long poll)"))]


class SessionCreate(BaseModel):
    end_user: str = Field(min_length=1, max_length=MAX_END_USER,
                          description="the platform's own id of the end user")
    connectors: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_CONNECTORS,
        description="the connectors the page offers (may be empty with `connection`)")
    return_url: str | None = Field(None, max_length=MAX_RETURN_URL, description=(
        "where the browser goes once connected (absolute http(s)); without one the page "
        "says to return to the chat"))
    connection: str | None = Field(None, min_length=1, max_length=200, description=(
        "reconnect this connection of the end user's: its credentials are replaced"))
    label: str | None = Field(None, min_length=1, max_length=100,
                              description="the label of the connection made (work...)")
    ttl_seconds: int = Field(int(DEFAULT_SESSION_TTL.total_seconds()), ge=1,
                             le=int(MAX_SESSION_TTL.total_seconds()),
                             description="how long the link lives (default 30 minutes)")


class MySessionCreate(BaseModel):
    connectors: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_CONNECTORS)
    return_url: str | None = Field(None, max_length=MAX_RETURN_URL)
    connection: str | None = Field(None, min_length=1, max_length=200)
    label: str | None = Field(None, min_length=1, max_length=100)


class CreatedSession(BaseModel):
    token: str = Field(description="the link's token, in this answer only")
    url: str = Field(description="the page the end user opens: {public_url}/connect/{token}")
    expires_at: datetime


class SessionOut(BaseModel):
    status: str = Field(description="pending, connected or expired")
    end_user: str
    connectors: list[str]
    connection: str | None = Field(description="the connection made (once connected)")
    expires_at: datetime
    label: str | None = None

    @classmethod
    def of(cls, session: ConnectSession) -> SessionOut:
        return cls.model_validate(session.to_dict())


class OAuthAppIn(BaseModel):
    client_id: str = Field(min_length=1, max_length=MAX_CLIENT_ID)
    client_secret: str = Field(min_length=1, max_length=MAX_CLIENT_SECRET,
                               description="written, never read back")
    scopes: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100,
        description="the scopes asked for (empty: the connector's own)")


class OAuthAppOut(BaseModel):
    """An OAuth app as shown: never its secret."""

    connector: str
    client_id: str
    scopes: list[str]
    client_secret_set: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, app: OAuthApp) -> OAuthAppOut:
        return cls.model_validate(app.to_dict())


def _invalid(exc: Exception) -> HTTPException:
    return HTTPException(422, str(exc))


def connect_router(pw: Patchwire) -> APIRouter:
    """The connect-session and OAuth-app routes, and the hosted pages (one flow, so a
    page finishing a link wakes the polls waiting on it)."""
    flow = ConnectFlow(pw)
    sessions = flow.sessions
    apps = OAuthApps(pw.runtime)
    router = APIRouter(prefix="/api/v1", tags=["connect links"])

    def me(request: Request) -> str:
        end_user = end_user_of(request)
        if end_user is None:
            raise HTTPException(422, "the /me/ routes act for the end user whose token sends "
                                     "the request; an operator's key uses "
                                     "/api/v1/connect-sessions")
        return end_user

    async def create(end_user: str, body: MySessionCreate | SessionCreate,
                     ttl: timedelta = DEFAULT_SESSION_TTL) -> CreatedSession:
        try:
            _, token = await sessions.create(
                end_user, body.connectors, return_url=body.return_url,
                connection=body.connection, label=body.label, ttl=ttl)
        except UnknownConnector as exc:
            # a name in the body, not the URL: the request is what is wrong
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:
            raise _invalid(exc) from None
        link = sessions.url_of(token)
        session = await sessions.get(token)
        return CreatedSession(token=token, url=link, expires_at=session.expires_at)

    @router.post("/connect-sessions", status_code=201, dependencies=[requires("connect")])
    async def create_session(body: SessionCreate) -> CreatedSession:
        return await create(body.end_user, body, timedelta(seconds=body.ttl_seconds))

    @router.post("/me/connect-sessions", status_code=201,
                 dependencies=[requires("run", end_users=True)])
    async def create_my_session(body: MySessionCreate, request: Request) -> CreatedSession:
        return await create(me(request), body)

    @router.get("/connect-sessions/{token}", dependencies=[requires("connect")])
    async def read_session(token: TokenPath,
                           wait: WaitQuery = 0.0) -> SessionOut:
        return SessionOut.of(await sessions.wait(token, wait))

    @router.get("/me/connect-sessions/{token}",
                dependencies=[requires("read", end_users=True)])
    async def read_my_session(token: TokenPath, request: Request,
                              wait: WaitQuery = 0.0) -> SessionOut:
        return SessionOut.of(await sessions.wait(token, wait, end_user=me(request)))

    @router.get("/oauth-apps", dependencies=[requires("admin")])
    async def list_apps() -> list[OAuthAppOut]:
        return [OAuthAppOut.of(a) for a in await apps.list()]

    @router.put("/oauth-apps/{connector}", dependencies=[requires("admin")])
    async def put_app(connector: ConnectorPath, body: OAuthAppIn) -> OAuthAppOut:
        try:
            app = await apps.set(connector, client_id=body.client_id,
                                 client_secret=body.client_secret, scopes=body.scopes)
        except ValueError as exc:
            raise _invalid(exc) from None
        return OAuthAppOut.of(app)

    @router.get("/oauth-apps/{connector}", dependencies=[requires("admin")])
    async def get_app(connector: ConnectorPath) -> OAuthAppOut:
        return OAuthAppOut.of(await apps.get(connector))

    @router.delete("/oauth-apps/{connector}", status_code=204,
                   dependencies=[requires("admin")])
    async def delete_app(connector: ConnectorPath) -> Response:
        await apps.remove(connector)
        return Response(status_code=204)

    outer = APIRouter()
    outer.include_router(router)
    outer.include_router(connect_pages(flow))  # the hosted pages: /connect, /oauth/callback
    return outer
