"""A connector's own query parameters (``query:``): every REST action's request carries
them, filled from the connection's settings; an action's parameter of the same name wins,
and a credential can never be placed there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.errors import SpecError
from tests.support.servers import serve
from tests.support.settings import local_settings

CONNECTOR = """
name: books
base_url: "{url}"
settings:
  url: {}
  organization_id: {}
auth: {type: none}
retry: {attempts: 1}
query:
  organization_id: "{organization_id}"
actions:
  list_invoices:
    input: {type: object, properties: {status: {type: string}}}
    request: {path: /invoices, query: {status: "{status}"}}
  in_another_organisation:
    input: {type: object, properties: {org: {type: string}}, required: [org]}
    request: {path: /invoices, query: {organization_id: "{org}"}}
"""


Seen = tuple[Patchwire, list[str], str]


@pytest.fixture
async def seen(tmp_path: Path) -> AsyncIterator[Seen]:
    """A Patchwire knowing the connector, the queries its upstream saw, its URL."""
    queries: list[str] = []

    async def invoices(request: web.Request) -> web.Response:
        queries.append(request.rel_url.raw_query_string)  # as sent
        return web.json_response({"invoices": []})

    app = web.Application()
    app.router.add_get("/invoices", invoices)
    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "books.yaml")])
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=registry) as pw:
        yield pw, queries, url


async def test_every_action_carries_the_connectors_query_filled_from_the_settings(
        seen: Seen) -> None:
    pw, queries, url = seen
    conn = await _connect(pw, url, "10234695")
    await pw.call("books.list_invoices", {"status": "overdue"}, connection=conn)
    await pw.call("books.list_invoices", {}, connection=conn)
    assert queries == ["organization_id=10234695&status=overdue", "organization_id=10234695"]


async def test_an_actions_own_parameter_of_the_same_name_wins(
        seen: Seen) -> None:
    pw, queries, url = seen
    conn = await _connect(pw, url, "10234695")
    await pw.call("books.in_another_organisation", {"org": "777"}, connection=conn)
    assert queries == ["organization_id=777"]


async def test_a_setting_value_with_url_syntax_stays_one_encoded_parameter(
        seen: Seen) -> None:
    pw, queries, url = seen
    conn = await _connect(pw, url, "1&admin=true#x")
    await pw.call("books.list_invoices", {}, connection=conn)
    assert queries == ["organization_id=1%26admin%3Dtrue%23x"]


async def _connect(pw: Patchwire, url: str, organization_id: str) -> str:
    await pw.add_connection("books", "org", {"url": url, "organization_id": organization_id})
    return "org"


def test_a_secret_setting_in_the_connectors_query_is_refused_at_load_with_its_place() -> None:
    text = CONNECTOR.replace("organization_id: {}", "organization_id: {}\n  key: {secret: true}")
    text = text.replace('query:\n  organization_id: "{organization_id}"',
                        'query:\n  organization_id: "{organization_id}"\n  api_key: "{key}"')
    with pytest.raises(SpecError) as err:
        load_connector_text(text, "books.yaml")
    assert "query" in str(err.value) and "api_key" in str(err.value)
    assert "secret" in str(err.value)


def test_a_placeholder_naming_no_setting_in_the_query_is_refused_at_load() -> None:
    text = CONNECTOR.replace('organization_id: "{organization_id}"\nactions',
                             'organization_id: "{organisation}"\nactions')
    with pytest.raises(SpecError) as err:
        load_connector_text(text, "books.yaml")
    assert "{organisation}" in str(err.value)


def test_a_graphql_connector_with_a_query_is_refused_at_load_rather_than_dropping_it() -> None:
    text = """
name: gql
protocol: graphql
graphql: {endpoint: /graphql}
base_url: https://api.example.com
query: {version: "2026-01"}
actions: {}
"""
    with pytest.raises(SpecError) as err:
        load_connector_text(text, "gql.yaml")
    assert "`query` is for rest connectors" in str(err.value)
