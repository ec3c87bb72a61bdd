"""What a model's arguments can do to a request: never change which path is requested.

A real upstream on 127.0.0.1 records the raw request target it received, on both HTTP
paths (the call path's own client and aiohttp): a hostile path argument is either refused
before anything is sent, or arrives as one encoded path segment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from aiohttp import web

from patchwire import InputValidationError, Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.http import HttpCore
from patchwire.tools import ToolInvoker
from tests.support.servers import serve
from tests.support.settings import LOOPBACK, local_settings

CONNECTOR = """
name: team
base_url: "{url}/api"
settings:
  url: {}
actions:
  remove_member:
    input:
      type: object
      properties: {org: {type: string}, user: {type: string}}
      required: [org, user]
    request: {method: DELETE, path: "/orgs/{org}/members/{user}"}
    tool: {confirm: false}
  read_pair:
    input:
      type: object
      properties: {a: {type: string}, b: {type: string}}
      required: [a, b]
    request: {path: "/pairs/{a}{b}/detail"}
  read_file:
    input: {type: object, properties: {name: {type: string}}, required: [name]}
    request: {path: "/files/{name}.json"}
"""

#: values that would make a segment "." or ".." (or empty): refused, nothing sent
REFUSED = ["..", ".", ""]
#: values that look like traversal once decoded: sent, as one encoded segment
ENCODED = ["%2E%2E", "%2e.", ".%2E", "%2E", "../x", "a/..", "..%2F", "/", "...", "..\\",
           "%2F..", "..;", "?x=..", "#.."]


@pytest.fixture(params=[True, False], ids=["wire", "aiohttp"])
async def team(request: pytest.FixtureRequest,
               tmp_path: Path) -> AsyncIterator[tuple[Patchwire, list[str]]]:
    """Patchwire with a connection ``acme`` to an upstream recording each raw target."""
    received: list[str] = []

    async def record(req: web.Request) -> web.Response:
        received.append(req.raw_path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "team.yaml")])
    http = HttpCore(allow_networks=LOOPBACK, wire=request.param)
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry, http=http) as pw:
        await pw.add_connection("team", "acme", {"url": url})
        yield pw, received
    await http.close()


@pytest.mark.parametrize("user", REFUSED)
async def test_a_dot_segment_path_argument_is_refused_with_a_validation_error_naming_it(
        team: tuple[Patchwire, list[str]], user: str) -> None:
    pw, received = team
    with pytest.raises(InputValidationError) as info:
        await pw.call("team.remove_member", {"org": "acme", "user": user})
    assert [p.path for p in info.value.problems] == ["$.user"]
    assert received == []


@pytest.mark.parametrize("user", ENCODED)
async def test_a_path_argument_arrives_as_exactly_one_encoded_segment(
        team: tuple[Patchwire, list[str]], user: str) -> None:
    pw, received = team
    await pw.call("team.remove_member", {"org": "acme", "user": user})
    (target,) = received
    segments = target.split("/")
    assert segments[:5] == ["", "api", "orgs", "acme", "members"]
    assert len(segments) == 6 and unquote(segments[5]) == user


async def test_placeholders_that_together_make_a_dot_segment_are_refused(
        team: tuple[Patchwire, list[str]]) -> None:
    pw, received = team
    with pytest.raises(InputValidationError) as info:
        await pw.call("team.read_pair", {"a": ".", "b": "."})
    assert {p.path for p in info.value.problems} <= {"$.a", "$.b"}
    assert received == []


async def test_a_dot_argument_beside_literal_text_stays_in_its_segment(
        team: tuple[Patchwire, list[str]]) -> None:
    pw, received = team
    await pw.call("team.read_file", {"name": "."})
    await pw.call("team.read_pair", {"a": "x", "b": ".."})
    assert received == ["/api/files/..json", "/api/pairs/x../detail"]


async def test_a_model_gets_a_readable_validation_error_for_a_dot_segment_argument(
        team: tuple[Patchwire, list[str]]) -> None:
    pw, received = team
    result = await ToolInvoker(pw).invoke("team_remove_member", {"org": "acme", "user": ".."})
    assert result.status == "invalid_arguments"
    assert "user" in result.text and "internal error" not in result.text
    assert received == []
