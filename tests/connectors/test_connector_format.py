"""Loading connector documents: every problem reported with file, line and field path."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from patchwire.connectors import (
    ConnectorRegistry,
    connector_json_schema,
    load_connector_file,
    load_connector_text,
)
from patchwire.connectors._template import MISSING, compile_template
from patchwire.errors import SpecError, UnknownAction, UnknownConnector

GOOD = """\
name: crm
base_url: "https://{subdomain}.example.com/api"
settings:
  subdomain: {description: Your account}
  token: {secret: true}
auth: {type: bearer, token: "{token}"}
rate_limits: ["100/minute per connection", "10/second per connector", {limit: 5, per: second}]
actions:
  get_contact:
    input:
      type: object
      properties: {contact_id: {type: string}}
      required: [contact_id]
    request: {path: "/contacts/{contact_id}"}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_connector_text(text, "crm.yaml")
    return [str(p) for p in info.value.problems]


def test_a_valid_connector_loads_with_defaults_filled_in() -> None:
    spec = load_connector_text(GOOD, "crm.yaml")
    assert spec.name == "crm"
    assert spec.auth.type == "bearer"
    assert [(r.limit, r.per, r.scope) for r in spec.rate_limits] == [
        (100, "minute", "connection"), (10, "second", "connector"), (5, "second", "connection")]
    assert spec.timeouts.total == 30
    assert spec.retry.attempts == 3
    assert spec.actions["get_contact"].request.method == "GET"
    assert spec.secret_settings() == {"token"}


def test_every_problem_is_reported_with_file_line_and_path() -> None:
    text = GOOD.replace("type: bearer", "type: bearr").replace(
        "request: {path:", "request: {metod: GET, path:")
    found = problems_of(text)
    assert any(p.startswith("crm.yaml:6 at auth") for p in found), found
    assert any(p == "crm.yaml:14 at actions.get_contact.request.metod: unknown field 'metod'"
               for p in found), found


def test_yaml_syntax_errors_name_the_line() -> None:
    found = problems_of("name: crm\nbase_url: [unclosed\nactions: {}\n")
    assert len(found) == 1 and found[0].startswith("crm.yaml:")
    assert "invalid YAML" in found[0]


def test_duplicate_keys_are_problems_not_silent_overwrites() -> None:
    found = problems_of(GOOD + "name: other\n")
    assert any("duplicate key 'name'" in p and ":15" in p for p in found), found


def test_placeholders_must_name_settings_and_inputs() -> None:
    text = GOOD.replace("{subdomain}.example", "{tenant}.example").replace(
        '"/contacts/{contact_id}"', '"/contacts/{contact}"')
    found = problems_of(text)
    assert any("base_url: placeholder {tenant} names no setting" in p for p in found), found
    assert any("actions.get_contact.request.path: placeholder {contact}" in p for p in found)


def test_invalid_jsonata_and_json_schema_are_reported_at_their_field() -> None:
    text = GOOD.replace("properties: {contact_id: {type: string}}",
                        "properties: {contact_id: {type: strng}}") + "    response: 'a.('\n"
    found = problems_of(text)
    assert any(":12 at actions.get_contact.input.properties.contact_id.type" in p for p in found)
    assert any(":15 at actions.get_contact.response: invalid JSONata" in p for p in found), found


def test_bad_action_names_and_rate_limits_are_explained() -> None:
    text = GOOD.replace("get_contact:", "GetContact:").replace(
        '"10/second per connector"', '"ten a second"')
    found = problems_of(text)
    assert any("name 'GetContact' must be lower snake_case" in p for p in found), found
    assert any("cannot read rate limit 'ten a second'" in p for p in found), found


def test_a_get_request_with_a_body_is_refused() -> None:
    text = GOOD.replace('request: {path: "/contacts/{contact_id}"}',
                        'request: {path: "/contacts/{contact_id}", body: {a: 1}}')
    assert any("a GET request cannot have a body" in p for p in problems_of(text))


def test_optional_path_placeholders_are_refused() -> None:
    text = GOOD.replace("required: [contact_id]", "required: []")
    assert any("must be listed in input.required" in p for p in problems_of(text))


def test_an_unreadable_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read file"):
        load_connector_file(tmp_path / "missing.yaml")


def test_the_format_json_schema_accepts_the_builtin_connectors() -> None:
    import yaml

    schema = connector_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    root = Path(__file__).parents[2] / "src" / "patchwire" / "connectors" / "builtin"
    files = sorted(root.glob("*.yaml"))
    assert {f.stem for f in files} >= {"shop", "helpdesk", "calendar", "payments"}
    for file in files:
        jsonschema.validate(yaml.safe_load(file.read_text()), schema)
    assert json.dumps(schema)


def test_the_registry_keeps_good_connectors_when_one_file_is_broken(tmp_path: Path) -> None:
    (tmp_path / "crm.yaml").write_text(GOOD)
    (tmp_path / "broken.yaml").write_text("name: broken\nbase_url: 3\nactions: nope\n")
    reg = ConnectorRegistry.load([tmp_path])
    assert "crm" in reg and "shop" in reg and "broken" not in reg
    assert reg.problems and all(p.file.endswith("broken.yaml") for p in reg.problems)
    with pytest.raises(SpecError):
        ConnectorRegistry.load([tmp_path], strict=True)


def test_a_user_connector_overrides_the_builtin_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(GOOD.replace("name: crm", "name: shop"))
    reg = ConnectorRegistry.load([tmp_path])
    assert reg.get("shop").base_url.startswith("https://{subdomain}")


def test_unknown_connectors_and_actions_list_what_exists() -> None:
    reg = ConnectorRegistry.load([])
    with pytest.raises(UnknownConnector, match="known: calendar, helpdesk, payments, shop"):
        reg.get("nope")
    with pytest.raises(UnknownAction, match=r"has no action 'nope'"):
        reg.resolve("shop.nope")
    with pytest.raises(UnknownAction, match=r"connector\.action"):
        reg.resolve("shop")


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("{a}", {"a": 5}, 5),
        ("{a}", {}, MISSING),
        ("x-{a}-{b.c}", {"a": 1, "b": {"c": True}}, "x-1-true"),
        ("x-{a}", {}, MISSING),
        ("{{literal}} {a}", {"a": "v"}, "{literal} v"),
        ("plain", {}, "plain"),
        ("{{only}}", {}, "{only}"),
    ],
)
def test_templates_keep_types_drop_missing_and_escape_braces(
    template: str, values: dict[str, object], expected: object
) -> None:
    assert compile_template(template).render(values) == expected


def test_the_format_json_schema_accepts_the_shorthands_the_loader_accepts() -> None:
    schema = connector_json_schema()
    document = {
        "name": "gh", "base_url": "https://api.github.com", "protocol": "graphql",
        "graphql": {"endpoint": "/graphql", "cost": "github"},
        "rate_limits": ["100/minute per end_user", {"limit": 5, "per": "second"}],
        "actions": {"viewer": {"graphql": {"document": "query { viewer { login } }"},
                               "tool": True}},
    }
    jsonschema.validate(document, schema)
    load_connector_text(yaml.safe_dump(document))  # and the loader agrees
    for wrong in ({"graphql": {"cost": "gitlab"}}, {"rate_limits": ["lots"]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**document, **wrong}, schema)
