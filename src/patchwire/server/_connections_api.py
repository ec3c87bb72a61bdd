"""REST routes for connections (``/api/v1/connections``): list, create, read, change,
remove, and prove one's credentials with the connector's test call.

A connection's ``{name}`` in the URL is its name (what ``patchwire connection`` and calls
use), not an opaque id. No answer ever carries a secret value: ``secrets_set`` names the
secret settings that have one. What a person needs to judge a connection comes with it:
its OAuth2 token's status (``token``), its health (as the call path judged it), and the
call log's last success and last error class.

Operators: listing and reading need ``read``, testing ``run``; creating, changing and
removing need ``admin`` (credentials are the deployment's to manage; a platform's backend
creates connections for any end user). End-user tokens list, read, relabel, make default,
test and remove their own connections only; anything else is 404, as if it did not
exist. Connection lifecycle events (``connection.created`` ...) are published by the
facade, whoever made the change.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from patchwire.access import access_of, end_user_of, requires
from patchwire.auth import TokenStates
from patchwire.connectors.spec import KEPT_TOKEN_AUTHS
from patchwire.errors import ConfigError, UnknownConnection
from patchwire.server._problems import problem
from patchwire.store.activity import ConnectionActivity, connection_activity
from patchwire.store.end_users import MAX_END_USER, check_end_user

if TYPE_CHECKING:
    from patchwire import ConnectionInfo, Patchwire

__all__ = ["ConnectionCreate", "ConnectionOut", "ConnectionTestResponse",
           "ConnectionUpdate", "TokenStatus", "connections_router"]

#: what a connection made over the API may be called: safe in a URL path as it is
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
MAX_LABEL = 100
#: the settings of one connection, as JSON: credentials and a few URLs, never megabytes
MAX_SETTINGS_BYTES = 64 * 1024
#: a request body this large is refused before it is read
MAX_BODY_BYTES = 256 * 1024
#: connections per page of the listing
DEFAULT_PAGE, MAX_PAGE = 100, 1000

ConnectionName = Annotated[str, Path(
    min_length=1, max_length=200,
    description="the connection's name (connections are addressed by name, e.g. acme)")]


class TokenStatus(BaseModel):
    """The token an OAuth2 or token-exchange connection keeps, as may be shown: never the
    token."""

    valid: bool = Field(description="there is an access token, not expired, not refused")
    expires_at: datetime | None = Field(description="when the access token expires "
                                                    "(null: the provider did not say)")
    needs_reauth: bool = Field(description="the provider refused to renew it: the end "
                                           "user must connect again")


class ConnectionOut(BaseModel):
    """A connection as shown: secret values never, only which secret settings are set."""

    name: str = Field(description="the connection's name: its {name} in these URLs")
    connector: str
    end_user: str | None = Field(description="the end user it belongs to (null: the "
                                             "operator's)")
    label: str | None = Field(description="tells apart one end user's connections of one "
                                          "connector (work, personal)")
    is_default: bool = Field(description="the one its end user's calls of its connector "
                                         "use when they name none")
    settings: dict[str, Any] = Field(description="the settings that are not secret")
    secrets_set: list[str] = Field(description="the secret settings that have a value")
    needs_reauth: bool = Field(description="the end user must connect it again")
    health: Literal["healthy", "unhealthy"] = Field(
        description="unhealthy while its calls fail (success rate over the last calls "
                    "below the threshold, or the connector's breaker open)")
    token: TokenStatus | None = Field(
        description="connections keeping a token (OAuth2, token exchange) only")
    last_success_at: datetime | None = Field(description="its last call that succeeded")
    last_error_at: datetime | None
    last_error_class: str | None = Field(description="the class of its last failed call "
                                                     "(auth_error, upstream_error, ...)")
    created_at: datetime
    updated_at: datetime


def _label(value: str | None) -> str | None:
    if value is not None and any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                                 for c in value):
        raise ValueError("a label cannot contain control characters")
    return value


class ConnectionCreate(BaseModel):
    """A new connection; its secret settings are stored encrypted."""

    model_config = ConfigDict(extra="forbid")

    connector: str = Field(min_length=1, max_length=200, description="e.g. shop")
    name: str | None = Field(None, pattern=NAME_PATTERN,
                             description="default: <connector>-<random>")
    end_user: str | None = Field(None, min_length=1, max_length=MAX_END_USER,
                                 description="the platform's own id of its end user")
    label: str | None = Field(None, min_length=1, max_length=MAX_LABEL)
    settings: dict[str, Any] = Field(default_factory=dict, max_length=200,
                                     description="the connector's settings, secrets "
                                                 "included (never shown back)")
    test: bool = Field(False, description="make the connector's test call first: on "
                                          "failure nothing is saved and the call's "
                                          "problem is the answer")

    _check_label = field_validator("label")(_label)

    @field_validator("end_user")
    @classmethod
    def _check_end_user(cls, value: str | None) -> str | None:
        return None if value is None else check_end_user(value)


class ConnectionUpdate(BaseModel):
    """What may change. An end user's token may change only ``label`` and
    ``is_default``; a connection never changes hands (no ``end_user``)."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] | None = Field(None, max_length=200,
                                            description="values to change; the others "
                                                        "are kept")
    label: str | None = Field(None, max_length=MAX_LABEL, description='"" removes it')
    is_default: Literal[True] | None = Field(
        None, description="true: make it its end user's default of its connector (make "
                          "another one the default to change it)")

    _check_label = field_validator("label")(_label)


class ConnectionTestResponse(BaseModel):
    ok: bool = Field(description="the credentials were accepted (a refusal is a problem)")
    action: str = Field(description="the connector's test call, e.g. shop.list_orders")
    status: int = Field(description="the upstream's HTTP status")
    elapsed_ms: float


async def _bounded_body(request: Request) -> None:
    """Refuse a declared body too large before reading it (settings are small)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")


def _check_size(settings: dict[str, Any]) -> None:
    try:
        size = len(orjson.dumps(settings))
    except TypeError:  # pragma: no cover - parsed JSON always serialises
        size = MAX_SETTINGS_BYTES + 1
    if size > MAX_SETTINGS_BYTES:
        raise HTTPException(413, f"the settings are larger than {MAX_SETTINGS_BYTES} bytes")


def _invalid(exc: ConfigError, where: str) -> Response:
    """Values the connector refuses: the caller's to correct (422, saying which)."""
    return problem(422, "Invalid connection", str(exc), "invalid_connection",
                   problems=[{"path": where, "message": str(exc)}])


def connections_router(pw: Patchwire) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    tokens = TokenStates(lambda: pw.store, lambda: pw.vault)

    async def shown(infos: list[ConnectionInfo]) -> list[ConnectionOut]:
        # the call log's part for the whole page in one go, not a query per connection
        activity = await connection_activity(pw.store, [i.name for i in infos])
        out = []
        for info in infos:
            token = None
            spec = pw.connectors.get(info.connector) if info.connector in pw.connectors \
                else None
            # OAuth2 and token exchange: a token kept in the connection's secrets
            if spec is not None and isinstance(spec.auth, KEPT_TOKEN_AUTHS):
                state = await tokens.of(info.name)
                expires = (datetime.fromtimestamp(state.expires_at, UTC)
                           if state.expires_at is not None else None)
                needs = state.needs_reauth or info.needs_reauth
                token = TokenStatus(
                    valid=state.has_token and not needs and (
                        expires is None or expires > datetime.now(UTC)),
                    expires_at=expires, needs_reauth=needs)
            seen = activity.get(info.name, ConnectionActivity())
            out.append(ConnectionOut(
                name=info.name, connector=info.connector, end_user=info.end_user,
                label=info.label, is_default=info.is_default, settings=info.settings,
                secrets_set=info.secrets_set,
                needs_reauth=info.needs_reauth or bool(token and token.needs_reauth),
                health="unhealthy" if info.health == "unhealthy" else "healthy",
                token=token, last_success_at=seen.last_success_at,
                last_error_at=seen.last_error_at, last_error_class=seen.last_error_class,
                created_at=info.created_at, updated_at=info.updated_at))
        return out

    async def own(name: str, request: Request) -> ConnectionInfo:
        """Connection ``name``, if the request's end user (if any) holds it."""
        info = await pw.get_connection(name)
        acting = end_user_of(request)
        if acting is not None and info.end_user != acting:
            raise UnknownConnection(f"no connection named {name!r}")
        return info

    def operator_admin(request: Request, what: str) -> None:
        """Changing connections is the ``admin`` scope's for operators (end users change
        their own, within what their route allows)."""
        if end_user_of(request) is None and not access_of(request).allows("admin"):
            raise HTTPException(403, f"{what} a connection needs a key with the 'admin' "
                                     "scope")

    @router.get("/connections", response_model=list[ConnectionOut],
                dependencies=[requires("read", end_users=True)],
                summary="List connections (an end-user token: its own)")
    async def list_connections(
        request: Request, connector: str | None = Query(None, max_length=200),
        end_user: str | None = Query(None, max_length=MAX_END_USER),
        after: str | None = Query(None, max_length=200,
                                  description="the last name of the previous page"),
        limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    ) -> list[ConnectionOut]:
        acting = end_user_of(request)
        if acting is not None:
            if end_user not in (None, acting):
                return []  # another end user's: nothing, as if there were none
            end_user = acting
        infos = await pw.list_connections(connector, end_user, after=after, limit=limit)
        return await shown(infos)

    @router.post("/connections", response_model=ConnectionOut, status_code=201,
                 dependencies=[requires("admin"), Depends(_bounded_body)],
                 summary="Create a connection (secrets are stored encrypted)",
                 responses={413: {"description": "settings too large"},
                            422: {"description": "settings the connector refuses"}})
    async def create_connection(body: ConnectionCreate) -> Any:
        _check_size(body.settings)
        pw.connectors.get(body.connector)  # UnknownConnector: 404 naming it
        name = body.name or f"{body.connector}-{secrets.token_hex(4)}"
        try:
            pw.check_connection(body.connector, name, body.settings)
        except ConfigError as exc:
            return _invalid(exc, "$.settings")
        info = await pw.add_connection(body.connector, name, body.settings,
                                       end_user=body.end_user, label=body.label,
                                       test=body.test)
        return (await shown([info]))[0]

    @router.get("/connections/{name}", response_model=ConnectionOut,
                dependencies=[requires("read", end_users=True)],
                summary="Read a connection (by name)")
    async def get_connection(name: ConnectionName, request: Request) -> ConnectionOut:
        return (await shown([await own(name, request)]))[0]

    @router.patch("/connections/{name}", response_model=ConnectionOut,
                  dependencies=[requires("run", end_users=True), Depends(_bounded_body)],
                  summary="Change a connection's settings, label or default (by name)",
                  description="Operators need the admin scope; an end-user token changes "
                              "only the label and default of its own connections.",
                  responses={403: {"description": "not the caller's to change"},
                             413: {"description": "settings too large"},
                             422: {"description": "settings the connector refuses"}})
    async def update_connection(name: ConnectionName, body: ConnectionUpdate,
                                request: Request) -> Any:
        operator_admin(request, "changing")
        info = await own(name, request)
        if end_user_of(request) is not None and body.settings is not None:
            raise HTTPException(403, "an end user's token changes only the label and the "
                                     "default; connect again to change credentials")
        if body.settings is not None:
            _check_size(body.settings)
            try:
                merged = {**info.settings, **body.settings}
                pw.check_connection(info.connector, name, {
                    **{k: "x" for k in info.secrets_set}, **merged})
            except ConfigError as exc:
                return _invalid(exc, "$.settings")
        if body.settings is not None or body.label is not None:
            info = await pw.update_connection(name, body.settings or {}, label=body.label)
        if body.is_default:
            info = await pw.set_default_connection(name)
        return (await shown([info]))[0]

    @router.delete("/connections/{name}", status_code=204, response_class=Response,
                   dependencies=[requires("run", end_users=True)],
                   summary="Remove a connection (by name)",
                   description="Operators need the admin scope; an end-user token removes "
                               "its own connections.",
                   responses={403: {"description": "not the caller's to remove"}})
    async def remove_connection(name: ConnectionName, request: Request) -> Response:
        operator_admin(request, "removing")
        await own(name, request)
        await pw.remove_connection(name)
        return Response(status_code=204)

    @router.post("/connections/{name}/test", response_model=ConnectionTestResponse,
                 dependencies=[requires("run", end_users=True)],
                 summary="Prove a connection's credentials with its connector's test call")
    async def test_connection(name: ConnectionName, request: Request
                              ) -> ConnectionTestResponse:
        await own(name, request)
        # one cheap call proving the credentials; a refusal is the call's problem (424 with
        # the upstream's status and a redacted excerpt), never the credentials
        tested = await pw.test_connection(name)
        return ConnectionTestResponse(ok=True, action=tested.action, status=tested.status,
                                      elapsed_ms=round(tested.latency_ms, 1))

    return router

