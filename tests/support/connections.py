"""Requests to the connections API as the operator, an operator key of chosen scopes, or an
end user's token (the ``api`` fixture of tests/connections_api serves it)."""

from __future__ import annotations

from typing import Any

from patchwire.store import Store
from patchwire.store.keys import KeyRepository
from tests.support.api import Api
from tests.support.end_users import bearer


async def end_user_token(api: Api, end_user: str) -> str:
    async with api.http.post(api.at(f"/api/v1/end-users/{end_user}/tokens")) as resp:
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
    return token


async def operator_key(api: Api, *scopes: str) -> str:
    async with await Store.open(api.settings.effective_database_url) as store:
        _, key = await KeyRepository(store).create("-".join(scopes), list(scopes))
    return key


async def send(api: Api, method: str, path: str, *, token: str | None = None,
               **kwargs: Any) -> tuple[int, Any, bytes]:
    """(status, JSON body or None, raw body) of one request to the API."""
    headers = bearer(token) if token else {}
    async with api.http.request(method, api.at(path), headers=headers, **kwargs) as resp:
        raw = await resp.read()
        body = await resp.json(content_type=None) if raw else None
        return resp.status, body, raw
