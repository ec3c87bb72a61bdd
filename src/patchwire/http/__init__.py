"""The call pipeline's HTTP core: client, retries, retry budget, rate limits, circuit
breaker, timeouts and redaction."""

from patchwire.http._breaker import BreakerPolicy, BreakerState, CircuitBreaker
from patchwire.http._budget import RetryBudget
from patchwire.http._client import HttpCore, PreparedRequest, RawResponse
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
from patchwire.observability import REDACTED, Redactor, excerpt

from ._link import ExtValue, Link, find_link, parse_link_header
from ._ssrf import DestinationPolicy, DestinationRefused, GuardedConnector, literal_address
from ._wire import WireConnectError, WirePool

__all__ = [
    "REDACTED",
    "BreakerPolicy",
    "BreakerState",
    "Bucket",
    "CircuitBreaker",
    "DestinationPolicy",
    "DestinationRefused",
    "ExtValue",
    "GuardedConnector",
    "HttpCore",
    "Link",
    "PreparedRequest",
    "RateLimiters",
    "RawResponse",
    "Redactor",
    "RetryBudget",
    "RetryDecision",
    "SlidingWindow",
    "WireConnectError",
    "WirePool",
    "backoff_delay",
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
