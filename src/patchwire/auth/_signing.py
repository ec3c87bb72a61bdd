"""Request signing: auth schemes that sign each request rather than attach a fixed value.

OAuth 1.0a, AWS Signature V4 and declared HMAC signatures cover the request itself (its
method, URL with query, some headers, a hash of the body), so they cannot be worked out
once per connection like an API key. A :class:`RequestSigner` is built once per
connection (keys parsed, templates compiled) and the call path asks it to sign each
rendered request right before it is sent.

What is signed must be exactly what the transport sends. Both transports parse
``req.url`` with yarl (which re-quotes it) and append ``req.params`` in their own way, so
:func:`settle_url` first writes the parameters into the URL (every reserved character
percent-encoded, a space as ``%20``: no ``+`` whose meaning servers disagree on) and
gives back the URL parsed the way the transports parse it: its ``raw_path`` and
``raw_query_string`` are the bytes on the request line.

Retries: the HTTP core sends the same :class:`~patchwire.http.PreparedRequest` again on a
retry, signature included; see each signer for why that is acceptable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol, runtime_checkable
from urllib.parse import quote

import orjson
from yarl import URL

from patchwire.http import PreparedRequest

__all__ = [
    "RequestSigner",
    "SigningError",
    "body_bytes",
    "header_value",
    "host_header",
    "settle_url",
    "sha256_hex",
    "strict_quote",
]

#: RFC 3986 unreserved characters: the only ones left as they are
_UNRESERVED = "-_.~"


class SigningError(ValueError):
    """A request cannot be signed as declared (a multipart body whose hash is needed, a URL
    that does not parse, a body an OAuth 1.0a signature cannot cover). The message names
    no credential."""


@runtime_checkable
class RequestSigner(Protocol):
    """Signs one rendered request in place, at ``now`` (epoch seconds).

    ``headers``: the names (lower case) of the headers it writes, which a redirect to
    another origin drops; ``secrets``: the key material it holds, for redaction.
    """

    headers: frozenset[str]
    secrets: tuple[str, ...]

    def sign(self, req: PreparedRequest, now: float) -> None: ...


def strict_quote(text: str) -> str:
    """Percent-encode everything but the unreserved characters (UTF-8, upper-case hex)."""
    return quote(text, safe=_UNRESERVED)


def settle_url(req: PreparedRequest) -> URL:
    """Write ``req.params`` into ``req.url`` and return the URL as the transports will
    parse it (see the module docstring). Raises SigningError for a URL that does not
    parse."""
    url = req.url
    if req.params:
        url = url.partition("#")[0]  # never sent
        extra = "&".join(f"{strict_quote(k)}={strict_quote(v)}" for k, v in req.params.items())
        url = url + ("&" if "?" in url else "?") + extra
        req.params = None
    try:
        parsed = URL(url)
        # a second parse of yarl's own text gives the same URL: what we sign here is what
        # the transport's parse of req.url gives
        req.url = str(parsed)
        parsed = URL(req.url)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot sign a request to an invalid URL ({exc})") from None
    if not parsed.absolute or parsed.raw_host is None:
        raise SigningError("cannot sign a request whose URL has no host")
    return parsed


def host_header(req: PreparedRequest, url: URL) -> str:
    """The Host header the transports send: the request's own, else the URL's host and a
    port that is not the scheme's default."""
    given = header_value(req.headers, "host")
    return given if given is not None else url.host_port_subcomponent or ""


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name (None: absent)."""
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


def body_bytes(req: PreparedRequest) -> bytes:
    """The body as it goes on the wire. A JSON body left for aiohttp to serialise is
    serialised here instead (aiohttp's own serialiser would send other bytes than the ones
    hashed); a multipart body cannot be hashed before it is written."""
    data = req.data
    if data is None and req.json is not None:
        data = req.data = orjson.dumps(req.json)
        req.json = None
        if header_value(req.headers, "content-type") is None:
            req.headers["Content-Type"] = "application/json"
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        encoded = data.encode()
        req.data = encoded
        return encoded
    raise SigningError("cannot sign a multipart or streamed body: its bytes are only known "
                       "once the transport writes it")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

