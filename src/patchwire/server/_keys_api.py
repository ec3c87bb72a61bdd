"""REST routes for API keys (``/api/v1/keys``): list, create, read and revoke — what
``patchwire keys`` does, through the same :class:`KeyRepository` (``store/keys.py``).

Every route needs the ``admin`` scope, reads included (each declares it). A key's secret
is in one answer only, the 201 of its creation: only its SHA-256 digest is stored, and
neither the secret nor the digest is ever listed. Revoking keeps the
key's row (listed with ``include_revoked=true``), so it is ``POST .../revoke`` like the
API's other state changes (``/runs/{id}/cancel``, ``/subscriptions/{id}/disable``), not a
``DELETE``. Errors are RFC 9457 problems through the app's handlers: an unknown key is 404,
an unknown scope or an empty name 422.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, field_validator

from patchwire.access import KeyRing, requires
from patchwire.store.keys import (
    MAX_KEY_NAME,
    ApiKeyRecord,
    KeyRepository,
    ScopeName,
    check_key_name,
)

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = ["keys_router"]


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_KEY_NAME,
                      description="who or what uses the key (e.g. grafana, chatbot)")
    scopes: list[ScopeName] = Field(
        min_length=1, max_length=16,
        description="read (GET anything), run (call actions and tools; start, retry, cancel "
                    "runs), approve (decide approvals), connect (end-user tokens and "
                    "connect links), admin (everything)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_key_name(value)  # the CLI's rule: 1 to 200 characters once stripped


class ApiKeyOut(BaseModel):
    """A key as listed: never its secret or the secret's digest."""

    id: str = Field(description="the public part of the key: pwk_<id>_<secret>")
    name: str
    scopes: list[ScopeName]
    prefix: str = Field(description="how the key begins (pwk_<id>_), to recognise it")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="when it last authenticated a request (noted at most once a minute)")
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyOut:
        return cls.model_validate(record.to_dict())


class CreatedKey(ApiKeyOut):
    key: str = Field(description="the full key, shown in this answer only: store it now")


def keys_router(store: Callable[[], Store], ring: KeyRing) -> APIRouter:
    """``store``: the app's store (opened by its lifespan before the first request);
    ``ring``: the middleware's key cache, refreshed at once after a change here."""
    router = APIRouter(prefix="/api/v1", tags=["keys"])

    def repo() -> KeyRepository:
        return KeyRepository(store())

    @router.get("/keys", dependencies=[requires("admin")])
    async def list_keys(
        include_revoked: Annotated[bool, Query(description="revoked keys too")] = False,
    ) -> list[ApiKeyOut]:
        return [ApiKeyOut.of(k) for k in await repo().list(include_revoked=include_revoked)]

    @router.post("/keys", dependencies=[requires("admin")], status_code=201)
    async def create_key(body: KeyCreate, request: Request, response: Response) -> CreatedKey:
        record, text = await repo().create(body.name, body.scopes)
        ring.invalidate()  # usable at once, not after the cache's ttl
        response.headers["Location"] = str(request.url_for("get_key", key_id=record.id).path)
        response.headers["Cache-Control"] = "no-store"  # the secret: in this answer only
        return CreatedKey.model_validate({**record.to_dict(), "key": text})

    @router.get("/keys/{key_id}", dependencies=[requires("admin")], name="get_key")
    async def get_key(key_id: str) -> ApiKeyOut:
        return ApiKeyOut.of(await repo().get(key_id))

    @router.post("/keys/{key_id}/revoke", dependencies=[requires("admin")])
    async def revoke_key(key_id: str) -> ApiKeyOut:
        """Revoke the key (again: no change). Requests with it are refused at once by this
        server, within a second by others sharing the store."""
        record = await repo().revoke(key_id)
        ring.invalidate()
        return ApiKeyOut.of(record)

    return router
