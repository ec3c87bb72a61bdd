"""`patchwire connector import` of GraphQL schemas: an SDL or introspection JSON file, or
``--introspect URL`` (the standard introspection query, sent through the HTTP core: the
SSRF guard and the response limits hold as for any upstream request)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from patchwire.cli._common import err_console, escape, fail, settings
from patchwire.connectors.graphql import import_graphql, introspection_of, introspection_query
from patchwire.connectors.openapi import ImportResult
from patchwire.errors import CallError, OpenAPIImportError

__all__ = ["fetch_introspection", "import_graphql_schema", "is_graphql_schema"]

#: an introspection answer larger than this is refused (GitHub's is ~5 MB)
MAX_INTROSPECTION_BYTES = 64 * 1024 * 1024
INTROSPECTION_TIMEOUT_S = 60.0


def is_graphql_schema(source: str) -> bool:
    """Whether ``source`` names a GraphQL schema file: ``.graphql``/``.gql``/``.graphqls``,
    or JSON holding an introspection result (``__schema`` near its start)."""
    lowered = source.lower()
    if lowered.endswith((".graphql", ".gql", ".graphqls")):
        return True
    if lowered.endswith(".json") and Path(source).is_file():
        try:
            with open(source, "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
        return b'"__schema"' in head
    return False


def fetch_introspection(url: str, headers: list[str]) -> dict[str, Any]:
    """The answer of ``url`` to the introspection query, POSTed through the HTTP core."""
    from patchwire.connectors.spec import Timeouts
    from patchwire.http import HttpCore, PreparedRequest

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--introspect needs an http(s) URL, not {escape(url)!r}")
    sent: dict[str, str] = {"Content-Type": "application/json",
                            "Accept": "application/graphql-response+json, application/json",
                            "User-Agent": "patchwire-graphql-import"}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            fail("--header takes 'Name: value' (e.g. 'Authorization: Bearer ...')")
        sent[name.strip()] = value.strip()
    body = json.dumps({"query": introspection_query(),
                       "operationName": "IntrospectionQuery"}).encode()

    async def fetch() -> tuple[int, bytes]:
        core = HttpCore(allow_networks=settings().allow_networks)
        try:
            t = INTROSPECTION_TIMEOUT_S
            limits = core.limits(Timeouts(connect=10, read=t, total=t), MAX_INTROSPECTION_BYTES)
            req = PreparedRequest(method="POST", url=url, headers=sent, data=body,
                                  credentials=frozenset(h.lower() for h in sent
                                                        if h.lower() not in (
                                                            "content-type", "accept",
                                                            "user-agent")))
            raw = await core.exchange(req, limits)
            return raw.status, raw.body
        finally:
            await core.close()

    try:
        status, raw_body = asyncio.run(fetch())
    except CallError as exc:
        fail(escape(f"{_safe(url)}: cannot introspect: {exc.message}"))
    try:
        answer = json.loads(raw_body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        fail(escape(f"{_safe(url)}: HTTP {status}: the answer is not JSON"))
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if status >= 400 or (errors and not (isinstance(answer, dict) and answer.get("data"))):
        first = errors[0].get("message") if isinstance(errors, list) and errors and isinstance(
            errors[0], dict) else None
        fail(escape(f"{_safe(url)}: HTTP {status}: introspection refused"
                    + (f": {str(first)[:300]}" if first else "")))
    try:
        return dict(introspection_of(answer, _safe(url)))
    except ValueError as exc:
        fail(escape(str(exc)))


def import_graphql_schema(
    source: str, *, introspect: bool, headers: list[str], output: Path | None,
    name: str | None, base_url: str | None, endpoint: str | None, fields: str | None,
    depth: int, stdout: bool,
) -> ImportResult:
    """Import ``source`` (a schema file, or with ``introspect`` a URL) and write the
    connector (unless ``stdout``) with its schema beside it, so every document is
    validated against it whenever the connector loads."""
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    schema_data: dict[str, Any] | None = None
    if introspect:
        schema_data = fetch_introspection(source, headers)
        parts = urlsplit(source)
        base_url = base_url or f"{parts.scheme}://{parts.netloc}"
        endpoint = endpoint or parts.path or "/"
    label = _safe(source) if introspect else source
    try:
        result = import_graphql(schema_data if schema_data is not None else Path(source),
                                name=name, base_url=base_url, endpoint=endpoint,
                                fields=chosen, depth=depth, label=label)
        if stdout:
            return result
        target = output or Path("connectors") / f"{result.connector.name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        if schema_data is not None:
            schema_file = target.parent / f"{target.stem}.schema.json"
            schema_file.write_text(json.dumps({"data": schema_data}), encoding="utf-8")
            ref = schema_file.name
        else:
            ref = os.path.relpath(Path(source).resolve(), target.parent.resolve())
        gql = result.connector.graphql
        assert gql is not None
        # the schema beside the connector: documents are checked against it on every load
        result.connector = result.connector.model_copy(
            update={"graphql": gql.model_copy(update={"schema_file": ref})})
    except OpenAPIImportError as exc:
        fail(escape(str(exc)))
    target.write_text(result.to_yaml(), encoding="utf-8")
    err_console.print(f"[green]imported[/] {result.connector.name}: "
                      f"{len(result.connector.actions)} action(s) → {escape(str(target))}")
    return result


def _safe(url: str) -> str:
    """A URL without its query and credentials, for messages and the file's header."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url
