"""A GraphQL upstream on loopback executed by graphql-core's ``graphql()`` (the reference
implementation's port, not ours), with scripted raw answers for hostile cases, and the
connector that reaches it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from graphql import GraphQLError, build_schema, graphql

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_file
from patchwire.http import HttpCore
from tests.support.servers import serve
from tests.support.settings import local_settings

SDL = """
type Query {
  repository(owner: String!, name: String!): Repository
  echo(text: String!): String!
  items(first: Int, after: String): ItemConnection!
  rateLimit: RateLimit!
  secret: String
  partial: Partial
}
type Mutation {
  deleteAll: Int!
  addItem(input: ItemInput!): Item!
}
input ItemInput { name: String!, kind: Kind = SMALL }
enum Kind { SMALL LARGE }
type Repository { name: String!, stars: Int!, owner: String! }
type Item { id: ID!, name: String! }
type ItemConnection { nodes: [Item!]!, pageInfo: PageInfo!, totalCount: Int! }
type PageInfo { hasNextPage: Boolean!, endCursor: String }
type RateLimit { remaining: Int!, resetAt: String! }
type Partial { ok: String, bad: String }
"""

SCHEMA = build_schema(SDL)


def _cursor(n: int) -> str:
    return base64.b64encode(f"item:{n}".encode()).decode()


@dataclass
class GraphQLUpstream:
    """A GraphQL endpoint at ``/graphql``. ``raw`` answers (status, body bytes, content
    type) are sent instead of executing, one per request, while any are left."""

    item_count: int = 7
    rate_remaining: int = 4999
    rate_reset_at: str = "2099-01-01T00:00:00Z"
    deleted: int = 0
    raw: list[tuple[int, bytes, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def root(self) -> dict[str, Any]:
        upstream = self

        def repository(info: Any, owner: str, name: str) -> dict[str, Any] | None:
            if name == "missing":
                raise GraphQLError(f"Could not resolve to a Repository with the name "
                                   f"'{owner}/{name}'.", extensions={"type": "NOT_FOUND"})
            if name == "private":
                raise GraphQLError("Resource not accessible by integration",
                                   extensions={"code": "FORBIDDEN"})
            return {"name": name, "stars": 42, "owner": owner}

        def items(info: Any, first: int | None = None,
                  after: str | None = None) -> dict[str, Any]:
            start = 0
            if after is not None:
                start = int(base64.b64decode(after).decode().split(":")[1]) + 1
            size = first or 3
            end = min(start + size, upstream.item_count)
            nodes = [{"id": str(i), "name": f"item {i}"} for i in range(start, end)]
            return {"nodes": nodes, "totalCount": upstream.item_count,
                    "pageInfo": {"hasNextPage": end < upstream.item_count,
                                 "endCursor": _cursor(end - 1) if nodes else None}}

        def delete_all(info: Any) -> int:
            upstream.deleted += 1
            return upstream.deleted

        def secret(info: Any) -> str:
            raise GraphQLError("Too many requests", extensions={
                "code": "RATE_LIMITED", "retryAfter": 7})

        def partial(info: Any) -> dict[str, Any]:
            def bad(info: Any) -> str:
                raise GraphQLError("the bad field failed", extensions={"code": "INTERNAL"})
            return {"ok": "fine", "bad": bad}

        return {
            "repository": repository, "echo": lambda info, text: text, "items": items,
            "rateLimit": lambda info: {"remaining": upstream.rate_remaining,
                                       "resetAt": upstream.rate_reset_at},
            "deleteAll": delete_all, "secret": secret, "partial": partial,
            "addItem": lambda info, input: {"id": "99", "name": input["name"]},
        }

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            self.headers.append(dict(request.headers))
            body = await request.json()
            self.bodies.append(body)
            if self.raw:
                status, raw, ctype = self.raw.pop(0)
                return web.Response(status=status, body=raw, content_type=ctype)
            result = await graphql(SCHEMA, body["query"], root_value=self.root(),
                                   variable_values=body.get("variables"),
                                   operation_name=body.get("operationName"))
            return web.json_response(result.formatted)

        app = web.Application()
        app.router.add_post("/graphql", handler)
        return app


CONNECTOR = """
name: gh
protocol: graphql
base_url: "{url}"
settings:
  url: {}
  token: {secret: true}
auth: {type: bearer, token: "{token}"}
retry: {attempts: 2, backoff_initial: 0}
timeouts: {connect: 2, read: 5, total: 5}
graphql:
  schema: schema.graphql
  cost: github
actions:
  get_repository:
    input:
      type: object
      properties: {owner: {type: string}, name: {type: string}}
      required: [owner, name]
    graphql:
      document: |
        query Repo($owner: String!, $name: String!) {
          repository(owner: $owner, name: $name) { name stars owner }
        }
  echo:
    input: {type: object, properties: {text: {type: string}}, required: [text]}
    graphql:
      document: "query Echo($text: String!) { echo(text: $text) }"
  list_items:
    input: {type: object, properties: {first: {type: integer}, after: {type: string}}}
    pagination: {style: relay, limit_param: first, page_size: 3}
    graphql:
      document: |
        query Items($first: Int, $after: String) {
          items(first: $first, after: $after) { nodes { id name } pageInfo { hasNextPage endCursor } }
        }
  repo_with_limits:
    input: {type: object, properties: {name: {type: string}}, required: [name]}
    graphql:
      document: |
        query RepoLimits($name: String!) {
          repository(owner: "o", name: $name) { name }
          rateLimit { remaining resetAt }
        }
      data: repository
  secret:
    graphql: {document: "{ secret }"}
  partial:
    graphql: {document: "{ partial { ok bad } }"}
  delete_all:
    graphql: {document: "mutation { deleteAll }"}
  add_item:
    input:
      type: object
      properties:
        input: {type: object, properties: {name: {type: string}}, required: [name]}
      required: [input]
    graphql: {document: "mutation Add($input: ItemInput!) { addItem(input: $input) { id name } }"}
"""


def write_connector(directory: Path, text: str = CONNECTOR) -> Path:
    """The connector and its schema file beside it; returns the connector's path."""
    (directory / "schema.graphql").write_text(SDL, encoding="utf-8")
    path = directory / "gh.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def graphql_patchwire(
    tmp_path: Path, upstream: GraphQLUpstream, *, text: str = CONNECTOR,
    http: HttpCore | None = None,
) -> AsyncIterator[Patchwire]:
    """A Patchwire with connection ``main`` of the ``gh`` connector to ``upstream``."""
    async with serve(upstream.app()) as url:
        spec = load_connector_file(write_connector(tmp_path, text))
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=ConnectorRegistry([spec]), http=http) as pw:
            await pw.add_connection(spec.name, "main", {"url": url, "token": "tok-s3cret-1"})
            yield pw
