"""A small upstream, built inline, that pages in every declared style — and misbehaves on
purpose (loops, foreign next links, pages that ignore their parameters)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from tests.support.servers import serve

KEY = "feed-key-9c1d"
RECORDS = [{"id": n} for n in range(1, 24)]  # 23: no page size divides it

CONNECTOR = """
name: feed
base_url: "{url}/api"
settings:
  url: {}
  key: {secret: true}
# in the query on purpose: the credential must survive following a next URL
auth: {type: api_key, in: query, name: key, value: "{key}"}
pagination: {style: link, limit_param: size, page_size: 10}
actions:
  linked:
    input: {type: object, properties: {size: {type: integer}}, additionalProperties: false}
    request: {path: /linked, query: {size: "{size}"}}
  by_cursor:
    request: {path: /cursor}
    pagination: {style: cursor, items: items, next_cursor: next, limit_param: limit,
                 page_size: 10}
  by_header:
    request: {path: /header}
    pagination: {style: cursor, cursor_header: X-Next-Cursor, cursor_param: after}
  by_page:
    request: {path: /pages}
    pagination: {style: page, items: results, page_param: p, first_page: 0,
                 limit_param: size, page_size: 10}
  by_offset:
    request: {path: /offset}
    pagination: {style: offset, offset_param: skip, limit_param: take, page_size: 10}
  by_next_url:
    request: {path: /next_url}
    response: data
    pagination: {style: next_url, items: data, next_url: links.next}
  single:
    request: {path: /single}
    pagination: {style: none}
  loop_cursor:
    request: {path: /loop_cursor}
    pagination: {style: cursor, items: data, next_cursor: next}
  loop_link:
    request: {path: /loop_link}
  loop_pages:
    request: {path: /loop_pages}
    pagination: {style: page, limit_param: size, page_size: 5}
  foreign_link:
    request: {path: /foreign_link}
  endless:
    request: {path: /endless}
    pagination: {style: cursor, items: data, next_cursor: next}
"""


@dataclass
class Feed:
    url: str = ""
    #: path and query of every request that reached the upstream
    requests: list[str] = field(default_factory=list)

    def queries(self) -> list[dict[str, str]]:
        """The query parameters of every request, in order (their order within a query
        is aiohttp's business)."""
        return [dict(parse_qsl(urlsplit(r).query)) for r in self.requests]


def _window(start: int, size: int) -> list[dict[str, int]]:
    return RECORDS[start : start + size]


def _int(request: web.Request, name: str, default: int) -> int:
    return int(request.query.get(name, default))


def make_app(feed: Feed) -> web.Application:
    @web.middleware
    async def check_key(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        feed.requests.append(request.path_qs)
        if request.query.get("key") != KEY:
            return web.json_response({"error": "bad key"}, status=401)
        return await handler(request)

    async def linked(request: web.Request) -> web.StreamResponse:
        page, size = _int(request, "page", 1), _int(request, "size", 10)
        resp = web.json_response(_window((page - 1) * size, size))
        # Two Link fields, an unquoted rel, a rel list, parameters before rel, relative URLs
        resp.headers.add("Link", f'<?page=1&size={size}>; rel=first')
        if page * size < len(RECORDS):
            rel = '"Next last"' if page % 2 else "NEXT"
            resp.headers.add(
                "Link", f'</api/linked?size={size}&page={page + 1}>; title="page, next"; rel={rel}'
            )
        return resp

    async def cursor(request: web.Request) -> web.StreamResponse:
        start, size = int(request.query.get("cursor") or 0), _int(request, "limit", 20)
        end = start + size
        return web.json_response({"items": _window(start, size),
                                  "next": str(end) if end < len(RECORDS) else None})

    async def header(request: web.Request) -> web.StreamResponse:
        start = int(request.query.get("after") or 0)
        headers = {"X-Next-Cursor": str(start + 4)} if start + 4 < len(RECORDS) else {}
        return web.json_response(_window(start, 4), headers=headers)

    async def pages(request: web.Request) -> web.StreamResponse:
        page, size = _int(request, "p", 0), _int(request, "size", 10)
        return web.json_response({"results": _window(page * size, size)})

    async def offset(request: web.Request) -> web.StreamResponse:
        return web.json_response(_window(_int(request, "skip", 0), _int(request, "take", 10)))

    async def next_url(request: web.Request) -> web.StreamResponse:
        page = _int(request, "page", 0)
        more = (page + 1) * 6 < len(RECORDS)
        nxt = f"{feed.url}/api/next_url?page={page + 1}" if more else None
        return web.json_response({"data": _window(page * 6, 6), "links": {"next": nxt}})

    async def single(request: web.Request) -> web.StreamResponse:
        return web.json_response(RECORDS[0])

    async def loop_cursor(request: web.Request) -> web.StreamResponse:
        # a buggy API: the cursor it hands out never moves on
        return web.json_response({"data": [RECORDS[0]], "next": "same"})

    async def loop_link(request: web.Request) -> web.StreamResponse:
        resp = web.json_response([RECORDS[_int(request, "page", 1)]])
        resp.headers["Link"] = '</api/loop_link?page=2>; rel="next"'
        return resp

    async def loop_pages(request: web.Request) -> web.StreamResponse:
        # ignores the page parameter: every page is the first one
        return web.json_response(_window(0, _int(request, "size", 5)))

    async def foreign_link(request: web.Request) -> web.StreamResponse:
        # same server, but named differently: another origin all the same
        port = request.url.port
        resp = web.json_response([RECORDS[0]])
        resp.headers["Link"] = f'<http://localhost:{port}/api/linked?page=2>; rel="next"'
        return resp

    async def endless(request: web.Request) -> web.StreamResponse:
        # a cursor that always moves on: only a page bound ends this walk
        n = int(request.query.get("cursor") or 0)
        return web.json_response({"data": [{"id": n}], "next": str(n + 1)})

    app = web.Application(middlewares=[check_key])
    for path, handler in {
        "linked": linked, "cursor": cursor, "header": header, "pages": pages,
        "offset": offset, "next_url": next_url, "single": single,
        "loop_cursor": loop_cursor, "loop_link": loop_link, "loop_pages": loop_pages,
        "foreign_link": foreign_link, "endless": endless,
    }.items():
        app.router.add_get(f"/api/{path}", handler)
    return app


@asynccontextmanager
async def serve_feed() -> AsyncIterator[Feed]:
    feed = Feed()
    async with serve(make_app(feed)) as url:
        feed.url = url
        yield feed
