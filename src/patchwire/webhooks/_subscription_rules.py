"""What a webhook subscription may be: its secret (format, key, the vault's associated
data), its event type filter, and the endpoint URLs the SSRF guard admits."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from patchwire.errors import InvalidSubscription
from patchwire.http import DestinationPolicy, DestinationRefused, literal_address

__all__ = ["SECRET_PREFIX", "check_types", "check_url", "compile_filter", "generate_secret",
           "secret_key", "subscription_aad", "type_matches"]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:*-]{1,200}$")


def subscription_aad(subscription_id: str) -> bytes:
    """The associated data binding a subscription's encrypted secret to its row."""
    return f"webhook_subscription:{subscription_id}".encode()


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the base64 part, decoded)."""
    body = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSubscription("the secret must be 'whsec_' followed by base64") from None
    if len(key) < 16:
        raise InvalidSubscription("the secret must hold at least 16 bytes (24 recommended)")
    return key


def compile_filter(patterns: Iterable[str]) -> re.Pattern[str]:
    # ``*`` matches any run of characters, dots included: ``order.*`` takes
    # ``order.created`` and ``order.item.added``; ``*`` alone takes everything.
    alternatives = [".*".join(map(re.escape, p.split("*"))) for p in patterns]
    return re.compile("|".join(f"(?:{a})" for a in alternatives) or "(?!)")


def type_matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether ``event_type`` is taken by a filter (``order.*``, ``*``, exact types)."""
    return compile_filter(patterns).fullmatch(event_type) is not None


def check_url(url: str, policy: DestinationPolicy) -> str:
    """Refuse what can never be a subscriber endpoint. Addresses behind names are checked
    by the SSRF guard when connecting (a name can change what it resolves to)."""
    url = url.strip()
    if len(url) > 2000:
        raise InvalidSubscription("the endpoint URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidSubscription("the endpoint URL cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidSubscription("the endpoint URL must start with https:// or http://")
    host = parts.hostname
    if not host:
        raise InvalidSubscription("the endpoint URL has no host")
    if parts.username is not None or parts.password is not None:
        # credentials in a URL end up in every log line that shows the endpoint
        raise InvalidSubscription("the endpoint URL must not carry credentials (user:pass@)")
    try:
        policy.check_name(host)
        address = literal_address(host)
        if address is not None:
            policy.check_address(host, address)
    except DestinationRefused as exc:
        raise InvalidSubscription(f"the SSRF guard refuses this endpoint: {exc}") from None
    return url


def check_types(event_types: Iterable[str]) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(t.strip() for t in event_types))
    if not types:
        raise InvalidSubscription("give at least one event type (or '*' for every event)")
    for t in types:
        if not TYPE_PATTERN.match(t):
            raise InvalidSubscription(
                f"event type filter {t[:200]!r} is invalid (letters, digits, '_', '.', ':', "
                "'-' and '*' wildcards, 1-200 characters)")
    return types
