"""``python -m patchwire.sandbox``: serve the sandbox APIs until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import DEFAULT_PORT, serve_forever
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
    args = parser.parse_args(argv)
    try:
        checked_webhook_url(args.webhook_url)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(
            serve_forever(
                args.host, args.port, seed=args.seed, ready=_ready, webhook_url=args.webhook_url
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
