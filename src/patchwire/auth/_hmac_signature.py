"""HMAC request signatures over a declared canonical string (``hmac_signature`` auth).

Many APIs sign requests their own way — a timestamp, the method, the path, a body hash,
joined by newlines, HMAC-SHA256 with a shared secret, hex or base64, in a header or two.
The connector declares the canonical string as a template; this module fills it from the
request as it will be sent (path and query as on the request line, the body's bytes).

Retries send the same signed request again, timestamp and nonce included: the upstream
sees one logical request repeated, which is what its replay window (typically minutes)
is for; an API that refuses any repeated nonce refuses the retry (a 4xx, not retried).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from patchwire.auth._schemes import MissingCredential, _fill
from patchwire.auth._signing import SigningError, body_bytes, settle_url, sha256_hex
from patchwire.connectors import MISSING, compile_template
from patchwire.connectors.spec import HmacSignatureAuth
from patchwire.http import PreparedRequest

__all__ = ["HmacSigner"]

_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}


def _timestamp(kind: str, now: float) -> str:
    if kind == "unix":
        return str(int(now))
    if kind == "unix_ms":
        return str(int(now * 1000))
    if kind == "iso8601":
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return formatdate(now, usegmt=True)


class HmacSigner:
    """Signs requests with one connection's key; the key and the settings the templates
    name are read once, when the connection is resolved."""

    def __init__(self, auth: HmacSignatureAuth, values: Mapping[str, Any]) -> None:
        text = _fill(auth.key, values)
        try:
            if auth.key_encoding == "hex":
                self._key = bytes.fromhex(text)
            elif auth.key_encoding == "base64":
                self._key = base64.b64decode(text, validate=True)
            else:
                self._key = text.encode()
        except (ValueError, binascii.Error):
            # the setting's name only: its value is the secret
            raise MissingCredential(
                f"{auth.key} (not valid {auth.key_encoding})") from None
        self._digest = _DIGESTS[auth.algorithm]
        self._canonical = compile_template(auth.canonical)
        self._needs_body = bool({"body", "body_sha256"} & set(self._canonical.names))
        self._templates = [(name, compile_template(tpl)) for name, tpl in auth.headers.items()]
        self._timestamp = auth.timestamp
        self._base64 = auth.encoding == "base64"
        # settings the templates may name (request variables below take precedence)
        self._settings = dict(values)
        self.headers = frozenset(name.lower() for name in auth.headers)
        self.secrets: tuple[str, ...] = (text,)

    def sign(self, req: PreparedRequest, now: float) -> None:
        url = settle_url(req)
        fields: dict[str, Any] = dict(self._settings)
        query = url.raw_query_string
        fields.update(method=req.method.upper(), path=url.raw_path, query=query,
                      target=url.raw_path + ("?" + query if query else ""),
                      timestamp=_timestamp(self._timestamp, now), nonce=secrets.token_hex(16))
        if self._needs_body:
            body = body_bytes(req)
            try:
                fields["body"] = body.decode()
            except UnicodeDecodeError:
                if "body" in self._canonical.names:
                    raise SigningError("the canonical string names {body}, but the body is "
                                       "not UTF-8 text (use {body_sha256})") from None
            fields["body_sha256"] = sha256_hex(body)
        canonical = self._canonical.render(fields)
        if canonical is MISSING:
            raise SigningError("a value the canonical string names is not set")
        mac = hmac.new(self._key, str(canonical).encode(), self._digest).digest()
        fields["signature"] = (base64.b64encode(mac).decode("ascii") if self._base64
                               else mac.hex())
        for name, tpl in self._templates:
            value = tpl.render(fields)
            if value is MISSING or value is None:
                raise SigningError(f"a value header {name!r} names is not set")
            text = str(value)
            if "\r" in text or "\n" in text or "\0" in text:
                raise SigningError(f"header {name!r} would carry a line break or NUL "
                                   "character (check the connection's settings)")
            req.headers[name] = text
