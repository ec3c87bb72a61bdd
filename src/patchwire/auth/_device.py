"""The device authorization grant's first answer (RFC 8628 §3.2), checked before a person
is shown any of it.

What the endpoint sends is printed on a terminal and shown on pages, so it is held to
what the RFC allows: a verification URI that is an http(s) URL, a short user code of
printable characters — no control characters (a terminal escape sequence in a "user
code" could rewrite what the person sees), no markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DEFAULT_DEVICE_WAIT", "DEVICE_CODE_GRANT", "MAX_DEVICE_POLLS",
           "DeviceAuthorization"]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: the longest a CLI waits for a person to approve, whatever expires_in says
DEFAULT_DEVICE_WAIT = 900.0
#: polls at most, whatever the clock says (a bound that holds with a broken clock too)
MAX_DEVICE_POLLS = 1000
#: RFC 8628 §3.2: the default polling interval
DEFAULT_INTERVAL = 5.0
#: a user code a person can type: letters, digits, dashes, spaces (RFC 8628 §6.1)
_USER_CODE = re.compile(r"^[A-Za-z0-9 \-]{1,32}$")
_MAX_URI = 2000


@dataclass(frozen=True)
class DeviceAuthorization:
    """What a person needs (``verification_uri`` and ``user_code``) and what the client
    polls with (``device_code``, never shown). Times are epoch seconds."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float

    @classmethod
    def from_response(cls, body: Mapping[str, Any], *, now: float) -> DeviceAuthorization:
        """Raises ValueError naming the field that is missing or unusable."""
        device_code = body.get("device_code")
        if not isinstance(device_code, str) or not device_code or len(device_code) > 4096:
            raise ValueError("device_code is missing")
        user_code = body.get("user_code")
        if not isinstance(user_code, str) or not _USER_CODE.match(user_code):
            raise ValueError("user_code is missing or not a short code of letters and digits")
        uri = _http_uri(body.get("verification_uri"), "verification_uri")
        if uri is None:
            raise ValueError("verification_uri is missing")
        complete = _http_uri(body.get("verification_uri_complete"),
                             "verification_uri_complete")
        expires_in = _seconds(body.get("expires_in"), "expires_in", None)
        interval = _seconds(body.get("interval"), "interval", DEFAULT_INTERVAL)
        return cls(device_code, user_code, uri, complete, now + expires_in,
                   max(interval, 1.0))


def _http_uri(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_URI or not value.isprintable() \
            or " " in value:
        raise ValueError(f"{name} is not a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} is not an http(s) URL")
    return value


def _seconds(value: Any, name: str, default: float | None) -> float:
    if value is None and default is not None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number") from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 86400:
        raise ValueError(f"{name} is not a number of seconds within a day")
    return seconds
