"""`patchwire connection default NAME` and `connection update --label`, and what the CLI
changes is told to subscribers like any other change (the facade publishes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.webhooks import WebhookOutbox
from tests.support.cli import Cli
from tests.support.settings import LOOPBACK, local_settings

#: slow (the patchwire command in subprocesses): out of the quick loop
pytestmark = pytest.mark.slow


async def test_an_end_users_default_and_label_are_set_from_the_command_line(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    cli = Cli(tmp_path)
    for name, label in (("u1-work", "work"), ("u1-home", "home")):
        added = await cli("connection", "add", "shop", "--name", name, "--end-user", "u1",
                          "--label", label, "--set", f"sandbox_url={sandbox.url}",
                          "--set-stdin", "api_key", stdin=canary)
        assert added.code == 0, added
    settings = local_settings(cli.home, allow_networks=LOOPBACK)
    async with Patchwire(settings) as pw:
        await WebhookOutbox.of(pw).create_subscription("http://127.0.0.1:9/hooks",
                                                       ["connection.*"])

    relabelled = await cli("connection", "update", "u1-home", "--label", "personal")
    assert relabelled.code == 0, relabelled
    made = await cli("connection", "default", "u1-home")
    assert made.code == 0, made
    assert "u1-home is end user u1's shop connection" in made.flat_out
    missing = await cli("connection", "default", "nope")
    assert missing.code == 1 and "'nope'" in missing.flat_err
    assert "Traceback" not in missing.err

    listed = (await cli("connection", "list", "--end-user", "u1", "--json")).json()
    assert {c["name"]: (c["label"], c["is_default"]) for c in listed} == {
        "u1-home": ("personal", True), "u1-work": ("work", False)}
    async with Patchwire(settings) as pw:
        box = WebhookOutbox.of(pw)
        await box.dispatch()
        deliveries = await box.list_deliveries()
    # two created (not yet dispatched when the subscription came), the label's change and
    # the default's
    assert len(deliveries) == 4
