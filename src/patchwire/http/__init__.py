"""The call pipeline's HTTP core: client, retries, retry budget, rate limits, circuit
breaker, timeouts and redaction."""

from patchwire.http._breaker import BreakerPolicy, BreakerState, CircuitBreaker
from patchwire.http._budget import RetryBudget
from patchwire.http._client import HttpCore, PreparedRequest, RawResponse
from patchwire.http._ratelimit import Bucket, RateLimiters, SlidingWindow
from patchwire.http._redact import REDACTED, Redactor, excerpt
from patchwire.http._retry import (
    RetryDecision,
    backoff_delay,
    is_transient_status,
    parse_retry_after,
    server_delay,
    set_instant_retries,
)

__all__ = [
    "REDACTED",
    "BreakerPolicy",
    "BreakerState",
    "Bucket",
    "CircuitBreaker",
    "HttpCore",
    "PreparedRequest",
    "RateLimiters",
    "RawResponse",
    "Redactor",
    "RetryBudget",
    "RetryDecision",
    "SlidingWindow",
    "backoff_delay",
    "excerpt",
    "is_transient_status",
    "parse_retry_after",
    "server_delay",
    "set_instant_retries",
]
