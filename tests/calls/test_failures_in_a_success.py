"""Failures an upstream reports in a success (Slack answers most of them 200
``{"ok": false, "error": "..."}``) become typed errors by the connector's 2xx error rules,
over loopback HTTP; a success stays one, and a rule for a 2xx status must say which
bodies are failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    ResponseMappingError,
    SpecError,
    UpstreamError,
)
from tests.support.servers import serve
from tests.support.settings import local_settings

CONNECTOR = """
name: chat
base_url: "{url}"
settings:
  url: {}
  token: {secret: true}
auth: {type: bearer, token: "{token}"}
errors:
  - {status: 200, when: "ok = false and error = 'channel_not_found'", error: not_found,
     message: "'no channel ' & $input.channel"}
  - {status: 200, when: "ok = false and error in ['invalid_auth', 'not_authed']",
     error: auth, message: error}
  - {status: 200, when: "ok = false and error = 'ratelimited'", error: rate_limited,
     message: error}
  - {status: 2xx, when: "ok = false", error: upstream, message: error}
  - {status: 2xx, when: "$error('boom')", error: upstream}
actions:
  post:
    input:
      type: object
      properties: {channel: {type: string}}
      required: [channel]
      additionalProperties: false
    request: {method: POST, path: /chat.postMessage, body: {channel: "{channel}"}}
"""


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, list[Any]]]:
    answers: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        answer = answers.pop(0)
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="application/json")
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/chat.postMessage", handler)
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "chat.yaml")])
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry) as pw:
        await pw.add_connection("chat", "acme", {"url": url, "token": "xoxb-secret-1"})
        yield pw, answers


@pytest.mark.parametrize(("body", "kind", "said"), [
    ({"ok": False, "error": "channel_not_found"}, NotFoundError, "no channel #general"),
    ({"ok": False, "error": "invalid_auth"}, AuthError, "invalid_auth"),
    ({"ok": False, "error": "ratelimited"}, RateLimitedError, "ratelimited"),
    ({"ok": False, "error": "is_archived"}, UpstreamError, "is_archived"),
])
async def test_a_failure_reported_in_a_200_is_the_typed_error_its_rule_says(
        chat: tuple[Patchwire, list[Any]], body: dict[str, Any],
        kind: type[Exception], said: str) -> None:
    pw, answers = chat
    answers.append(body)
    with pytest.raises(kind) as caught:
        await pw.call("chat.post", {"channel": "#general"}, connection="acme")
    assert said in str(caught.value)
    assert "xoxb-secret-1" not in str(caught.value)
    [record] = await pw.recent_calls(limit=1)
    assert record.status == "error" and record.http_status == 200


async def test_a_success_stays_a_success_and_a_broken_rule_does_not_make_it_a_failure(
        chat: tuple[Patchwire, list[Any]]) -> None:
    pw, answers = chat
    answers.append({"ok": True, "ts": "1.2"})
    assert await pw.call("chat.post", {"channel": "#general"}, connection="acme") == {
        "ok": True, "ts": "1.2"}


async def test_a_200_whose_body_is_not_json_is_a_mapping_error_not_a_traceback(
        chat: tuple[Patchwire, list[Any]]) -> None:
    pw, answers = chat
    answers.append(b'{"ok": fal')
    with pytest.raises(ResponseMappingError):
        await pw.call("chat.post", {"channel": "#general"}, connection="acme")


def test_a_rule_for_a_success_status_must_say_which_bodies_are_failures() -> None:
    text = CONNECTOR.replace(
        "  - {status: 2xx, when: \"ok = false\", error: upstream, message: error}\n",
        "  - {status: 2xx, error: upstream}\n")
    with pytest.raises(SpecError, match="needs `when:`"):
        load_connector_text(text, "chat.yaml")
