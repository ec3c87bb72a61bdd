"""The call pipeline's HTTP core: client, retries, retry budget, rate limits, circuit
breaker, timeouts and redaction, over one transport interface (``Transport``: the
kept-alive wire and aiohttp by default, or an injected one such as ``MockTransport``)."""

from patchwire.http._breaker import BreakerPolicy, BreakerState, CircuitBreaker
from patchwire.http._budget import RetryBudget
from patchwire.http._client import HttpCore, TooManyRedirects
from patchwire.http._ratelimit import Bucket, RateLimiters, SlidingWindow
from patchwire.http._retry import (
    RetryDecision,
    backoff_delay,
    instant_retries,
    is_transient_status,
    parse_retry_after,
    retries_are_instant,
    server_delay,
)
from patchwire.http._shared_limits import SharedLimits, SharedQuota
from patchwire.observability import REDACTED, Redactor, excerpt

from ._aiohttp import AiohttpTransport
from ._client_tls import ClientCertificateError, client_tls_context
from ._default_transport import DefaultTransport
from ._link import ExtValue, Link, find_link, parse_link_header
from ._mock import MockTransport
from ._ssrf import DestinationPolicy, DestinationRefused, GuardedConnector, literal_address
from ._transport import Limits, PreparedRequest, RawResponse, Transport
from ._wire import WireConnectError, WirePool, WireTransport

__all__ = [
    "REDACTED",
    "AiohttpTransport",
    "BreakerPolicy",
    "BreakerState",
    "Bucket",
    "CircuitBreaker",
    "ClientCertificateError",
    "DefaultTransport",
    "DestinationPolicy",
    "DestinationRefused",
    "ExtValue",
    "GuardedConnector",
    "HttpCore",
    "Limits",
    "Link",
    "MockTransport",
    "PreparedRequest",
    "RateLimiters",
    "RawResponse",
    "Redactor",
    "RetryBudget",
    "RetryDecision",
    "SharedLimits",
    "SharedQuota",
    "SlidingWindow",
    "TooManyRedirects",
    "Transport",
    "WireConnectError",
    "WirePool",
    "WireTransport",
    "backoff_delay",
    "client_tls_context",
    "excerpt",
    "find_link",
    "instant_retries",
    "is_transient_status",
    "literal_address",
    "parse_link_header",
    "parse_retry_after",
    "retries_are_instant",
    "server_delay",
]
