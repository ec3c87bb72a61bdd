"""Bodies with structure: an object inside the body whose optional members were all left
out is not sent as ``{}``, and ``"{$input}"`` may stand for the rest of the arguments inside
an envelope (``{properties: "{$input}"}``, as HubSpot-style APIs want)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import Patchwire
from tests.support.upstream import RecordingUpstream, patchwire_serving

CONNECTOR = """
name: crm
base_url: "{url}"
settings: {url: {}}
auth: {type: none}
retry: {attempts: 1}
actions:
  create_contact:
    input:
      type: object
      properties:
        owner: {type: string}
        email: {type: string}
        phone: {type: string}
        city: {type: string}
        tags: {type: array, items: {type: string}}
      additionalProperties: false
    request:
      method: POST
      path: /contacts
      body:
        owner: "{owner}"
        kind: contact
        options: {}
        address: {city: "{city}"}
        properties: "{$input}"
  wrap_all:
    input: {type: object, properties: {title: {type: string}, note: {type: string}}}
    request:
      method: POST
      path: /contacts
      body: {data: {attributes: "{$input}"}}
  header_and_rest:
    input:
      type: object
      properties: {key: {type: string}, title: {type: string}}
    request:
      method: POST
      path: /contacts
      headers: {Idempotency-Key: "{key}"}
      body: {record: "{$input}"}
"""


@pytest.fixture
def contacts() -> RecordingUpstream:
    return RecordingUpstream("/contacts")


@pytest.fixture
async def pw(tmp_path: Path, contacts: RecordingUpstream) -> AsyncIterator[Patchwire]:
    async with patchwire_serving(tmp_path, contacts.app(), CONNECTOR) as opened:
        yield opened


async def test_input_inside_an_envelope_sends_the_arguments_the_body_does_not_name(
        pw: Patchwire, contacts: RecordingUpstream) -> None:
    await pw.call("crm.create_contact", {"owner": "u7", "email": "a@b.co", "city": "Oslo",
                                         "tags": ["vip"]}, connection="main")
    assert contacts.bodies == [{
        "owner": "u7", "kind": "contact", "options": {}, "address": {"city": "Oslo"},
        "properties": {"email": "a@b.co", "tags": ["vip"]}}]


async def test_an_object_whose_optional_members_are_all_absent_is_left_out_not_sent_empty(
        pw: Patchwire, contacts: RecordingUpstream) -> None:
    await pw.call("crm.create_contact", {"email": "a@b.co"}, connection="main")
    # address's only member (city) was not given: no "address": {}; the connector's own
    # literal "options": {} is sent as written
    assert contacts.bodies == [{"kind": "contact", "options": {},
                                "properties": {"email": "a@b.co"}}]


async def test_input_nested_two_levels_down_carries_every_argument(
        pw: Patchwire, contacts: RecordingUpstream) -> None:
    await pw.call("crm.wrap_all", {"title": "Call back", "note": "after 5"}, connection="main")
    await pw.call("crm.wrap_all", {}, connection="main")
    assert contacts.bodies == [{"data": {"attributes": {"title": "Call back", "note": "after 5"}}},
                               {"data": {"attributes": {}}}]


async def test_an_argument_sent_in_a_header_is_not_repeated_in_the_nested_rest(
        pw: Patchwire, contacts: RecordingUpstream) -> None:
    await pw.call("crm.header_and_rest", {"key": "k-1", "title": "T"}, connection="main")
    assert contacts.bodies == [{"record": {"title": "T"}}]


async def test_a_model_cannot_smuggle_a_template_through_an_argument_value(
        pw: Patchwire, contacts: RecordingUpstream) -> None:
    # a prompt-injected value that looks like a template is data, sent as written
    await pw.call("crm.wrap_all", {"title": "{$input}", "note": "{owner}"}, connection="main")
    assert contacts.bodies == [{"data": {"attributes": {"title": "{$input}", "note": "{owner}"}}}]
