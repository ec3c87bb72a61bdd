"""AWS Signature Version 4, written from AWS's description of the algorithm
("Create a signed AWS API request", IAM user guide): canonical request, string to sign,
derived signing key, ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
Signature=...``. Checked against AWS's own signing test suite and botocore
(tests/auth/test_sigv4.py).

Retries send the same signed request again: a signature stays valid for five minutes
around its ``X-Amz-Date`` and carries no nonce, so AWS accepts the repeat; a retry after
a long ``Retry-After`` wait is capped well below that by the retry policy.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from patchwire.auth._schemes import MissingCredential, _fill
from patchwire.auth._signing import (
    body_bytes,
    host_header,
    settle_url,
    sha256_hex,
    strict_quote,
)
from patchwire.connectors.spec import AwsSigV4Auth
from patchwire.http import PreparedRequest

__all__ = ["SigV4Signer", "canonical_request", "signing_key", "string_to_sign"]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: headers never signed: proxies and clients add or rewrite them on the way
_UNSIGNED_HEADERS = frozenset({"authorization", "user-agent", "expect", "x-amzn-trace-id",
                               "connection", "transfer-encoding"})
_SPACES = re.compile(r"\s+")


def _uri_encode_path(path: str) -> str:
    return "/".join(strict_quote(segment) for segment in path.split("/"))


def _normalize_path(path: str) -> str:
    """RFC 3986 dot segments removed and empty segments collapsed, as AWS services read
    the path (S3 excepted)."""
    if not path:
        return "/"
    normalized = posixpath.normpath(path)
    normalized = re.sub("/+", "/", normalized)
    if normalized in (".", ""):
        normalized = "/"
    if not normalized.startswith("/"):
        normalized = "/" + normalized
    if path.endswith("/") and not normalized.endswith("/"):
        normalized += "/"
    return normalized


def canonical_query(raw_query: str) -> str:
    """Each name and value decoded from the query as sent and encoded again AWS's way,
    sorted by name then value (a ``+`` is a plus sign: we never send one for a space)."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((strict_quote(unquote(name)), strict_quote(unquote(value))))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def canonical_headers(headers: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(canonical headers block, signed headers list): names lower-cased, values trimmed
    with inner runs of spaces made one, repeated names joined by commas in order."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.lower().strip(), []).append(_SPACES.sub(" ", value).strip())
    names = sorted(merged)
    block = "".join(f"{n}:{','.join(merged[n])}\n" for n in names)
    return block, ";".join(names)


def canonical_request(
    method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
    payload_hash: str, *, s3: bool = False, normalize: bool = True,
) -> tuple[str, str]:
    """(canonical request, signed headers). ``path`` and ``query`` are as on the request
    line. Every service but S3 encodes the path as sent once more (it is "encoded twice")
    and normalises it; S3 takes its object key as is, so its path is decoded and encoded
    once."""
    if s3:
        uri = _uri_encode_path(unquote(path) or "/")
    else:
        uri = _uri_encode_path(_normalize_path(path) if normalize else path or "/")
    block, signed = canonical_headers(headers)
    text = "\n".join([method.upper(), uri, canonical_query(query), block, signed,
                      payload_hash])
    return text, signed


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, sha256_hex(canonical.encode())])


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class SigV4Signer:
    """Signs requests with one set of AWS credentials for one service and region; the
    derived key is kept per day (it depends on the date only)."""

    def __init__(self, auth: AwsSigV4Auth, values: Mapping[str, Any]) -> None:
        self.access_key_id = _fill(auth.access_key_id, values)
        self._secret = _fill(auth.secret_access_key, values)
        # temporary credentials only: a session token whose setting is unset is none
        self.session_token: str | None = None
        if auth.session_token is not None:
            with contextlib.suppress(MissingCredential):
                self.session_token = _fill(auth.session_token, values)
        self.region = _fill(auth.region, values)
        self.service = _fill(auth.service, values)
        self.sign_body = auth.sign_body
        self.s3 = self.service == "s3"
        self.headers = frozenset({"authorization", "x-amz-date", "x-amz-security-token",
                                  "x-amz-content-sha256"})
        self.secrets = tuple(s for s in (self._secret, self.session_token) if s)
        self._key: tuple[str, bytes] | None = None

    def _signing_key(self, date: str) -> bytes:
        cached = self._key
        if cached is None or cached[0] != date:
            cached = self._key = (date, signing_key(self._secret, date, self.region,
                                                    self.service))
        return cached[1]

    def sign(self, req: PreparedRequest, now: float) -> None:
        url = settle_url(req)
        stamp = time.gmtime(now)
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", stamp)
        date = amz_date[:8]
        payload_hash = sha256_hex(body_bytes(req)) if self.sign_body else UNSIGNED_PAYLOAD
        # headers of ours given another spelling (or a stale signature) would be sent twice
        for name in [k for k in req.headers if k.lower() in self.headers]:
            del req.headers[name]
        req.headers["X-Amz-Date"] = amz_date
        if self.session_token:
            req.headers["X-Amz-Security-Token"] = self.session_token
        if self.s3 or not self.sign_body:
            # S3 requires it; elsewhere it is how an unsigned payload is announced
            req.headers["X-Amz-Content-Sha256"] = payload_hash
        signed_headers = [("host", host_header(req, url))]
        signed_headers.extend((k, v) for k, v in req.headers.items()
                              if k.lower() not in _UNSIGNED_HEADERS and k.lower() != "host")
        canonical, signed = canonical_request(
            req.method, url.raw_path, url.raw_query_string, signed_headers, payload_hash,
            s3=self.s3, normalize=not self.s3)
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        sig = signature(self._signing_key(date), string_to_sign(amz_date, scope, canonical))
        req.headers["Authorization"] = (
            f"{ALGORITHM} Credential={self.access_key_id}/{scope}, "
            f"SignedHeaders={signed}, Signature={sig}")
