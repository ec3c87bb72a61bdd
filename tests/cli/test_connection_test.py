"""`patchwire connection test NAME` and `connection add --test`: one cheap call (the
connector's ``test:``) proves the credentials, against the sandbox on loopback; a wrong key
is caught when it is entered, without ever being printed, and `add --test` does not keep it.
"""

from __future__ import annotations

import re

import pytest

from patchwire.sandbox import Sandbox
from tests.support.cli import Cli
from tests.support.leaks import leaks_in, new_canary

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


async def test_connection_test_answers_ok_with_a_good_key_and_names_the_refusal_of_a_wrong_one(
        cli: Cli, sandbox: Sandbox, canary: str) -> None:
    wrong = new_canary("wrongkey")
    for name, key in (("good", canary), ("wrong", wrong)):
        added = await cli("connection", "add", "shop", "--name", name, "--set",
                          f"sandbox_url={sandbox.url}", "--set-stdin", "api_key", stdin=key)
        assert added.code == 0, added

    good, bad, missing = await cli.all(["connection", "test", "good"],
                                       ["connection", "test", "wrong"],
                                       ["connection", "test", "nope"])

    assert good.code == 0, good
    assert re.search(r"ok: shop\.list_orders answered 200 in \d+ ms", good.flat_out), good
    assert bad.code == 1, bad
    assert "failed: the upstream refused the credentials of connection wrong (HTTP 401)" \
        in bad.flat_err
    assert "Traceback" not in bad.err
    assert missing.code == 1 and "'nope'" in missing.flat_err, missing
    for secret in (canary, wrong):
        assert leaks_in(cli.transcript().encode(), secret) == [], secret


async def test_add_with_test_keeps_a_good_key_and_does_not_save_a_wrong_one(
        cli: Cli, sandbox: Sandbox, canary: str) -> None:
    wrong = new_canary("wrongkey")

    refused = await cli("connection", "add", "shop", "--name", "acme", "--test", "--set",
                        f"sandbox_url={sandbox.url}", "--set-stdin", "api_key", stdin=wrong)

    assert refused.code == 1, refused
    assert "the upstream refused the credentials of connection acme" in refused.flat_err
    assert "connection acme not saved" in refused.flat_err
    assert "added" not in refused.flat_out
    listed = await cli("connection", "list", "--json")
    assert listed.json() == []

    kept = await cli("connection", "add", "shop", "--name", "acme", "--test", "--set",
                     f"sandbox_url={sandbox.url}", "--set-stdin", "api_key", stdin=canary)

    assert kept.code == 0, kept
    assert "ok: shop.list_orders answered 200" in kept.flat_out
    assert "added connection acme for shop" in kept.flat_out
    assert [c["name"] for c in (await cli("connection", "list", "--json")).json()] == ["acme"]
    for secret in (canary, wrong):
        assert leaks_in(cli.transcript().encode(), secret) == [], secret


async def test_a_connector_without_a_test_call_says_so_and_add_test_saves_nothing(
        cli: Cli, sandbox: Sandbox) -> None:
    (cli.connectors / "plain.yaml").write_text(
        "name: plain\nbase_url: '{sandbox_url}/shop'\nsettings:\n  sandbox_url: {}\n"
        "actions:\n  products:\n    request: {method: GET, path: /products}\n",
        encoding="utf-8")
    added = await cli("connection", "add", "plain", "--name", "p",
                      "--set", f"sandbox_url={sandbox.url}")
    assert added.code == 0, added

    tested, add_tested = await cli.all(
        ["connection", "test", "p"],
        ["connection", "add", "plain", "--name", "q", "--test",
         "--set", f"sandbox_url={sandbox.url}"])

    for result in (tested, add_tested):
        assert result.code == 1, result
        assert "connector 'plain' declares no test call" in result.flat_err
        assert "Traceback" not in result.err
    names = [c["name"] for c in (await cli("connection", "list", "--json")).json()]
    assert names == ["p"]


async def test_a_test_naming_an_action_the_connector_lacks_is_a_file_line_problem(
        cli: Cli) -> None:
    (cli.workdir / "typo.yaml").write_text(
        "name: typo\nbase_url: https://api.example.com\nactions:\n"
        "  list_things:\n    request: {method: GET, path: /things}\n"
        "test:\n  action: list_thing\n", encoding="utf-8")

    checked = await cli("connector", "check", "typo.yaml")

    assert checked.code == 1, checked
    assert "typo.yaml:7 at test.action: no action 'list_thing' to test with " \
           "(actions: list_things)" in checked.flat_err
