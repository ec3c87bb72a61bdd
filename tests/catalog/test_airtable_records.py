"""Airtable's record writes send the body Airtable documents for them
(airtable.com/developers/web/api/create-records): ``{"fields": {name: value}, "typecast"}``,
the fields map being what a strict OpenAI model gives as {key, value} pairs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import Patchwire, ToolInvoker
from patchwire.catalog import load_catalog
from patchwire.connectors import ConnectorRegistry
from tests.support.servers import serve
from tests.support.settings import local_settings
from tests.support.upstream import RecordingUpstream

BASE = "appA1b2C3d4E5f6G7"
TABLE = "Tasks"


@pytest.fixture
def airtable() -> RecordingUpstream:
    return RecordingUpstream(f"/v0/{BASE}/{TABLE}")


@pytest.fixture
async def pw(tmp_path: Path, airtable: RecordingUpstream) -> AsyncIterator[Patchwire]:
    spec = load_catalog().get("airtable").spec
    async with serve(airtable.app()) as url:
        # the catalog's connector as it is, only its host the loopback upstream
        served = spec.model_copy(update={"base_url": url + "/v0"})
        async with Patchwire(local_settings(tmp_path / "home"),
                             connectors=ConnectorRegistry([served])) as opened:
            await opened.add_connection("airtable", "main", {"token": "pat-test"})
            yield opened


async def test_a_create_record_call_sends_the_fields_map_as_airtable_documents_it(
        pw: Patchwire, airtable: RecordingUpstream) -> None:
    # what a strict OpenAI model sends: the map as pairs, an attachment list as JSON
    result = await ToolInvoker(pw).invoke("airtable_create_record", {
        "base_id": BASE, "table": TABLE, "typecast": None, "fields": [
            {"key": "Name", "value": "Renew the lease"},
            {"key": "Estimate (h)", "value": 3},
            {"key": "Done", "value": False},
            {"key": "Files", "value": {"json": '[{"url": "https://example.com/a.pdf"}]'}},
        ]})
    assert result.status == "ok", result.text
    assert airtable.bodies == [{"fields": {
        "Name": "Renew the lease", "Estimate (h)": 3, "Done": False,
        "Files": [{"url": "https://example.com/a.pdf"}]}}]  # typecast not given: not sent


async def test_a_create_record_call_with_no_field_is_refused_before_anything_is_sent(
        pw: Patchwire, airtable: RecordingUpstream) -> None:
    result = await ToolInvoker(pw).invoke("airtable_create_record", {
        "base_id": BASE, "table": TABLE, "typecast": True, "fields": []})
    assert result.status == "invalid_arguments" and "fields" in result.text, result.text
    assert airtable.bodies == []
