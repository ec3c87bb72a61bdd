"""``GET /api/v1/blobs/{id}``: the bytes of a binary answer a call kept, served as an
attachment — to the end user whose connection fetched them, and to operators; another end
user gets a 404 as if there were none. Real HTTP throughout: an aiohttp upstream and the
app under uvicorn on loopback, the store on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from patchwire import Patchwire
from patchwire.access import AccessPolicy
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.server import create_app
from patchwire.store.end_users import EndUserTokenRepository
from patchwire.store.keys import KeyRepository
from tests.support.api import problem_of
from tests.support.end_users import bearer
from tests.support.servers import serve, serving
from tests.support.settings import local_settings

CONNECTOR = """
name: files
base_url: "{url}"
settings:
  url: {}
actions:
  get_invoice:
    input: {type: object, properties: {number: {type: string}}, required: [number]}
    request: {path: "/invoices/{number}"}
    tool: {read_only: true}
"""


def pdf(number: str) -> bytes:
    return b"%PDF-1.7\n" + number.encode() + b"\n" + bytes(range(256)) * 4 + b"%%EOF\n"


def upstream() -> web.Application:
    async def invoice(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        return web.Response(body=pdf(number), content_type="application/pdf", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''Rechnung-{number}-%C3%A4.pdf"})

    app = web.Application()
    app.router.add_get("/invoices/{number}", invoice)
    return app


@dataclass
class Served:
    url: str
    http: aiohttp.ClientSession
    tokens: dict[str, str]

    async def invoice(self, user: str, number: str) -> dict[str, Any]:
        """The tool call's answer when ``user`` asks for invoice ``number``."""
        async with self.http.post(f"{self.url}/api/v1/tools/files_get_invoice/call",
                                  json={"arguments": {"number": number}},
                                  headers=bearer(self.tokens[user])) as resp:
            assert resp.status == 200, await resp.text()
            answer: dict[str, Any] = await resp.json()
        assert answer["status"] == "ok", answer
        return answer

    def blob(self, blob_id: str, user: str | None) -> Any:
        return self.http.get(f"{self.url}/api/v1/blobs/{blob_id}",
                             headers=bearer(self.tokens[user]) if user else None)


@asynccontextmanager
async def files_app(store_url: str, tmp_path: Path, *, keys: tuple[str, ...] = ()
                    ) -> AsyncIterator[Served]:
    """The app over a store where end users u1 and u2 each hold a connection to the
    upstream, with a token each; ``keys``: API keys to create, each with the scope it is
    named after (its text in ``tokens`` under that name)."""
    async with serve(upstream()) as url:
        registry = ConnectorRegistry([load_connector_text(CONNECTOR, "files.yaml")])
        settings = local_settings(tmp_path / "home", database_url=store_url)
        tokens: dict[str, str] = {}
        async with Patchwire(settings, connectors=registry) as setup:
            for user in ("u1", "u2"):
                await setup.add_connection("files", f"{user}-files", {"url": url},
                                           end_user=user)
                repo = EndUserTokenRepository(setup.store)
                tokens[user] = (await repo.create(user, ttl=timedelta(hours=1)))[1]
            for scope in keys:
                tokens[scope] = (await KeyRepository(setup.store).create(scope, [scope]))[1]
        async with (
            serving(create_app(Patchwire(settings, connectors=registry),
                               access=AccessPolicy(cache_ttl=0))) as app_url,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        ):
            yield Served(app_url, http, tokens)


async def test_an_end_user_downloads_their_own_blob_and_not_another_end_users(
        store_url: str, tmp_path: Path) -> None:
    async with files_app(store_url, tmp_path) as app:
        answer = await app.invoice("u1", "2026-17")
        blob_id = answer["data"]["blob"]
        # the model reads the reference and the metadata, never the bytes
        assert blob_id in answer["text"] and "Rechnung-2026-17-ä.pdf" in answer["text"]
        assert base64.b64encode(pdf("2026-17")).decode()[:40] not in answer["text"]
        assert len(answer["text"]) < 400

        async with app.blob(blob_id, "u1") as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.read() == pdf("2026-17")
            assert resp.headers["Content-Type"] == "application/pdf"
            assert resp.headers["Content-Disposition"] == (
                "attachment; filename=\"Rechnung-2026-17-_.pdf\"; "
                "filename*=UTF-8''Rechnung-2026-17-%C3%A4.pdf")
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in resp.headers["Content-Security-Policy"]

        async with app.blob(blob_id, "u2") as resp:  # not theirs: as if there were none
            body = await problem_of(resp, 404)
        assert blob_id in body["detail"]

        async with app.blob(blob_id, None) as resp:  # an operator (loopback, no keys)
            assert resp.status == 200
            assert await resp.read() == pdf("2026-17")

        theirs = (await app.invoice("u2", "9"))["data"]["blob"]
        async with app.blob(theirs, "u1") as resp:
            await problem_of(resp, 404)
        async with app.blob(theirs, "u2") as resp:
            assert await resp.read() == pdf("9")


async def test_an_unknown_or_malformed_blob_id_is_not_found(tmp_path: Path) -> None:
    async with files_app(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", tmp_path) as app:
        async with app.blob("0" * 32, "u1") as resp:
            await problem_of(resp, 404)
        async with app.blob("0" * 32, None) as resp:
            await problem_of(resp, 404)
        async with app.blob("..%2F..%2Fetc", None) as resp:
            assert resp.status in (404, 422)


async def test_an_operator_needs_a_key_with_the_read_scope(tmp_path: Path) -> None:
    async with files_app(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", tmp_path,
                         keys=("read", "connect")) as app:
        blob_id = (await app.invoice("u1", "1"))["data"]["blob"]
        async with app.blob(blob_id, None) as resp:  # keys exist: none is refused
            assert resp.status == 401
        async with app.blob(blob_id, "connect") as resp:
            assert resp.status == 403
        async with app.blob(blob_id, "read") as resp:
            assert resp.status == 200
            assert await resp.read() == pdf("1")
