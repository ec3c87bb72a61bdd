"""The call pipeline's HTTP core: client, retries, timeouts and redaction."""

from patchwire.http._client import (
    HttpCore,
    PreparedRequest,
    RawResponse,
    RetryDecision,
    backoff_delay,
    parse_retry_after,
    set_instant_retries,
)
from patchwire.http._redact import REDACTED, Redactor, excerpt

__all__ = [
    "REDACTED",
    "HttpCore",
    "PreparedRequest",
    "RawResponse",
    "Redactor",
    "RetryDecision",
    "backoff_delay",
    "excerpt",
    "parse_retry_after",
    "set_instant_retries",
]
