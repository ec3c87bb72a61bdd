"""The per-end-user tool-call quota (``end_user_tool_calls``): over it a tool answers
``rate_limited`` with when to retry; it counts each end user apart, holds across processes
sharing the store, and survives an end user's quota being dropped from memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import ConfigError, Patchwire, ToolInvoker, load_settings
from patchwire.config import Settings
from patchwire.sandbox import Sandbox
from patchwire.tools import EndUserQuota
from tests.support.end_users import served, shop_connections
from tests.support.settings import local_settings

ORDER = {"order_id": "1"}


@pytest.fixture
async def settings(store_url: str, tmp_path: Path, sandbox: Sandbox,
                   canary: str) -> AsyncIterator[Settings]:
    """u1's and u2's shop connections, at most 3 tool calls a minute per end user."""
    config = local_settings(tmp_path / "home", database_url=store_url,
                            end_user_tool_calls="3/minute")
    await shop_connections(config, sandbox, canary)
    yield config


async def test_over_the_quota_a_tool_says_when_to_retry_and_calls_nothing(
        settings: Settings) -> None:
    async with Patchwire(settings) as pw:
        invoker = ToolInvoker(pw)
        u1 = invoker.for_end_user("u1")
        for _ in range(3):
            assert (await u1.invoke("shop_get_order", ORDER)).status == "ok"
        over = await u1.invoke("shop_get_order", ORDER)
        assert over.status == "rate_limited" and over.is_error
        assert 0 < over.data["retry_after"] <= 60
        assert f"Try again in {over.data['retry_after']} s" in over.text
        # another end user, and the operator, are not held by u1's calls
        assert (await invoker.for_end_user("u2").invoke("shop_get_order", ORDER)).status == "ok"
        for _ in range(4):
            assert (await invoker.invoke("shop_get_order", ORDER)).status == "ok"
        await pw.flush()
        assert len(await pw.recent_calls(connection="u1-shop")) == 3
        audit = await u1.tool_calls()
        assert [c.status for c in audit] == ["rate_limited", "ok", "ok", "ok"]


async def test_the_quota_holds_across_processes_sharing_the_store(
        settings: Settings) -> None:
    async with Patchwire(settings) as first, Patchwire(settings) as second:
        one, two = (ToolInvoker(p).for_end_user("u1") for p in (first, second))
        assert (await one.invoke("shop_get_order", ORDER)).status == "ok"
        assert (await two.invoke("shop_get_order", ORDER)).status == "ok"
        assert (await one.invoke("shop_get_order", ORDER)).status == "ok"
        assert (await two.invoke("shop_get_order", ORDER)).status == "rate_limited"
        assert (await one.invoke("shop_get_order", ORDER)).status == "rate_limited"


async def test_an_end_user_dropped_from_memory_is_still_counted(
        settings: Settings) -> None:
    async with Patchwire(settings) as pw:
        quota = EndUserQuota(lambda: pw.store, [(2, 60.0)], max_kept=1)
        assert await quota.admit("u1") is None
        assert await quota.admit("u2") is None  # u1's quota is dropped
        assert len(quota) == 1
        assert await quota.admit("u1") is None
        wait = await quota.admit("u1")
        assert wait is not None and 0 < wait <= 60
        await quota.close()


async def test_the_quota_over_rest_answers_a_rate_limited_result(
        store_url: str, tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    async with served(store_url, tmp_path / "home", sandbox, canary,
                      end_user_tool_calls="1/hour") as api:
        token = api.tokens["u1"]
        assert (await api.call("shop_get_order", ORDER, token))["status"] == "ok"
        over = await api.call("shop_get_order", ORDER, token)
        assert over["status"] == "rate_limited" and over["is_error"] is True
        assert 3000 < over["data"]["retry_after"] <= 3600


def test_the_setting_reads_one_or_several_limits_and_refuses_anything_else() -> None:
    read = load_settings(environ={"PATCHWIRE_END_USER_TOOL_CALLS": "20/second, 1000/hour"},
                         toml_path=Path("/nonexistent/patchwire.toml"))
    assert read.end_user_tool_call_limits == ((20, 1.0), (1000, 3600.0))
    assert Settings().end_user_tool_call_limits == ()
    for bad in ("100", "100/fortnight", "0/minute", "-1/second", "100/minute per end_user"):
        with pytest.raises(ConfigError, match="end_user_tool_calls"):
            load_settings(environ={"PATCHWIRE_END_USER_TOOL_CALLS": bad},
                          toml_path=Path("/nonexistent/patchwire.toml"))
