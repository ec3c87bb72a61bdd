"""A paginated action whose upstream answers XML pages walks them like JSON ones: the
pagination expressions read each page as data, also when the action maps its result."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tests.support.upstream import patchwire_serving

CONNECTOR = """
name: ledger
base_url: "{url}"
settings:
  url: {}
retry: {attempts: 1}
actions:
  list_entries:
    input: {type: object, properties: {cursor: {type: string}}}
    request: {path: /entries, query: {cursor: "{cursor}"}}
    response: "[Page.Entry.{'id': `@id`}]"
    pagination:
      style: cursor
      next_cursor: "Page.`@next`"
"""

PAGES = {
    "": b'<Page next="p2"><Entry id="1"/><Entry id="2"/></Page>',
    "p2": b'<Page next="p3"><Entry id="3"/></Page>',
    "p3": b"<Page><Entry id=\"4\"/><Entry id=\"5\"/></Page>",
}


def app() -> web.Application:
    async def entries(request: web.Request) -> web.Response:
        return web.Response(body=PAGES[request.query.get("cursor", "")],
                            content_type="application/xml")

    application = web.Application()
    application.router.add_get("/entries", entries)
    return application


async def test_xml_pages_of_an_action_with_a_response_mapping_are_walked_to_the_end(
        tmp_path: Path) -> None:
    async with patchwire_serving(tmp_path, app(), CONNECTOR) as pw:
        seen = [e async for e in pw.paginate("ledger.list_entries", {}, max_pages=10)]
    assert seen == [{"id": str(n)} for n in range(1, 6)]
