"""The tool catalog: which actions become tools, under which names, with which flags."""

from __future__ import annotations

import re

from patchwire.connectors import ConnectorRegistry
from patchwire.connectors._loader import load_connector_text
from patchwire.connectors.spec import ToolSpec
from patchwire.errors import SpecError
from patchwire.tools import ToolCatalog, ToolFilter, sanitize_tool_name

PROVIDER_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

CONNECTOR = """
name: crm
base_url: https://crm.example.com
actions:
  get_contact:
    summary: Look up a contact
    description: By id.
    tool: true
    request: {method: GET, path: "/contacts/{id}"}
    input: {type: object, properties: {id: {type: string}}, required: [id]}
  delete_contact:
    summary: Delete a contact
    tool: true
    request: {method: DELETE, path: "/contacts/{id}"}
    input: {type: object, properties: {id: {type: string}}, required: [id]}
  merge_contacts:
    summary: Merge two contacts
    tool: {name: merge, confirm: false, destructive: true, result: "{'id': id}"}
    request: {method: POST, path: /merge}
  export_contacts:
    summary: Not offered as a tool
    request: {method: POST, path: /export}
"""


def registry() -> ConnectorRegistry:
    return ConnectorRegistry([load_connector_text(CONNECTOR, "crm.yaml")], )


def test_only_actions_marked_as_tools_are_offered() -> None:
    catalog = ToolCatalog.build(registry())
    assert catalog.names() == ["crm_delete_contact", "crm_get_contact", "merge"]


def test_every_action_can_be_offered_for_checking_schemas() -> None:
    assert "crm_export_contacts" in ToolCatalog.build(registry(), every_action=True)


def test_flags_default_from_the_http_method_and_the_yaml_overrides_them() -> None:
    catalog = ToolCatalog.build(registry())
    get, delete, merge = (catalog.get(n) for n in ("crm_get_contact", "crm_delete_contact",
                                                   "merge"))
    assert (get.read_only, get.destructive, get.confirm, get.idempotent) == (
        True, False, False, True)
    assert (delete.read_only, delete.destructive, delete.confirm) == (False, True, True)
    assert (merge.destructive, merge.confirm, merge.result) == (True, False, "{'id': id}")
    assert get.description == "Look up a contact\n\nBy id."


def test_stored_settings_win_over_the_yaml() -> None:
    overrides = {"crm.get_contact": ToolSpec(enabled=False),
                 "crm.export_contacts": ToolSpec(name="export", confirm=True)}
    catalog = ToolCatalog.build(registry(), overrides=overrides)
    assert "crm_get_contact" not in catalog
    assert catalog.get("export").confirm


def test_tools_bound_to_one_connection_keep_their_names_and_several_get_prefixes() -> None:
    one = ToolCatalog.build(registry(), connections=[("acme", "crm")])
    assert one.get("merge").connection == "acme"
    several = ToolCatalog.build(registry(), connections=[("acme co", "crm"), ("beta", "crm")])
    assert {(t.name, t.connection) for t in several if t.target == "crm.merge_contacts"} == {
        ("acme_co_merge", "acme co"), ("beta_merge", "beta")}


def test_connectors_without_a_connection_are_left_out_of_a_bound_catalog() -> None:
    assert len(ToolCatalog.build(registry(), connections=[("x", "other")])) == 0


def test_filters_narrow_by_connector_tag_and_read_only() -> None:
    reg = ConnectorRegistry.load()
    read_only = ToolCatalog.build(reg, filter=ToolFilter(read_only=True))
    assert read_only.names() and all(t.read_only for t in read_only)
    shop = ToolCatalog.build(reg, filter=ToolFilter(connectors=frozenset({"shop"})))
    assert {t.connector for t in shop} == {"shop"}
    refunds = ToolCatalog.build(reg, filter=ToolFilter(tags=frozenset({"refunds"})))
    assert refunds.names() == ["payments_refund_charge"]


def test_names_are_sanitised_to_every_providers_rules() -> None:
    assert sanitize_tool_name("shop.get order!") == "shop_get_order"
    long = sanitize_tool_name("x" * 100)
    assert len(long) == 64 and PROVIDER_NAME.match(long)
    assert sanitize_tool_name("x" * 100) == long  # deterministic
    assert sanitize_tool_name("***") == "tool"


def test_colliding_names_are_resolved_the_same_way_whatever_the_load_order() -> None:
    def connector(name: str) -> str:
        return f"""
name: {name}
base_url: https://example.com
actions:
  get:
    tool: {{name: lookup}}
    request: {{method: GET, path: /}}
"""
    a, b = (load_connector_text(connector(n), f"{n}.yaml") for n in ("alpha", "beta"))
    first = ToolCatalog.build(ConnectorRegistry([a, b]))
    second = ToolCatalog.build(ConnectorRegistry([b, a]))
    assert first.names() == second.names()
    assert first.get("lookup").target == "alpha.get"
    (other,) = [n for n in first.names() if n != "lookup"]
    assert PROVIDER_NAME.match(other) and first.get(other).target == "beta.get"


def test_every_builtin_tool_has_a_valid_unique_name() -> None:
    catalog = ToolCatalog.build(ConnectorRegistry.load())
    assert len(catalog) == sum(len(c.actions) for c in ConnectorRegistry.load())
    assert all(PROVIDER_NAME.match(n) for n in catalog.names())
    assert catalog.get("payments_refund_charge").confirm
    assert catalog.get("calendar_cancel_appointment").destructive
    assert not catalog.get("shop_get_order").confirm


def test_a_bad_tool_section_is_reported_with_its_line() -> None:
    text = CONNECTOR.replace("tool: true\n    request: {method: GET",
                             "tool: {name: 'bad name', result: '$$$('}\n    request: {method: GET")
    try:
        load_connector_text(text, "crm.yaml")
    except SpecError as exc:
        rendered = "\n".join(map(str, exc.problems))
    else:  # pragma: no cover
        raise AssertionError("expected a SpecError")
    assert "crm.yaml:" in rendered and "tool.name" in rendered
