"""`patchwire vault rotate` re-encrypts every secret Patchwire keeps, not only connections'."""

from __future__ import annotations

import sqlite3

import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.webhooks import SchemeSettings, WebhookOutbox
from patchwire.webhooks._sources import WebhookSources
from tests.support.cli import Cli
from tests.support.settings import local_settings

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


def key_ids(database: str) -> set[str]:
    """The vault key ids of every encrypted value in the store (`pwv1.<kid>.<...>`)."""
    with sqlite3.connect(database) as db:
        tokens = [row[0] for sql in (
            "SELECT secrets FROM connections WHERE secrets <> ''",
            "SELECT secrets FROM webhook_sources",
            "SELECT secret FROM webhook_subscriptions",
        ) for row in db.execute(sql)]
    assert len(tokens) == 3
    return {token.split(".")[1] for token in tokens}


async def test_rotation_re_encrypts_connections_webhook_sources_and_subscriptions(
        cli: Cli, sandbox: Sandbox) -> None:
    settings = local_settings(cli.home)
    async with Patchwire(settings) as pw:
        await pw.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                 "api_key": "shop_test_key_123"})
        await WebhookSources(pw).add("shop", SchemeSettings(scheme="shopify"), ["hush-1234"])
        await WebhookOutbox.of(pw).create_subscription("https://example.com/hooks", ["*"])
    database = str(cli.home / "patchwire.db")
    (before,) = key_ids(database)

    rotated = await cli("vault", "rotate")
    assert rotated.code == 0, rotated
    assert "1 connection(s), 1 webhook source(s) and 1 subscription(s)" in rotated.flat_out
    (after,) = key_ids(database)
    assert after != before
    async with Patchwire(local_settings(cli.home)) as pw:  # everything still opens
        loaded = await WebhookSources(pw).loaded()
        assert [s.value for s in loaded["shop"].secrets] == ["hush-1234"]
        (sub,) = await WebhookOutbox.of(pw).list_subscriptions()
        assert (await WebhookOutbox.of(pw).secret_of(sub.id)).startswith("whsec_")
