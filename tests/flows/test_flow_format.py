"""The flow format: loading, file:line problems, reference checks, registry, JSON Schema, CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from patchwire.config import load_settings
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import SpecError, UnknownFlow
from patchwire.flows import (
    STEP_KINDS,
    ApproveStep,
    CallStep,
    FlowRegistry,
    FlowSpec,
    ForeachStep,
    IfStep,
    ParallelStep,
    SwitchStep,
    WaitStep,
    check_flow,
    check_flow_references,
    flow_json_schema,
    iter_steps,
    load_flow_file,
    load_flow_text,
    step_kind,
)
from patchwire.flows._registry import builtin_flow_texts
from tests.support.cli import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "patchwire" / "flows" / "examples"


def problems_of(text: str, file: str = "f.yaml") -> list[str]:
    with pytest.raises(SpecError) as info:
        load_flow_text(textwrap.dedent(text), file)
    return [str(p) for p in info.value.problems]


def flow(text: str, file: str = "f.yaml") -> FlowSpec:
    return load_flow_text(textwrap.dedent(text), file)


@pytest.fixture(scope="module")
def connectors() -> ConnectorRegistry:
    return ConnectorRegistry.load()


# -- the shipped examples -------------------------------------------------------------------


def test_three_example_flows_ship_with_the_package() -> None:
    names = [name for name, _ in builtin_flow_texts()]
    assert names == ["examples/chat_to_ticket.yaml", "examples/overdue_invoice_reminders.yaml",
                     "examples/refund_to_ticket_comment.yaml"]


def test_every_example_flow_loads_and_its_references_resolve_against_builtin_connectors(
    connectors: ConnectorRegistry,
) -> None:
    registry = FlowRegistry.load(builtins=True)
    assert registry.problems == []
    assert {f.id for f in registry} == {"chat_to_ticket", "overdue_invoice_reminders",
                                        "refund_to_ticket_comment"}
    for spec in registry:
        assert check_flow_references(spec, connectors, registry.as_mapping()) == [], spec.id
        assert check_flow(spec) == []


def test_the_examples_use_the_triggers_they_promise() -> None:
    registry = FlowRegistry.load(builtins=True)
    nightly = registry.get("overdue_invoice_reminders").trigger.schedule
    assert [(s.cron, s.timezone) for s in nightly] == [("0 2 * * *", "Europe/Paris")]
    hook = registry.get("refund_to_ticket_comment").trigger.webhook
    assert [(w.source, w.filter) for w in hook] == [("shop", "type = 'order.refunded'")]
    foreach = [s for _, s in iter_steps(registry.get("overdue_invoice_reminders").steps)
               if isinstance(s, ForeachStep)]
    assert foreach and foreach[0].concurrency > 1


# -- parsing --------------------------------------------------------------------------------

EVERY_KIND = """\
id: every_kind
version: 3
trigger:
  schedule: {cron: "*/5 * * * *", timezone: America/New_York}
  webhook: [{source: shop, filter: "type = 'order.paid'", input: "data"}]
  tool: true
input:
  type: object
  properties: {email: {type: string}}
steps:
  - id: find
    call: shop.find_customer_by_email
    connection: "=$input.connection"
    args: {email: $input.email}
    retry: {attempts: 3, backoff: 500ms, max_backoff: 1m}
    timeout: 30s
    on_error:
      then: continue
      fallback:
        - {id: nobody, transform: "null"}
      compensate:
        - {id: undo, emit: customer.lookup_failed, data: "$error"}
  - id: shape
    transform: "{'id': $steps.find.id}"
  - id: branch
    if: $exists($steps.shape.id)
    then:
      - {id: known, transform: "'known'"}
    else:
      - {id: unknown, fail: "'no customer'", code: no_customer}
  - id: route
    switch: $steps.shape.id
    cases:
      cus_0001: [{id: first, transform: "1"}]
    default: [{id: other, transform: "2"}]
  - id: each
    foreach: "[1, 2, 3]"
    as: n
    concurrency: 2
    do:
      - {id: double, transform: "$n * 2"}
  - id: both
    parallel:
      left: [{id: l, transform: "'l'"}]
      right: [{id: r, transform: "'r'"}]
  - {id: pause, wait: 2h}
  - {id: until_noon, until: "'2030-01-01T12:00:00Z'"}
  - id: ok
    approve: "'Send it?'"
    timeout_after: 1d
    on_timeout: deny
  - {id: tell, emit: customer.found, data: "$steps.shape"}
  - {id: sub, flow: child, input: {email: $input.email}}
  - {id: custom, code: "crm.lookup:enrich", input: {email: $input.email}, connector: shop}
output: $steps.shape
"""


def test_every_step_kind_parses_with_its_durations_and_nesting() -> None:
    spec = flow(EVERY_KIND)
    kinds = [step_kind(s) for _, s in iter_steps(spec.steps)]
    assert set(kinds) == set(STEP_KINDS)
    find = spec.steps[0]
    assert isinstance(find, CallStep) and find.timeout == 30.0
    assert find.retry is not None and find.retry.backoff == 0.5 and find.retry.max_backoff == 60
    assert find.on_error is not None and find.on_error.then == "continue"
    assert isinstance(spec.steps[2], IfStep) and isinstance(spec.steps[3], SwitchStep)
    each = spec.steps[4]
    assert isinstance(each, ForeachStep) and each.as_ == "n" and each.concurrency == 2
    assert isinstance(spec.steps[5], ParallelStep)
    pause, until = spec.steps[6], spec.steps[7]
    assert isinstance(pause, WaitStep) and pause.wait == 7200
    assert isinstance(until, WaitStep) and until.until is not None and until.wait is None
    approve = spec.steps[8]
    assert isinstance(approve, ApproveStep) and approve.approve_timeout == 86400
    assert spec.trigger.tool is not None and spec.trigger.schedule[0].missed == "once"
    # every step, nested and on_error ones included, in document order, with its YAML path
    paths = {s.id: loc for loc, s in iter_steps(spec.steps)}
    assert paths["undo"] == ("steps", 0, "on_error", "compensate", 0)
    assert paths["first"] == ("steps", 3, "cases", "cus_0001", 0)
    assert paths["r"] == ("steps", 5, "parallel", "right", 0)


def test_defaults_make_a_two_line_flow_manual_with_an_object_input() -> None:
    spec = flow("id: tiny\nsteps: [{id: one, transform: '1'}]\n")
    assert spec.version == 1 and spec.trigger.manual and spec.input == {"type": "object"}


# -- problems, each with file:line at the YAML path -----------------------------------------

GOOD = """\
id: demo
steps:
  - id: first
    call: shop.get_order
    args:
      order_id: $input.order_id
  - id: second
    transform: $steps.first.total
"""


def test_a_typo_key_is_reported_at_its_line_and_yaml_path_without_union_tags() -> None:
    found = problems_of(GOOD.replace("    args:", "    argz:"))
    assert found == ["f.yaml:5 at steps[0].argz: unknown field 'argz'"]


def test_an_unknown_step_kind_is_named_at_its_key() -> None:
    found = problems_of(GOOD.replace("    transform:", "    transfrom:"))
    assert len(found) == 1
    assert found[0].startswith("f.yaml:8 at steps[1].transfrom: unknown step kind 'transfrom'")


def test_a_step_with_two_kinds_is_one_problem_at_the_step() -> None:
    found = problems_of(GOOD.replace("    transform:", "    call: shop.get_order\n    transform:"))
    assert found == ["f.yaml:7 at steps[1]: a step has exactly one kind, this one has 2: "
                     "call and transform (split it into steps)"]


def test_a_step_without_a_kind_lists_the_kinds() -> None:
    found = problems_of("id: x\nsteps:\n  - id: lonely\n")
    assert found == ["f.yaml:3 at steps[0]: a step needs one of: " + ", ".join(STEP_KINDS)]


def test_a_bad_duration_names_the_nested_field() -> None:
    found = problems_of("""\
        id: x
        steps:
          - id: gate
            if: "true"
            then:
              - {id: nap, wait: 5 minutes}
        """)
    assert len(found) == 1
    assert found[0].startswith("f.yaml:6 at steps[0].then[0].wait: '5 minutes' is not a duration")


def test_a_wait_step_needs_exactly_one_of_wait_and_until() -> None:
    found = problems_of("id: x\nsteps:\n  - {id: w, wait: 5s, until: \"'2030-01-01'\"}\n")
    assert found == ["f.yaml:3 at steps[0]: a wait step needs exactly one of `wait` "
                     "(a duration) and `until`"]


def test_a_bad_cron_and_a_bad_time_zone_are_reported_at_their_lines() -> None:
    found = problems_of("""\
        id: x
        trigger:
          schedule:
            - cron: "0 2 * *"
              timezone: UTC
            - cron: "0 25 * * *"
              timezone: Europe/Atlantis
        steps: [{id: a, transform: "1"}]
        """)
    assert found == [
        "f.yaml:4 at trigger.schedule[0].cron: cron '0 2 * *' must have five fields "
        "(minute hour day month weekday), e.g. '0 2 * * *'",
        "f.yaml:6 at trigger.schedule[1].cron: cron '0 25 * * *' is not a valid cron "
        "expression",
        "f.yaml:7 at trigger.schedule[1].timezone: unknown time zone 'Europe/Atlantis' "
        "(use an IANA name like 'Europe/Paris' or 'UTC')",
    ]


def test_bad_jsonata_in_a_nested_step_is_reported_at_its_field() -> None:
    found = problems_of("""\
        id: x
        steps:
          - id: loop
            foreach: "[1, 2]"
            do:
              - id: inner
                switch: "$item"
                cases:
                  "1":
                    - id: deep
                      transform: "$item +"
        """)
    assert len(found) == 1
    assert found[0].startswith(
        "f.yaml:11 at steps[0].do[0].cases.1[0].transform: invalid JSONata '$item +'")


def test_every_expression_field_is_compiled() -> None:
    found = problems_of("""\
        id: x
        trigger:
          webhook: {source: shop, filter: "type =", input: "{"}
        steps:
          - id: c
            call: shop.get_order
            when: "(("
            connection: "=$input.(("
            args: {order_id: "]"}
          - {id: w, until: "(("}
          - {id: a, approve: "(("}
          - {id: e, emit: x, data: "(("}
          - {id: f, fail: "(("}
          - {id: s, flow: child, input: "(("}
        output: "(("
        """)
    paths = [p.split(": ")[0] for p in found]
    assert paths == [
        "f.yaml:3 at trigger.webhook.filter", "f.yaml:3 at trigger.webhook.input",
        "f.yaml:7 at steps[0].when", "f.yaml:8 at steps[0].connection",
        "f.yaml:9 at steps[0].args.order_id", "f.yaml:10 at steps[1].until",
        "f.yaml:11 at steps[2].approve", "f.yaml:12 at steps[3].data",
        "f.yaml:13 at steps[4].fail", "f.yaml:14 at steps[5].input", "f.yaml:15 at output",
    ]


def test_duplicate_step_ids_are_found_across_nested_and_on_error_steps() -> None:
    found = problems_of("""\
        id: x
        steps:
          - id: a
            transform: "1"
            on_error:
              fallback: [{id: b, transform: "2"}]
          - id: c
            if: "true"
            then:
              - {id: b, transform: "3"}
        """)
    assert found == ["f.yaml:10 at steps[1].then[0].id: step id 'b' is already used at "
                     "steps[0].on_error.fallback[0]; ids are unique in a flow"]


def test_a_reference_to_a_step_that_exists_nowhere_is_a_problem() -> None:
    found = problems_of(GOOD.replace("$steps.first.total", "$steps.frist.total & '$steps.x'"))
    assert found == ["f.yaml:8 at steps[1].transform: $steps.frist names no step of this flow"]


def test_the_input_must_be_a_json_schema_of_an_object() -> None:
    found = problems_of(GOOD + "input: {type: object, properties: {n: {type: integr}}}\n")
    assert len(found) == 1 and found[0].startswith(
        "f.yaml:9 at input.properties.n.type: not a valid JSON Schema")
    found = problems_of(GOOD + "input: {type: array}\n")
    assert found == ["f.yaml:9 at input: a flow's input schema must describe an object"]


def test_a_foreach_variable_cannot_hide_the_run_context() -> None:
    found = problems_of("""\
        id: x
        steps:
          - {id: l, foreach: "[1]", as: input, do: [{id: d, transform: "1"}]}
        """)
    assert found == ["f.yaml:3 at steps[0].as: $input is part of the run's context; "
                     "name the item something else"]


def test_ids_must_be_lower_snake_case() -> None:
    found = problems_of(GOOD.replace("id: second", "id: Second"))
    assert found == ["f.yaml:7 at steps[1].id: 'Second' must be lower snake_case "
                     "(a-z, 0-9, _), starting with a letter"]


def test_malformed_yaml_names_the_line() -> None:
    found = problems_of("id: x\nsteps:\n  - id: a\n    transform: [unclosed\n")
    assert len(found) == 1 and found[0].startswith("f.yaml:") and "invalid YAML" in found[0]


def test_a_document_that_is_not_a_mapping_is_one_problem() -> None:
    assert problems_of("- just\n- a list\n") == [
        "f.yaml:1: a flow must be a mapping at the top level"]


def test_one_pass_reports_shape_and_expression_problems_together() -> None:
    found = problems_of("""\
        id: x
        steps:
          - {id: a, transform: "((", colour: red}
          - {id: a, wait: soon}
        """)
    assert [p.split(": ")[0] for p in found] == [
        "f.yaml:3 at steps[0].colour", "f.yaml:3 at steps[0].transform",
        "f.yaml:4 at steps[1].id", "f.yaml:4 at steps[1].wait"]


def test_load_flow_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(GOOD.replace("args:", "argz:"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_flow_file(path)
    assert str(info.value.problems[0]).startswith(f"{path}:5 at steps[0].argz")
    with pytest.raises(SpecError, match="cannot read file"):
        load_flow_file(tmp_path / "missing.yaml")


# -- references to connectors and other flows -----------------------------------------------


def reference_problems(text: str, connectors: ConnectorRegistry,
                       others: dict[str, FlowSpec] | None = None) -> list[str]:
    spec = flow(text)
    known = {**(others or {}), spec.id: spec}
    return [str(p) for p in check_flow_references(spec, connectors, known)]


def test_an_unknown_action_or_connector_is_reported_at_the_call(
    connectors: ConnectorRegistry,
) -> None:
    found = reference_problems("""\
        id: x
        steps:
          - {id: a, call: shop.get_ordr}
          - {id: b, call: crm.get_contact}
          - {id: c, call: no_dot}
        """, connectors)
    assert found[0].startswith("f.yaml:3 at steps[0].call: connector 'shop' has no action "
                               "'get_ordr'")
    assert found[1].startswith("f.yaml:4 at steps[1].call: unknown connector 'crm'")
    assert found[2].startswith("f.yaml:5 at steps[2].call: action names are written "
                               "connector.action")


def test_arguments_must_be_declared_inputs_and_required_ones_given(
    connectors: ConnectorRegistry,
) -> None:
    found = reference_problems("""\
        id: x
        steps:
          - id: a
            call: helpdesk.add_comment
            args:
              ticket_id: "1"
              bodyy: "'hello'"
          - id: b
            if: "true"
            then:
              - {id: c, call: shop.get_order, args: "{'order_id': '1'}"}
        """, connectors)
    assert found == [
        "f.yaml:5 at steps[0].args: missing required argument 'body' of action "
        "helpdesk.add_comment",
        "f.yaml:7 at steps[0].args.bodyy: action helpdesk.add_comment has no argument "
        "'bodyy' (declared: body, public, ticket_id)",
    ]


def test_an_unknown_sub_flow_is_reported(connectors: ConnectorRegistry) -> None:
    found = reference_problems("id: x\nsteps:\n  - {id: s, flow: nowhere}\n", connectors)
    assert found == ["f.yaml:3 at steps[0].flow: unknown flow 'nowhere' (known: x)"]


def test_a_sub_flow_cycle_is_reported_with_its_chain(connectors: ConnectorRegistry) -> None:
    parent = flow("id: parent\nsteps:\n  - {id: s, flow: child}\n", "parent.yaml")
    child = flow("id: child\nsteps:\n  - id: g\n    if: 'true'\n    then:\n"
                 "      - {id: s2, flow: parent}\n", "child.yaml")
    known = {"parent": parent, "child": child}
    assert [str(p) for p in check_flow_references(parent, connectors, known)] == [
        "parent.yaml:3 at steps[0].flow: sub-flow cycle: parent -> child -> parent"]
    assert [str(p) for p in check_flow_references(child, connectors, known)] == [
        "child.yaml:6 at steps[0].then[0].flow: sub-flow cycle: child -> parent -> child"]
    itself = flow("id: me\nsteps:\n  - {id: s, flow: me}\n", "me.yaml")
    assert [str(p) for p in check_flow_references(itself, connectors, {})] == [
        "me.yaml:3 at steps[0].flow: sub-flow cycle: me -> me"]


def test_a_sub_flow_input_mapping_names_declared_fields(connectors: ConnectorRegistry) -> None:
    child = flow("""\
        id: child
        input:
          type: object
          properties: {email: {type: string}}
          required: [email]
          additionalProperties: false
        steps: [{id: a, transform: "1"}]
        """, "child.yaml")
    found = reference_problems(
        "id: x\nsteps:\n  - {id: s, flow: child, input: {mail: $input.email}}\n",
        connectors, {"child": child})
    assert found == [
        "f.yaml:3 at steps[0].input: missing required input field 'email' of flow child",
        "f.yaml:3 at steps[0].input.mail: flow child has no input field 'mail' "
        "(declared: email)",
    ]


# -- the registry ---------------------------------------------------------------------------


def test_a_user_flow_overrides_the_example_with_the_same_id(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "id: chat_to_ticket\nversion: 7\nsteps: [{id: a, transform: '1'}]\n", encoding="utf-8")
    registry = FlowRegistry.load([tmp_path], builtins=True)
    assert registry.get("chat_to_ticket").version == 7
    assert registry.source_of("chat_to_ticket") == str(tmp_path / "mine.yaml")
    assert registry.source_of("refund_to_ticket_comment") == (
        "examples/refund_to_ticket_comment.yaml")


def test_a_broken_file_keeps_its_problems_while_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "a_good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b_bad.yml").write_text(GOOD.replace("id: demo", "id: bad").replace(
        "args:", "argz:"), encoding="utf-8")
    registry = FlowRegistry.load([tmp_path, tmp_path / "missing"], builtins=False)
    assert [f.id for f in registry] == ["demo"]
    assert [str(p) for p in registry.problems] == [
        f"{tmp_path / 'b_bad.yml'}:5 at steps[0].argz: unknown field 'argz'"]
    with pytest.raises(SpecError):
        FlowRegistry.load([tmp_path], builtins=False, strict=True)


def test_an_unknown_flow_is_a_lookup_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownFlow, match=r"unknown flow 'nope'.*chat_to_ticket") as info:
        FlowRegistry.load(builtins=True).get("nope")
    assert info.value.code == "unknown_flow"


def test_reference_problems_of_a_registry_carry_file_lines(
    tmp_path: Path, connectors: ConnectorRegistry,
) -> None:
    (tmp_path / "x.yaml").write_text(GOOD.replace("shop.get_order", "shop.nope"),
                                     encoding="utf-8")
    registry = FlowRegistry.load([tmp_path])
    found = [str(p) for p in registry.check_references(connectors)]
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'x.yaml'}:4 at steps[0].call")


def test_flow_paths_come_from_the_environment_like_connector_paths() -> None:
    assert load_settings(environ={}).flow_paths == (Path("flows"),)
    settings = load_settings(environ={"PATCHWIRE_FLOW_PATHS": "a:/b/c"})
    assert settings.flow_paths == (Path("a"), Path("/b/c"))


# -- JSON Schema ----------------------------------------------------------------------------


def test_the_json_schema_accepts_every_example_and_every_step_kind() -> None:
    schema = flow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    documents = [yaml.safe_load(p.read_text("utf-8")) for p in sorted(EXAMPLES.glob("*.yaml"))]
    documents.append(yaml.safe_load(EVERY_KIND))
    assert len(documents) == 4
    for doc in documents:
        assert list(validator.iter_errors(doc)) == [], doc["id"]
        load_flow_text(yaml.safe_dump(doc), "roundtrip.yaml")  # and the models agree


def test_the_json_schema_accepts_the_shorthands_and_rejects_typos() -> None:
    validator = jsonschema.Draft202012Validator(flow_json_schema())
    shorthand = {"id": "x", "trigger": {"tool": True, "schedule": {"cron": "0 2 * * *"}},
                 "steps": [{"id": "a", "transform": "1", "on_error": "continue",
                            "timeout": 2.5, "retry": {"backoff": "250ms"}}]}
    assert list(validator.iter_errors(shorthand)) == []
    FlowSpec.model_validate(shorthand)
    assert list(validator.iter_errors({"id": "x", "steps": [{"id": "a", "transfrom": "1"}]}))
    assert list(validator.iter_errors({"id": "x", "steps": [{"id": "a", "wait": "soon"}]}))


# -- CLI ------------------------------------------------------------------------------------


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_flow_schema_prints_the_json_schema(cli: Cli) -> None:
    result = await cli("flow", "schema")
    assert result.code == 0, result
    assert result.json() == flow_json_schema()


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_flow_check_passes_on_the_examples_and_fails_with_file_lines(
        cli_with_examples: Cli) -> None:
    cli = cli_with_examples
    ok = await cli("flow", "check")
    assert ok.code == 0, ok
    assert "3 flow(s) valid" in ok.out
    flows = cli.workdir / "flows"
    (flows / "bad.yaml").write_text(GOOD.replace("shop.get_order", "shop.get_ordr").replace(
        "$steps.first.total", "$steps.first.total +"), encoding="utf-8")
    bad = await cli("flow", "check")
    assert bad.code == 1, bad
    assert "flows/bad.yaml:8 at steps[1].transform: invalid JSONata" in bad.flat_err
    # a file that loads is checked for its references too
    (flows / "bad.yaml").write_text(GOOD.replace("shop.get_order", "shop.get_ordr"),
                                    encoding="utf-8")
    named = await cli("flow", "check", "flows/bad.yaml")
    assert named.code == 1, named
    assert ("flows/bad.yaml:4 at steps[0].call: connector 'shop' has no action 'get_ordr'"
            in named.flat_err)


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_flow_check_of_named_files_resolves_sub_flows_among_all_flows(
        cli_with_examples: Cli) -> None:
    cli = cli_with_examples
    (cli.workdir / "parent.yaml").write_text(
        "id: parent\nsteps:\n  - {id: s, flow: chat_to_ticket, input: {email: $input.e, "
        "message: \"'hi'\"}}\n", encoding="utf-8")
    result = await cli("flow", "check", "parent.yaml")
    assert result.code == 0, result
    assert "1 flow(s) valid" in result.out


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_flow_list_and_show_describe_the_flows(cli_with_examples: Cli) -> None:
    cli = cli_with_examples
    listed = await cli("flow", "list", "--json")
    assert listed.code == 0, listed
    rows = {r["id"]: r for r in listed.json()}
    assert rows["overdue_invoice_reminders"]["trigger"] == (
        "manual, schedule 0 2 * * * (Europe/Paris)")
    assert rows["chat_to_ticket"]["source"] == "flows/chat_to_ticket.yaml"
    shown = await cli("flow", "show", "refund_to_ticket_comment")
    assert shown.code == 0, shown
    assert "webhook shop" in shown.out
    assert "comment call helpdesk.add_comment" in shown.out
    as_json = await cli("flow", "show", "chat_to_ticket", "--json")
    assert FlowSpec.model_validate(as_json.json()) == FlowRegistry.load(builtins=True).get("chat_to_ticket")
    missing = await cli("flow", "show", "nope")
    assert missing.code == 1 and "unknown flow 'nope'" in missing.flat_err


def test_the_schema_output_is_plain_json() -> None:
    # `patchwire flow schema > flow.schema.json` is meant for editors: no Rich markup
    assert json.loads(json.dumps(flow_json_schema()))["title"] == "Patchwire flow"


def test_expressions_nested_in_argument_mappings_are_compiled() -> None:
    found = problems_of("""\
        id: x
        steps:
          - id: up
            call: helpdesk.upload_attachment
            args:
              ticket_id: 1
              file: {filename: "'a.txt'", content: "(("}
              tags: ["'ok'", "]"]
        """)
    assert [p.split(": ")[0] for p in found] == [
        "f.yaml:7 at steps[0].args.file.content", "f.yaml:8 at steps[0].args.tags[1]"]
