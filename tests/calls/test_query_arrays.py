"""A list argument in a query parameter is written the way the API reads lists:
comma-separated by default, or repeated, space-, pipe- or tab-separated as the action's
``query_arrays`` says (what OpenAPI's style/explode and Swagger's collectionFormat
describe) — over real HTTP, as the upstream receives it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tests.support.upstream import patchwire_serving

CONNECTOR = """
name: catalog
base_url: "{url}"
settings:
  url: {}
retry: {attempts: 1}
actions:
  find:
    input:
      type: object
      properties:
        ids: {type: array, items: {type: string}}
        tags: {type: array, items: {type: string}}
        words: {type: array, items: {type: string}}
        flags: {type: array, items: {type: string}}
        cols: {type: array, items: {type: string}}
        q: {type: string}
    request:
      path: /items
      query: {ids: "{ids}", tags: "{tags}", words: "{words}", flags: "{flags}",
              cols: "{cols}", q: "{q}"}
      query_arrays: {tags: repeat, words: space, flags: pipe, cols: tab}
"""


def upstream(seen: list[str]) -> web.Application:
    async def items(request: web.Request) -> web.Response:
        seen.append(request.query_string)
        return web.json_response({"query": [[k, v] for k, v in request.query.items()]})

    app = web.Application()
    app.router.add_get("/items", items)
    return app


async def test_each_query_parameter_writes_a_list_the_way_its_style_says(
        tmp_path: Path) -> None:
    seen: list[str] = []
    async with patchwire_serving(tmp_path, upstream(seen), CONNECTOR) as pw:
        result = await pw.call("catalog.find", {
            "ids": ["1", "2"], "tags": ["red", "big & bold"], "words": ["a", "b"],
            "flags": ["x", "y"], "cols": ["c1", "c2"], "q": "z"})
    assert sorted(map(tuple, result["query"])) == sorted([
        ("ids", "1,2"), ("tags", "red"), ("tags", "big & bold"), ("words", "a b"),
        ("flags", "x|y"), ("cols", "c1\tc2"), ("q", "z")])


async def test_a_repeated_value_cannot_smuggle_another_parameter(tmp_path: Path) -> None:
    seen: list[str] = []
    async with patchwire_serving(tmp_path, upstream(seen), CONNECTOR) as pw:
        result = await pw.call("catalog.find", {"tags": ["a&admin=1", "b#frag", "c\r\nX: y"]})
    assert result["query"] == [["tags", "a&admin=1"], ["tags", "b#frag"],
                               ["tags", "c\r\nX: y"]]
    assert "admin=1" not in seen[0].replace("%26admin%3D1", "")
