"""Realistic local APIs for the demo, tests and benchmarks.

One aiohttp server on 127.0.0.1 serves four fake upstreams under path prefixes, each with
its own auth scheme, pagination style, error statuses and OpenAPI 3.1 document:

=========== =================================== ============================== ==========
prefix      auth                                pagination                     bodies
=========== =================================== ============================== ==========
/shop       ``X-API-Key: shop_test_key_123``    cursor (``next_cursor``)       JSON
/helpdesk   HTTP Basic agent@example.com        page number (``total_pages``)  JSON, form,
            / helpdesk-pass                                                    multipart
/calendar   ``Bearer cal_test_token``           RFC 8288 ``Link`` header       JSON
/payments   ``Payments-Key pk_test_sandbox``    offset (``has_more``)          form
=========== =================================== ============================== ==========

Every API answers 401 with ``WWW-Authenticate``, 404, 409, 422, and 429 with
``Retry-After`` past a per-credential limit (100,000 requests a minute; a load test raises
it with ``--rate-limit`` or ``ChaosSettings(rate_limit_per_minute=...)``), and sends
``X-RateLimit-*`` headers. Chaos
(errors, latency, held requests, dropped connections) is switched on in Python
(:meth:`Sandbox.set_chaos`) or over HTTP (``PUT /_sandbox/chaos``); ``POST /_sandbox/reset``
re-seeds the data.

An OAuth2 authorization server (authorization code with PKCE, client credentials,
refresh with optional rotation and reuse detection) lives under ``/oauth``; see
``_oauth.py`` and ``Sandbox.state.oauth``.

With a webhook URL (``Sandbox(webhook_url=...)``, ``--webhook-url``, ``PUT
/_sandbox/webhooks``) the APIs send signed webhooks for their own events, each in another
vendor's scheme: shop like Shopify, payments like Stripe, helpdesk like GitHub, calendar in
Standard Webhooks; secrets in ``SANDBOX_WEBHOOK_SECRETS``, schemes in
``SANDBOX_WEBHOOK_SCHEMES`` (see ``_webhooks.py``).

Run it with ``python -m patchwire.sandbox --port 8765``.
"""

from ._app import API_NAMES, SandboxState, build_app, state_of
from ._auth import SANDBOX_CREDENTIALS, auth_headers
from ._chaos import DEFAULT_RATE_LIMIT_PER_MINUTE, ChaosSettings
from ._oauth import OAUTH_CLIENTS, OAuthServer, OAuthStats
from ._server import Sandbox, serve_forever
from ._stats import SandboxStats
from ._webhooks import (
    SANDBOX_WEBHOOK_SCHEMES,
    SANDBOX_WEBHOOK_SECRETS,
    WebhookCounters,
    WebhookSender,
    checked_webhook_url,
)

DEFAULT_PORT = 8765

__all__ = [
    "API_NAMES",
    "DEFAULT_PORT",
    "DEFAULT_RATE_LIMIT_PER_MINUTE",
    "OAUTH_CLIENTS",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_WEBHOOK_SCHEMES",
    "SANDBOX_WEBHOOK_SECRETS",
    "ChaosSettings",
    "OAuthServer",
    "OAuthStats",
    "Sandbox",
    "SandboxState",
    "SandboxStats",
    "WebhookCounters",
    "WebhookSender",
    "auth_headers",
    "build_app",
    "checked_webhook_url",
    "serve_forever",
    "state_of",
]
