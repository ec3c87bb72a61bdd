"""`patchwire oauth-apps` and `patchwire connect-link`, run as the real command."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from patchwire.store import Store
from tests.support.cli import Cli

CONNECTOR = """
name: oauthy
base_url: "https://api.example.com"
settings:
  client_id: {required: false}
  client_secret: {secret: true, required: false}
auth:
  type: oauth2
  authorize_url: "https://auth.example.com/authorize"
  token_url: "https://auth.example.com/token"
actions:
  me: {request: {path: /me}}
"""




async def test_an_oauth_app_is_set_from_stdin_listed_without_its_secret_and_removed(
        tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (cli.connectors / "oauthy.yaml").write_text(CONNECTOR)
    secret = "app-secret-0f9e8d7c6b5a"
    result = await cli("oauth-apps", "set", "oauthy", "--client-id", "my-client",
                       "--client-secret-stdin", "--scope", "profile", stdin=secret + "\n")
    assert result.code == 0, result
    assert secret not in result.out + result.err
    listed = await cli("oauth-apps", "list", "--json")
    assert listed.code == 0, listed
    assert listed.json()[0]["client_id"] == "my-client"
    assert listed.json()[0]["scopes"] == ["profile"]
    assert secret not in listed.out
    async with await Store.open(f"sqlite+aiosqlite:///{cli.home / 'patchwire.db'}") as store, \
            store.engine.connect() as conn:
        assert secret not in str((await conn.execute(sa.text("SELECT * FROM oauth_apps"))).all())
    assert (await cli("oauth-apps", "remove", "oauthy")).code == 0
    gone = await cli("oauth-apps", "remove", "oauthy")
    assert gone.code == 1 and "no OAuth app" in gone.flat_err


async def test_the_secret_comes_from_an_environment_variable_never_the_command_line(
        tmp_path: Path) -> None:
    cli = Cli(tmp_path, env={"APP_SECRET": "from-env-secret"})
    (cli.connectors / "oauthy.yaml").write_text(CONNECTOR)
    result = await cli("oauth-apps", "set", "oauthy", "--client-id", "c",
                       "--client-secret-env", "APP_SECRET")
    assert result.code == 0, result
    neither = await cli("oauth-apps", "set", "oauthy", "--client-id", "c")
    assert neither.code == 2 and "exactly one" in neither.flat_err
    missing = await cli("oauth-apps", "set", "oauthy", "--client-id", "c",
                        "--client-secret-env", "NOT_SET_HERE")
    assert missing.code == 2 and "NOT_SET_HERE" in missing.flat_err


async def test_connect_link_prints_a_link_under_the_public_url(tmp_path: Path) -> None:
    cli = Cli(tmp_path, env={"PATCHWIRE_PUBLIC_URL": "https://pw.example.com"})
    result = await cli("connect-link", "user:7", "shop", "calendar")
    assert result.code == 0, result
    url = result.out.strip()
    assert url.startswith("https://pw.example.com/connect/") and len(url.rsplit("/", 1)[1]) == 43
    bad = await cli("connect-link", "user:7", "nosuch")
    assert bad.code == 1 and "nosuch" in bad.flat_err
    hostile = await cli("connect-link", "user:7", "shop", "--return-url", "javascript:x")
    assert hostile.code == 2 and "return_url" in hostile.flat_err
