"""Flow documents several suites run, and settings whose flow directory holds them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from patchwire import Patchwire
from patchwire.config import Settings
from patchwire.flows import builtin_flow_texts
from patchwire.sandbox import Sandbox
from tests.support.settings import local_settings

FLOWS = {
    "order_status": """
        id: order_status
        title: The status of one order
        input:
          type: object
          properties:
            order_id: {type: string, minLength: 1}
          required: [order_id]
          additionalProperties: false
        steps:
          - id: order
            call: shop.get_order
            args: {order_id: $input.order_id}
        output: '{"order": $steps.order.id, "status": $steps.order.status}'
    """,
    # the first lookup always works; the second fails until the order exists
    "two_orders": """
        id: two_orders
        input:
          type: object
          properties: {order_id: {type: string}}
          required: [order_id]
        steps:
          - id: known
            call: shop.get_order
            args: {order_id: '"42"'}
          - id: missing
            call: shop.get_order
            args: {order_id: $input.order_id}
        output: '[$steps.known.id, $steps.missing.id]'
    """,
    "refuse": """
        id: refuse
        steps:
          - id: prepare
            transform: '"ready"'
          - id: give_up
            fail: '"nothing to do for " & $input.who'
            code: refused
    """,
    "pause": """
        id: pause
        steps:
          - id: nap
            wait: 1h
          - id: done
            transform: '"awake"'
    """,
}


ORDER_FLOW = """
id: order_summary
input:
  type: object
  properties: {order_id: {type: string}}
  required: [order_id]
steps:
  - id: order
    call: shop.get_order
    args: {order_id: "$input.order_id"}
  - id: summary
    transform: "{'id': $steps.order.id, 'customer': $steps.order.customer_id}"
  - id: customer
    call: shop.get_customer
    args: {customer_id: "$steps.summary.customer"}
output: "{'order': $steps.summary.id, 'email': $steps.customer.email}"
"""


ON_ERROR = """
id: on_error
steps:
  - id: tolerant
    fail: "'first'"
    on_error: continue
  - id: rescued
    fail: "'second'"
    on_error:
      fallback:
        - {id: plan_b, transform: "'plan b after ' & $error.message"}
  - id: undone
    fail: "'third'"
    on_error:
      compensate:
        - {id: cleanup, transform: "'cleaned'"}
"""


PARENT = """
id: parent
steps:
  - id: child
    flow: child
    input: {n: "$input.n"}
  - id: doubled
    transform: "$steps.child.result * 2"
"""


NIGHTLY = """
    id: nightly
    trigger:
      manual: false
      schedule: {cron: "0 3 * * *"}
    steps:
      - id: noop
        transform: '1'
"""


async def flow_settings(tmp_path: Path, sandbox: Sandbox, canary: str) -> Settings:
    """Settings whose flow directory holds the test flows, with the shop connection acme."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, text in {**FLOWS, "nightly": NIGHTLY}.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    # one shipped example with a tool trigger, opted in as `patchwire init --examples` does
    examples = dict(builtin_flow_texts())
    (folder / "chat_to_ticket.yaml").write_text(examples["examples/chat_to_ticket.yaml"],
                                                encoding="utf-8")
    settings = local_settings(tmp_path / "home", flow_paths=(folder,))
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme",
                                   {"sandbox_url": sandbox.url, "api_key": canary})
    return settings
