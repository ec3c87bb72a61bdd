"""REST route for binary answers kept as blobs: ``GET /api/v1/blobs/{blob_id}``.

A call whose upstream answered bytes (a PDF invoice, an image) returns their metadata and
a reference, ``{"blob": id, ...}``; this route hands the bytes out — to an operator's key
with the ``read`` scope any blob, to an end user's token only a blob fetched through one
of that end user's connections (anything else, and an expired blob, is a 404, as if it
did not exist).

The bytes are served as an attachment, never rendered here: ``Content-Disposition:
attachment``, ``X-Content-Type-Options: nosniff`` and a sandboxing Content Security
Policy, so an upstream's HTML or script posing as a file cannot run on this origin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response

from patchwire.access import end_user_of, requires
from patchwire.errors import LookupFailed
from patchwire.store import Store
from patchwire.store.blobs import BlobRepository

__all__ = ["blobs_router"]

BlobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$",
                             description="the `blob` of a call's result")]


def blobs_router(store: Callable[[], Store]) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["calls"])

    @router.get("/blobs/{blob_id}", dependencies=[requires("read", end_users=True)],
                response_class=Response,
                summary="Download a binary answer a call kept (an end-user token: its own)",
                responses={200: {"content": {"application/octet-stream": {}},
                                 "description": "the bytes, as the upstream sent them"},
                           404: {"description": "no such blob, expired, or not yours"}})
    async def get_blob(blob_id: BlobId, request: Request) -> Response:
        blob = await BlobRepository(store()).get(blob_id, end_user=end_user_of(request))
        if blob is None:
            raise LookupFailed(f"no blob {blob_id!r} (or it has expired)")
        return Response(blob.content, media_type=blob.content_type, headers={
            "Content-Disposition": _attachment(blob.filename or f"{blob.id}"),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
            "ETag": f'"{blob.sha256}"',
        })

    return router


def _attachment(filename: str) -> str:
    """``attachment`` with the file name (RFC 6266: an ASCII fallback and the UTF-8 form);
    the name was made safe when the blob was kept, this keeps the header well-formed."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
