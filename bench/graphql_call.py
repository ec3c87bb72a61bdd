"""Call-path overhead of a GraphQL call against a REST call of the same response size.

An upstream in its own process (so its CPU is not ours) answers ``POST /graphql`` and
``GET /orders/42`` with the same bytes: ``{"data": {"order": {...}}}`` (~1 kB). Two
connectors reach it, one ``protocol: graphql`` (a query with one variable, the answer's
only root field mapped out, errors and the cost rule looked for) and one REST (a GET whose
body is the result). Chunks of both alternate so drift on a shared machine hits both
alike; the figures are the GraphQL call rate as a ratio of the REST one, and the CPU time
per call in this process (the call path's own cost, steadier than rates on a shared
machine) likewise. The last line of output is one JSON object of the figures.

    python bench/graphql_call.py            # 10,000 calls per path
    python bench/graphql_call.py --quick    # under 30 s, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _common import start_listening
from patchwire import Patchwire, Settings
from patchwire.connectors import ConnectorRegistry, load_connector_text

ORDER = {"id": "42", "status": "paid", "total": 129.5, "currency": "EUR",
         "customer": {"id": "c7", "name": "Ada Lovelace", "email": "ada@example.com"},
         "lines": [{"sku": f"SKU-{i}", "name": f"Widget {i}", "qty": i, "price": 9.5 + i}
                   for i in range(1, 9)]}
BODY = json.dumps({"data": {"order": ORDER}}).encode()

GRAPHQL = """
name: gql
protocol: graphql
base_url: "{url}"
settings: {url: {}, token: {secret: true}}
auth: {type: bearer, token: "{token}"}
graphql: {cost: github}
actions:
  get_order:
    input: {type: object, properties: {id: {type: string}}, required: [id]}
    graphql:
      document: |
        query Order($id: ID!) {
          order(id: $id) { id status total currency customer { id name email }
                           lines { sku name qty price } }
        }
"""

REST = """
name: rest
base_url: "{url}"
settings: {url: {}, token: {secret: true}}
auth: {type: bearer, token: "{token}"}
actions:
  get_order:
    input: {type: object, properties: {id: {type: string}}, required: [id]}
    request: {path: "/orders/{id}"}
"""


def serve() -> None:
    """The upstream: fixed answers, printed URL once listening."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/graphql", answer)
        app.router.add_get("/orders/{id}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"upstream listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


async def drive(n: int, concurrency: int, one: Callable[[], Awaitable[object]]
                ) -> tuple[float, float]:
    """Run ``n`` calls with ``concurrency`` workers; return the wall and the CPU time
    (this process's: the upstream runs in another) they took."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


async def main(calls: int, rounds: int) -> dict[str, float]:
    proc, url = start_listening([sys.executable, __file__, "--serve"], "upstream")
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as home:
            registry = ConnectorRegistry([load_connector_text(GRAPHQL),
                                          load_connector_text(REST)])
            settings = Settings(home=Path(home), connector_paths=(),
                                allow_networks=("127.0.0.1",))
            async with Patchwire(settings, connectors=registry) as pw:
                for connector in ("gql", "rest"):
                    await pw.add_connection(connector, connector,
                                            {"url": url, "token": "bench-token"})

                async def graphql() -> object:
                    return await pw.call("gql.get_order", {"id": "42"}, connection="gql")

                async def rest() -> object:
                    return await pw.call("rest.get_order", {"id": "42"}, connection="rest")

                assert await graphql() == ORDER
                assert await rest() == {"data": {"order": ORDER}}
                await drive(200, 8, graphql)  # warm both pools and caches
                await drive(200, 8, rest)
                for c in (1, 16):
                    chunk = max(calls // rounds, c)
                    spent = {"graphql": [0.0, 0.0], "rest": [0.0, 0.0]}
                    for round_ in range(rounds):
                        # which goes first alternates: neither always follows the other
                        order = (("rest", rest), ("graphql", graphql)) if round_ % 2 else (
                            ("graphql", graphql), ("rest", rest))
                        for name, one in order:
                            wall, cpu = await drive(chunk, c, one)
                            spent[name][0] += wall
                            spent[name][1] += cpu
                    n = chunk * rounds
                    gql_rate, rest_rate = n / spent["graphql"][0], n / spent["rest"][0]
                    gql_cpu, rest_cpu = (spent["graphql"][1] / n * 1e6,
                                         spent["rest"][1] / n * 1e6)
                    figures[f"graphql_c{c}"] = round(gql_rate, 1)
                    figures[f"rest_c{c}"] = round(rest_rate, 1)
                    figures[f"ratio_c{c}"] = round(gql_rate / rest_rate, 3)
                    figures[f"graphql_cpu_us_c{c}"] = round(gql_cpu, 1)
                    figures[f"rest_cpu_us_c{c}"] = round(rest_cpu, 1)
                    figures[f"cpu_ratio_c{c}"] = round(gql_cpu / rest_cpu, 3)
                    print(f"concurrency {c:>2}: graphql {gql_rate:8.1f} calls/s "
                          f"({gql_cpu:5.1f} µs CPU each)   rest {rest_rate:8.1f} calls/s "
                          f"({rest_cpu:5.1f} µs)   rate ratio {gql_rate / rest_rate:.3f}, "
                          f"CPU ratio {gql_cpu / rest_cpu:.3f}", flush=True)
                figures["response_bytes"] = len(BODY)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
    else:
        calls = args.calls or (2_000 if args.quick else 10_000)
        print(json.dumps(asyncio.run(main(calls, 10))))
