"""Against json-graphql-server (npm, marmelab's; nobody here wrote it) on 127.0.0.1:
`patchwire connector import --introspect URL` → the connector loads (its documents valid
against the introspected schema) → calls, mutations, page-by-page walks (its pages are
page/perPage variables) → errors. scripts/ci-graphql.sh installs the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_file, load_connector_text
from patchwire.errors import UpstreamValidationError
from tests.support.cli import Cli
from tests.support.oauth import ci_required
from tests.support.settings import local_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SERVER = (ROOT / ".fixtures-cache" / "graphql" / "node_modules" / "json-graphql-server"
          / "bin" / "json-graphql-server.cjs")
START_S = 20.0
STOP_S = 5.0

DATA = {
    "posts": [{"id": i, "title": f"post {i}", "views": i * 10, "user_id": 1 + i % 2}
              for i in range(1, 6)],
    "users": [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def json_graphql_server(tmp_path: Path) -> AsyncIterator[str]:
    """json-graphql-server on a free loopback port; yields its endpoint URL."""
    if not SERVER.exists():
        reason = f"json-graphql-server is not installed ({SERVER}); run scripts/ci-graphql.sh"
        if ci_required():
            pytest.fail(reason)
        pytest.skip(reason)
    data = tmp_path / "data.json"
    data.write_text(json.dumps(DATA), encoding="utf-8")
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        "node", str(SERVER), str(data), "--port", str(port), "--host", "127.0.0.1",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(START_S):
            while True:  # bounded by the timeout: listening once a connection is accepted
                if proc.returncode is not None:
                    raise AssertionError("json-graphql-server exited before listening")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                break
        yield f"http://127.0.0.1:{port}/"
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                async with asyncio.timeout(STOP_S):
                    await proc.wait()


async def test_a_real_graphql_server_from_introspection_to_pages_and_errors(
        tmp_path: Path) -> None:
    async with json_graphql_server(tmp_path) as url:
        cli = Cli(tmp_path / "work")
        run = await cli("connector", "import", "--introspect", url, "--name", "blog",
                        "-o", "connectors/blog.yaml")
        assert run.code == 0, run
        assert "imported blog: 16 action(s)" in run.flat_err
        path = cli.connectors / "blog.yaml"
        assert (cli.connectors / "blog.schema.json").exists()
        spec = load_connector_file(path)  # every document valid against the schema
        assert spec.actions["all_posts"].graphql is not None
        assert spec.actions["create_post"].input["required"] == ["title", "views", "user_id"]

        # page/perPage walks are declared by hand (the server's pages start at 0), and an
        # action written against a field the server lacks shows its validation error
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["actions"]["all_posts"]["pagination"] = {
            "style": "page", "page_param": "page", "first_page": 0,
            "limit_param": "perPage", "page_size": 2}
        raw["graphql"].pop("schema")
        raw["actions"]["stale"] = {"graphql": {"document": "{ allPosts { id nope } }"}}
        spec = load_connector_text(yaml.safe_dump(raw), str(path))

        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("blog", "main", {"token": "t"})
            post = await pw.call("blog.post", {"id": "2"})
            assert post["title"] == "post 2" and post["User"]["name"] == "ann"
            assert await pw.call("blog.post", {"id": "999"}) is None

            titles = [p["title"] async for p in pw.paginate("blog.all_posts")]
            assert titles == [f"post {i}" for i in range(1, 6)]

            hostile = '") { removePost(id: "1") { id } } #'
            created = await pw.call("blog.create_post",
                                    {"title": hostile, "views": 1, "user_id": "1"})
            assert created["title"] == hostile  # a value, never part of the document
            meta = await pw.call("blog.all_posts_meta")
            assert meta == {"count": 6}
            assert (await pw.call("blog.post", {"id": "1"}))["title"] == "post 1"

            with pytest.raises(UpstreamValidationError, match="nope"):
                await pw.call("blog.stale")


async def test_introspecting_a_private_address_is_refused_by_the_ssrf_guard(
        tmp_path: Path) -> None:
    async with json_graphql_server(tmp_path) as url:
        cli = Cli(tmp_path / "work", env={"PATCHWIRE_ALLOW_NETWORKS": ""})
        run = await cli("connector", "import", "--introspect", url, "--stdout")
    assert run.code == 1, run
    assert "cannot introspect" in run.flat_err and "127.0.0.1" in run.flat_err
    assert "Traceback" not in run.err


async def test_a_schema_file_imports_into_a_connector_that_names_it_beside_itself(
        tmp_path: Path) -> None:
    cli = Cli(tmp_path / "work")
    schema = cli.workdir / "api.graphql"
    schema.write_text("type Query { hello(name: String!): String, items(first: Int, "
                      "after: String): ItemConnection }\ntype ItemConnection { nodes: "
                      "[String], pageInfo: PageInfo! }\ntype PageInfo { hasNextPage: "
                      "Boolean!, endCursor: String }", encoding="utf-8")
    run = await cli("connector", "import", "api.graphql", "--name", "api", "--base-url",
                    "https://api.example.com", "--fields", "hello")
    assert run.code == 0, run
    spec = load_connector_file(cli.connectors / "api.yaml")
    assert set(spec.actions) == {"hello"}
    assert spec.graphql is not None and spec.graphql.schema_file == str(schema.resolve())
    check = await cli("connector", "check", "connectors/api.yaml")
    assert check.code == 0, check
