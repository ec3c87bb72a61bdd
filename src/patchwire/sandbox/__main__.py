"""``python -m patchwire.sandbox``: serve the sandbox APIs until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import DEFAULT_PORT, DEFAULT_RATE_LIMIT_PER_MINUTE, serve_forever
from ._webhooks import checked_webhook_url


def _ready(url: str) -> None:
    # Scripts and tests wait for this exact line before sending requests.
    print(f"sandbox listening on {url}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m patchwire.sandbox",
        description="Serve the Patchwire sandbox APIs (shop, helpdesk, calendar, payments).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and chaos dice")
    parser.add_argument(
        "--webhook-url", default=None, help="send the APIs' signed webhooks to this URL"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        metavar="N",
        help="requests per minute per credential and API before a 429 (%(default)s); "
        "a benchmark raises it for its load",
    )
    args = parser.parse_args(argv)
    try:
        checked_webhook_url(args.webhook_url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.rate_limit < 1:
        parser.error(f"--rate-limit must be at least 1, got {args.rate_limit}")
    try:
        asyncio.run(
            serve_forever(
                args.host,
                args.port,
                seed=args.seed,
                ready=_ready,
                webhook_url=args.webhook_url,
                rate_limit_per_minute=args.rate_limit,
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
