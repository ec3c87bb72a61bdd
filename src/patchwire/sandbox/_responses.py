"""JSON responses and the one error shape every sandbox API answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; responses are built from these so hot paths can cache them."""
    return _dumps(value).encode()


def json_bytes_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_bytes_response(dumps(value), status, headers)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


class ApiError(Exception):
    """Raised by handlers; the app middleware turns it into ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        return json_response(
            error_body(self.code, self.message, **self.extra), self.status, self.headers
        )


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{kind} {ident!r} does not exist")


class FieldErrors:
    """Collects per-field validation problems so one 422 reports all of them."""

    def __init__(self) -> None:
        self.fields: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.fields.append({"field": field, "message": message})

    def __bool__(self) -> bool:
        return bool(self.fields)

    def raise_if_any(self) -> None:
        if self.fields:
            raise ApiError(
                422, "validation_failed", "the request has invalid fields", fields=self.fields
            )


def validation_error(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "validation_failed",
        "the request has invalid fields",
        fields=[{"field": field, "message": message}],
    )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/415 the client can act on."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        value = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return value


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """A form-encoded body; JSON is refused because the real APIs modelled here refuse it."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as application/x-www-form-urlencoded",
        )
    return await request.post()


def int_param(
    query: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int
) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(name, "must be an integer") from None
    if value < minimum or value > maximum:
        raise validation_error(name, f"must be between {minimum} and {maximum}")
    return value
