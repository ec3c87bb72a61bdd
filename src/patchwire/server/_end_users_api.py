"""REST routes for end users' tokens (``/api/v1/end-users/{end_user}/tokens``).

A platform's backend (a key with the ``connect`` or ``admin`` scope) asks for a short-lived
token for one of its end users and hands it to whatever acts for that person: the model's
MCP client (``Authorization: Bearer pwu_...`` on ``/mcp``), the chat backend's tool calls.
The token's text is in the 201 answer only; only its digest is stored. Revoking one (or
all of an end user's) takes effect within the token cache's second.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from patchwire.access import EndUserTokenRing, access_of, requires
from patchwire.store.end_users import (
    DEFAULT_TOKEN_TTL,
    MAX_END_USER,
    MAX_TOKEN_TTL,
    EndUserToken,
    EndUserTokenRepository,
    check_end_user,
)

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = ["EndUserPath", "end_users_router"]


def _end_user(value: str) -> str:
    try:
        return check_end_user(value)
    except ValueError as exc:
        from fastapi import HTTPException

        raise HTTPException(422, str(exc)) from None


EndUserPath = Annotated[str, Path(min_length=1, max_length=MAX_END_USER,
                                  description="the platform's own id of the end user")]


class TokenCreate(BaseModel):
    ttl_seconds: int = Field(int(DEFAULT_TOKEN_TTL.total_seconds()), ge=1,
                             le=int(MAX_TOKEN_TTL.total_seconds()),
                             description="how long the token lives (default one hour)")


class EndUserTokenOut(BaseModel):
    """A token as listed: never its secret."""

    id: str
    end_user: str
    prefix: str = Field(description="how the token begins (pwu_<id>_)")
    created_at: datetime
    expires_at: datetime
    created_by: str | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: EndUserToken) -> EndUserTokenOut:
        return cls.model_validate(token.to_dict())


class CreatedEndUserToken(BaseModel):
    token: str = Field(description="the token, shown in this answer only")
    expires_at: datetime
    id: str
    end_user: str


def end_users_router(store: Callable[[], Store], ring: EndUserTokenRing) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["end users"])

    def repo() -> EndUserTokenRepository:
        return EndUserTokenRepository(store())

    @router.post("/end-users/{end_user}/tokens", status_code=201,
                 dependencies=[requires("connect")])
    async def create_token(end_user: EndUserPath, request: Request,
                           body: TokenCreate | None = None) -> CreatedEndUserToken:
        ttl = timedelta(seconds=(body or TokenCreate()).ttl_seconds)
        token, text = await repo().create(_end_user(end_user), ttl=ttl,
                                          created_by=access_of(request).identity)
        return CreatedEndUserToken(token=text, expires_at=token.expires_at, id=token.id,
                                   end_user=token.end_user)

    @router.get("/end-users/{end_user}/tokens", dependencies=[requires("connect")])
    async def list_tokens(end_user: EndUserPath) -> list[EndUserTokenOut]:
        return [EndUserTokenOut.of(t) for t in await repo().list(_end_user(end_user))]

    @router.post("/end-users/{end_user}/tokens/{token_id}/revoke",
                 dependencies=[requires("connect")])
    async def revoke_token(end_user: EndUserPath, token_id: Annotated[
            str, Path(min_length=1, max_length=64)]) -> EndUserTokenOut:
        token = await repo().revoke(_end_user(end_user), token_id)
        ring.forget(token.id)
        return EndUserTokenOut.of(token)

    @router.post("/end-users/{end_user}/tokens/revoke-all",
                 dependencies=[requires("connect")])
    async def revoke_all(end_user: EndUserPath) -> dict[str, int]:
        revoked = await repo().revoke_all(_end_user(end_user))
        ring.forget()
        return {"revoked": revoked}

    return router
