"""A hostile upstream answering XML: external entities reading a file or calling a URL
(XXE), entity expansion bombs (billion laughs, quadratic blowup), nesting and size past
the bounds. Each is refused by construction — a typed ResponseMappingError saying what was
refused — with nothing read, fetched or expanded; over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire, UpstreamError
from patchwire.errors import ResponseMappingError
from tests.support.hostile import memory_peak
from tests.support.servers import serve
from tests.support.upstream import patchwire_serving

CONNECTOR = """
name: hostile
base_url: "{url}"
settings:
  url: {}
retry: {attempts: 1}
actions:
  fetch:
    input: {type: object, properties: {status: {type: integer}}}
    request: {path: /answer, query: {status: "{status}"}}
"""

SECRET = "canary-3f9a1c-the-file-must-not-be-read"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

#: one 50 kB entity referenced 50,000 times: 2.5 GB once expanded, no nesting needed
QUADRATIC = (b'<?xml version="1.0"?><!DOCTYPE kaboom [<!ENTITY a "' + b"a" * 50_000
             + b'">]><kaboom>' + b"&a;" * 50_000 + b"</kaboom>")


class Hostile:
    """The upstream answers whatever ``answer`` holds; ``bait`` is a second server an
    external entity points at, counting the requests it gets."""

    def __init__(self) -> None:
        self.answer = b""
        self.bait_requests: list[str] = []

    def upstream(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            status = int(request.query.get("status", "200"))
            return web.Response(status=status, body=self.answer,
                                headers={"Content-Type": "application/xml"})

        app = web.Application()
        app.router.add_get("/answer", handler)
        return app

    def bait(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            self.bait_requests.append(request.path)
            return web.Response(text=f'<!ENTITY leak "{SECRET}">')

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


@asynccontextmanager
async def hostile(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, Hostile, str]]:
    """(Patchwire calling the upstream, the upstream's script, the bait server's URL)."""
    script = Hostile()
    async with serve(script.bait()) as bait, patchwire_serving(
            tmp_path, script.upstream(), CONNECTOR) as pw:
        yield pw, script, bait


async def _refused(pw: Patchwire, answer: bytes, script: Hostile) -> str:
    script.answer = answer
    with pytest.raises(ResponseMappingError) as caught:
        await pw.call("hostile.fetch", {})
    assert SECRET not in str(caught.value)
    return caught.value.message


async def test_an_external_entity_reading_a_file_is_refused_unread(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    async with hostile(tmp_path) as (pw, script, _):
        message = await _refused(pw, (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
            f'"file://{secret_file}">]><r>&x;</r>').encode(), script)
    assert "refused the upstream's XML answer" in message
    assert "document type declaration (<!DOCTYPE r>)" in message
    assert "XXE" in message


async def test_an_external_entity_or_dtd_pointing_at_a_url_is_refused_unfetched(
        tmp_path: Path) -> None:
    async with hostile(tmp_path) as (pw, script, bait):
        entity = await _refused(pw, (
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "{bait}/entity">]><r>&x;</r>').encode(), script)
        dtd = await _refused(pw, (
            f'<!DOCTYPE r SYSTEM "{bait}/evil.dtd"><r>&leak;</r>').encode(), script)
        parameter = await _refused(pw, (
            f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{bait}/param.dtd"> %p;]><r>&leak;</r>'
        ).encode(), script)
    assert script.bait_requests == []  # the server an entity names never heard of us
    assert "document type declaration" in entity
    assert f"pointing at '{bait}/evil.dtd'" in dtd
    assert "document type declaration" in parameter


async def test_billion_laughs_is_refused_without_expanding(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (pw, script, _):
        with memory_peak() as peak:
            message = await _refused(pw, BILLION_LAUGHS, script)
    assert "<!DOCTYPE lolz>" in message and "entity expansion" in message
    assert peak[0] < 20 * 1024 * 1024  # 3 GB once expanded; nothing near that is made


async def test_quadratic_blowup_is_refused_without_expanding(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (pw, script, _):
        with memory_peak() as peak:
            message = await _refused(pw, QUADRATIC, script)
    assert "<!DOCTYPE kaboom>" in message
    assert peak[0] < 40 * 1024 * 1024  # the answer itself is 200 kB; expanded, 2.5 GB


async def test_nesting_past_the_bound_is_refused_where_it_passes_it(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (pw, script, _):
        message = await _refused(pw, b"<a>" * 100_000 + b"</a>" * 100_000, script)
        # at the bound, still read
        script.answer = b"<a>" * 64 + b"deep" + b"</a>" * 64
        deep = await pw.call("hostile.fetch", {})
    assert "refused the upstream's XML answer: elements nested deeper than 64 levels" in message
    for _ in range(64):
        deep = deep["a"]
    assert deep == "deep"


async def test_more_elements_than_the_bound_are_refused(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (pw, script, _):
        message = await _refused(pw, b"<r>" + b"<i/>" * 100_000 + b"</r>", script)
    assert "more than 100000 elements and attributes" in message


async def test_xml_that_is_not_well_formed_is_a_typed_error_with_an_excerpt(
        tmp_path: Path) -> None:
    async with hostile(tmp_path) as (pw, script, _):
        message = await _refused(pw, b"<order><id>1</order>", script)
    assert "not well-formed (mismatched tag: line 1, column 14)" in message
    assert "<order><id>1</order>" in message


async def test_a_hostile_xml_error_answer_still_gives_the_statuss_typed_error(
        tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    async with hostile(tmp_path) as (pw, script, bait):
        script.answer = (f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret_file}">'
                         f'<!ENTITY y SYSTEM "{bait}/e">]><r>&x;&y;</r>').encode()
        with pytest.raises(UpstreamError) as caught:
            await pw.call("hostile.fetch", {"status": 500})
    assert caught.value.status == 500
    assert SECRET not in str(caught.value) and SECRET not in (caught.value.body_excerpt or "")
    assert script.bait_requests == []
