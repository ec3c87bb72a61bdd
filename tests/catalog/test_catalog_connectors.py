"""Every connector of the catalog loads, says where its facts came from, ships a curated
toolkit with honest marks, and every tool passes the OpenAI (strict mode, never the
fallback), Anthropic and MCP rules."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from patchwire.catalog import CatalogEntry, load_catalog
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.tools import (
    ToolCatalog,
    anthropic_problems,
    export_tools,
    mcp_problems,
    openai_strict_problems,
)

CATALOG = load_catalog()
ENTRIES = list(CATALOG)
CHECKERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "openai": openai_strict_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}
# catalogs whose licences forbid taking their facts (the issue names them)
FORBIDDEN_SOURCES = re.compile(r"\b(nango|n8n|pipedream)\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def by_name(entry: CatalogEntry) -> str:
    return entry.name


def test_the_catalog_ships_at_least_100_connectors_each_loading_without_a_problem() -> None:
    assert CATALOG.problems == []
    assert len(ENTRIES) >= 100


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_each_file_passes_the_full_connector_check_and_lists_as_it_loads(
        entry: CatalogEntry) -> None:
    # the catalog lists files without the loader's expression checks; the loader's full
    # check (JSONata compiled, placeholders resolved, GraphQL parsed) holds for every one
    assert load_connector_text(entry.text, entry.file) == entry.spec


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_each_connector_says_where_its_facts_came_from_and_when_they_were_checked(
        entry: CatalogEntry) -> None:
    info = entry.spec.catalog
    assert info is not None, f"{entry.file} has no catalog: block"
    assert info.docs_url.startswith("https://")
    assert dt.date(2024, 1, 1) <= info.verified_at <= dt.date.today()
    assert not FORBIDDEN_SOURCES.search(info.source), info.source
    assert not FORBIDDEN_SOURCES.search(info.licence), info.licence
    assert entry.spec.title and entry.spec.description
    assert entry.file == f"catalog/{entry.name}.yaml"


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_each_connector_reaches_its_vendor_over_https_only(entry: CatalogEntry) -> None:
    spec = entry.spec
    urls = [spec.base_url]
    for key in ("authorize_url", "token_url", "device_authorization_url"):
        value = getattr(spec.auth, key, None)
        if value:
            urls.append(value)
    for url in urls:
        if re.match(r"\{[a-z_]+\}/", url):
            # the whole URL is one setting (Salesforce's instance_url): the engine checks
            # it is a URL, and its setting says where it comes from
            assert url.split("}", 1)[0][1:] in spec.settings, url
            continue
        assert url.startswith("https://"), url
        # a placeholder may choose a subdomain label, the whole host of a self-hosted
        # product (WooCommerce) or a path part — never the scheme, nor the vendor's domain
        # behind a subdomain (the engine takes only a DNS label or a host name there)
        host = url.removeprefix("https://").split("/", 1)[0]
        if "{" in host:
            assert re.fullmatch(r"(\{[a-z_]+\}[.-])+[a-z0-9.-]+\.[a-z]+|\{[a-z_]+\}",
                                host), url
    for name in PLACEHOLDER.findall(" ".join(urls)):
        assert name in spec.settings, f"{name} in a URL is no setting of {entry.name}"


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_each_connector_keeps_its_credentials_in_secret_settings(entry: CatalogEntry) -> None:
    spec = entry.spec
    secretish = re.compile(r"(secret|password|token|api_key|apikey|private_key)$")
    for name, setting in spec.settings.items():
        if secretish.search(name) and name not in ("client_id",):
            assert setting.secret, f"{entry.name}: setting {name} must be secret: true"


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_each_connector_ships_a_curated_toolkit_of_5_to_15_tools_with_honest_marks(
        entry: CatalogEntry) -> None:
    actions = entry.spec.actions
    assert 5 <= len(actions) <= 15, f"{entry.name} has {len(actions)} actions"
    for name, action in actions.items():
        where = f"{entry.name}.{name}"
        tool = action.tool_spec
        assert tool is not None, f"{where} is not offered as a tool"
        assert action.summary, f"{where} has no summary"
        if action.reads_only:
            assert tool.destructive is not True, where
        elif tool.read_only:
            # a search sent as a POST (Square, Adyen) reads only; it says so by being
            # idempotent too, and changes nothing
            assert action.idempotent is True and not tool.destructive, (
                f"{where} is marked read-only but is a {action.method}: mark it "
                f"idempotent: true if it only reads")
        if tool.destructive:
            assert tool.confirm is not False, f"{where} is destructive without confirmation"
        if action.method == "DELETE":
            assert tool.destructive, f"{where} deletes but is not marked destructive"
        assert action.input.get("type") == "object", where
        assert action.input.get("additionalProperties") is False, where


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_every_tool_passes_every_providers_rules_in_strict_mode(entry: CatalogEntry) -> None:
    catalog = ToolCatalog.build(ConnectorRegistry([entry.spec]))
    assert len(catalog) == len(entry.spec.actions)
    failures: list[str] = []
    for fmt, check in CHECKERS.items():
        for definition in export_tools(catalog, fmt):  # type: ignore[arg-type]
            name = definition.get("name") or definition["function"]["name"]
            failures += [f"{fmt} {name}: {p}" for p in check(definition)]
    not_strict = [d["function"]["name"] for d in export_tools(catalog, "openai")
                  if not d["function"]["strict"]]
    assert failures == []
    assert not_strict == [], "these fall back to non-strict mode"


def test_catalog_search_finds_a_connector_by_what_people_call_it() -> None:
    names = [entry.name for entry, _ in CATALOG.search("stripe refund")]
    assert names[0] == "stripe"
    support = [entry.name for entry, _ in CATALOG.search("helpdesk support tickets")]
    assert "support" in CATALOG.get(support[0]).categories


def test_an_unknown_catalog_name_is_a_typed_error_that_suggests_near_names() -> None:
    from patchwire.errors import UnknownConnector

    with pytest.raises(UnknownConnector, match="stripe"):
        CATALOG.get("strpe")


def test_the_notice_names_every_connectors_source_and_licence_and_is_in_step() -> None:
    from patchwire.catalog import notice_text, shipped_notice

    notice = shipped_notice()
    assert notice == notice_text(), "run scripts/catalog-notice.py"
    for entry in ENTRIES:
        assert f"({entry.name})\n" in notice
