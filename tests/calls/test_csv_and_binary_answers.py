"""CSV answers become lists of objects; binary answers (PDF, images, octet streams) become
metadata and a stored blob reference, capped, never bytes in a result — over real HTTP to
an aiohttp upstream on loopback, kept in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import text

from patchwire import Patchwire, ToolInvoker
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import ResponseMappingError
from patchwire.store import Store
from patchwire.store.blobs import BlobRepository, NewBlob
from tests.support.servers import serve
from tests.support.settings import local_settings

CONNECTOR = """
name: reports
base_url: "{url}"
settings:
  url: {}
retry: {attempts: 1}
max_blob_bytes: 4096
actions:
  export:
    input: {type: object, properties: {name: {type: string}}, required: [name]}
    request: {path: "/files/{name}"}
  export_count:
    input: {type: object, properties: {name: {type: string}}, required: [name]}
    request: {path: "/files/{name}"}
    response: "{'rows': $count($), 'first': $[0].name}"
  invoice:
    input: {type: object, properties: {name: {type: string}}, required: [name]}
    request: {path: "/files/{name}"}
    response: "{'file': blob, 'bytes': size, 'name': filename}"
    tool: {read_only: true}
"""

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"  # 2,071 bytes, not UTF-8
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

#: name -> (content type, body, more headers)
FILES: dict[str, tuple[str | None, bytes, dict[str, str]]] = {
    "orders.csv": ("text/csv; charset=utf-8",
                   '\ufeffname,amount,note,name\r\nAnn,10,"says ""hi"", twice",x\r\n'
                   '\r\nBob,5\r\nCy,1,"two\nlines",y,extra\r\n'.encode(), {}),
    "orders.tsv": ("text/tab-separated-values", b"a\tb\n1\t2\n", {}),
    "latin.csv": ("text/csv; charset=iso-8859-1", "name\nMüller\n".encode("latin-1"), {}),
    "invoice.pdf": ("application/pdf", PDF,
                    {"Content-Disposition": 'attachment; filename="INV-2026-001.pdf"'}),
    "sneaky.pdf": ("application/pdf", PDF, {
        "Content-Disposition":
            "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpass%0Awd%22%3Cb%3E.pdf"}),
    "spoof.pdf": ("application/pdf", PDF, {  # U+202E shows "invoice-exe.pdf"
        "Content-Disposition": "attachment; filename*=UTF-8''invoice-%E2%80%AEfdp.exe"}),
    "logo.png": ("image/png", PNG, {}),
    "logo.svg": ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"/>', {}),
    "untyped.bin": (None, b"\x00\x01\x02binary", {}),
    "untyped.txt": (None, "plain words, ünïcode".encode(), {}),
    "big.pdf": ("application/pdf", b"%PDF" + bytes(8192), {}),
    "long.csv": ("text/csv", b"n\n" + b"1\n" * 100_001, {}),
    "wide.csv": ("text/csv", b"a," * 1_000 + b"b\n", {}),
    "fat.csv": ("text/csv", b'a\n"' + b"x" * 200_000 + b'"\n', {}),
}


def upstream() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        kind, body, headers = FILES[request.match_info["name"]]
        response = web.Response(body=body, headers=headers)
        # aiohttp sends application/octet-stream when no type is set: an empty one stands
        # for an upstream naming none
        response.headers["Content-Type"] = kind or ""
        return response

    app = web.Application()
    app.router.add_get("/files/{name}", handler)
    return app


@asynccontextmanager
async def reports(tmp_path: Path, store_url: str | None = None
                  ) -> AsyncIterator[Patchwire]:
    """A Patchwire with connection ``main`` to the upstream, its store on ``store_url``
    (None: a SQLite file in ``tmp_path``)."""
    async with serve(upstream()) as url:
        spec = load_connector_text(CONNECTOR, "reports.yaml")
        store = {} if store_url is None else {"database_url": store_url}
        settings = local_settings(tmp_path / "home", **store)
        async with Patchwire(settings, connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("reports", "main", {"url": url})
            yield pw


async def _blob_rows(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM blobs")) or 0)


async def test_a_csv_answer_becomes_a_list_of_objects_keyed_by_its_header(
        tmp_path: Path) -> None:
    async with reports(tmp_path) as pw:
        rows = await pw.call("reports.export", {"name": "orders.csv"})
        tsv = await pw.call("reports.export", {"name": "orders.tsv"})
        latin = await pw.call("reports.export", {"name": "latin.csv"})
        counted = await pw.call("reports.export_count", {"name": "orders.csv"})
    assert rows == [
        {"name": "Ann", "amount": "10", "note": 'says "hi", twice', "name_2": "x"},
        {"name": "Bob", "amount": "5"},  # a short row lacks the keys it does not reach
        {"name": "Cy", "amount": "1", "note": "two\nlines", "name_2": "y",
         "_extra": ["extra"]},
    ]
    assert tsv == [{"a": "1", "b": "2"}]
    assert latin == [{"name": "Müller"}]
    assert counted == {"rows": 3, "first": "Ann"}


@pytest.mark.parametrize(("name", "says"), [
    ("long.csv", "the upstream's CSV answer has more than 100000 rows"),
    ("wide.csv", "the upstream's CSV answer has 1001 columns, more than 1000"),
    ("fat.csv", "the upstream's CSV answer cannot be read at line 2: field larger than"),
])
async def test_a_csv_answer_past_its_bounds_is_a_typed_error(
        tmp_path: Path, name: str, says: str) -> None:
    async with reports(tmp_path) as pw:
        with pytest.raises(ResponseMappingError) as caught:
            await pw.call("reports.export", {"name": name})
    assert says in caught.value.message


async def test_a_pdf_answer_is_metadata_and_a_stored_blob_never_its_bytes(
        store_url: str, tmp_path: Path) -> None:
    async with reports(tmp_path, store_url) as pw:
        result = await pw.call("reports.export", {"name": "invoice.pdf"})
        stored = await BlobRepository(pw.store).get(result["blob"], end_user=None)
    assert result == {"blob": result["blob"], "content_type": "application/pdf",
                      "size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest(),
                      "filename": "INV-2026-001.pdf"}
    assert len(result["blob"]) == 32
    assert stored is not None and stored.content == PDF
    assert (stored.connection, stored.end_user, stored.action) == ("main", None,
                                                                    "reports.export")
    assert stored.expires_at - stored.created_at == timedelta(hours=24)


async def test_a_response_mapping_sees_a_binary_answers_metadata(
        tmp_path: Path) -> None:
    async with reports(tmp_path) as pw:
        result = await pw.call("reports.invoice", {"name": "invoice.pdf"})
        stored = await BlobRepository(pw.store).get(result["file"], end_user=None)
    assert result["bytes"] == len(PDF) and result["name"] == "INV-2026-001.pdf"
    assert stored is not None and stored.content == PDF  # kept though the mapping renamed it


async def test_a_tool_result_of_a_pdf_holds_its_reference_and_no_base64(
        tmp_path: Path) -> None:
    async with reports(tmp_path) as pw:
        result = await ToolInvoker(pw).invoke("reports_invoice",
                                                      {"name": "invoice.pdf"})
    assert result.status == "ok", result.text
    assert result.data["file"] in result.text
    assert len(result.text) < 300
    encoded = base64.b64encode(PDF).decode()
    assert encoded[:40] not in result.text and "JVBERi" not in result.text  # "%PDF" in base64


async def test_images_and_untyped_bytes_are_blobs_and_untyped_text_is_text(
        tmp_path: Path) -> None:
    async with reports(tmp_path) as pw:
        png = await pw.call("reports.export", {"name": "logo.png"})
        svg = await pw.call("reports.export", {"name": "logo.svg"})
        untyped = await pw.call("reports.export", {"name": "untyped.bin"})
        words = await pw.call("reports.export", {"name": "untyped.txt"})
    assert png["content_type"] == "image/png" and png["size"] == len(PNG)
    assert svg["content_type"] == "image/svg+xml"  # a picture to keep, not data to map
    assert untyped["content_type"] == "application/octet-stream"
    assert words == "plain words, ünïcode"


async def test_a_hostile_file_name_is_made_safe(tmp_path: Path) -> None:
    async with reports(tmp_path) as pw:
        result = await pw.call("reports.export", {"name": "sneaky.pdf"})
        spoof = await pw.call("reports.export", {"name": "spoof.pdf"})
    # no directory part, no line break, no quote or angle bracket survives
    assert result["filename"] == "passwd__b_.pdf"
    assert spoof["filename"] == "invoice-fdp.exe"  # no right-to-left override: as it is


async def test_a_binary_answer_over_the_cap_fails_naming_it_and_keeps_nothing(
        tmp_path: Path) -> None:
    async with reports(tmp_path) as pw:
        with pytest.raises(ResponseMappingError) as caught:
            await pw.call("reports.export", {"name": "big.pdf"})
        assert await _blob_rows(pw.store) == 0
        await pw.flush()
        (call,) = await pw.store.list_calls()
    assert "max_blob_bytes (4096)" in caught.value.message
    assert "8196 bytes" in caught.value.message
    assert call.status == "error" and call.error_class == "response_mapping_error"


async def test_a_blob_expires_and_only_its_end_user_finds_it(store: Store) -> None:
    now = [datetime(2026, 12, 7, 10, tzinfo=UTC)]
    blobs = BlobRepository(store, ttl=timedelta(hours=1), now=lambda: now[0])
    kept = await blobs.put(NewBlob(id="ab" * 16, connection="u1-files", end_user="u1",
                                   action="files.get", content_type="application/pdf",
                                   filename=None, sha256="0" * 64, content=b"%PDF-1"))
    assert kept.size == 6
    found = await blobs.get(kept.id, end_user="u1")
    assert found is not None and found.content == b"%PDF-1"
    assert await blobs.get(kept.id, end_user="u2") is None
    assert await blobs.get(kept.id, end_user=None) is not None  # an operator
    assert await blobs.get(kept.id, end_user="u1", connection="u1-files") is not None
    assert await blobs.get(kept.id, end_user=None, connection="u2-files") is None
    now[0] += timedelta(hours=1)
    assert await blobs.get(kept.id, end_user="u1") is None  # expired: gone for everyone
    assert await blobs.get(kept.id, end_user=None) is None
    # the next write clears expired ones
    await blobs.put(NewBlob(id="cd" * 16, connection="c", end_user=None, action="files.get",
                            content_type="image/png", filename="a.png", sha256="1" * 64,
                            content=b"png"))
    assert await _blob_rows(store) == 1
    now[0] += timedelta(hours=2)
    assert await blobs.purge_expired() == 1

