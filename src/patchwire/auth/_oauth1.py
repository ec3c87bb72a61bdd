"""OAuth 1.0a request signing (RFC 5849) through ``oauthlib``'s client.

oauthlib builds the signature base string (method, base string URI, normalised
parameters from the query, a form body and the ``oauth_*`` parameters) and signs it with
HMAC-SHA1, HMAC-SHA256, RSA-SHA1 or PLAINTEXT; we hand it the request exactly as the
transport will send it (:func:`settle_url`) and copy back what it adds.

A body that is not a form (JSON, XML) is covered by ``oauth_body_hash`` (the OAuth body
hash extension oauthlib applies).

Retries send the same signed request again, so its ``oauth_nonce`` repeats. The HTTP
core retries only after a failed exchange (the upstream most likely never saw the first
attempt) or a 429/5xx; a provider that remembers every nonce answers the repeat with 401,
which is not retried, and the call fails visibly rather than twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from oauthlib.oauth1 import (  # type: ignore[import-untyped]
    SIGNATURE_HMAC_SHA1,
    SIGNATURE_HMAC_SHA256,
    SIGNATURE_PLAINTEXT,
    SIGNATURE_RSA_SHA1,
    SIGNATURE_TYPE_AUTH_HEADER,
    SIGNATURE_TYPE_BODY,
    SIGNATURE_TYPE_QUERY,
    Client,
)

from patchwire.auth._schemes import _fill
from patchwire.auth._signing import SigningError, body_bytes, header_value, settle_url
from patchwire.connectors.spec import OAuth1Auth
from patchwire.http import PreparedRequest

__all__ = ["OAuth1Signer"]

_METHODS = {"HMAC-SHA1": SIGNATURE_HMAC_SHA1, "HMAC-SHA256": SIGNATURE_HMAC_SHA256,
            "RSA-SHA1": SIGNATURE_RSA_SHA1, "PLAINTEXT": SIGNATURE_PLAINTEXT}
_PLACEMENTS = {"header": SIGNATURE_TYPE_AUTH_HEADER, "query": SIGNATURE_TYPE_QUERY,
               "body": SIGNATURE_TYPE_BODY}
FORM = "application/x-www-form-urlencoded"


class _Client(Client):  # type: ignore[misc]
    """oauthlib's client, leaving out ``oauth_version`` when the connector says so."""

    send_version = True

    def get_oauth_params(self, request: Any) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = super().get_oauth_params(request)
        return params if self.send_version else [p for p in params if p[0] != "oauth_version"]


class OAuth1Signer:
    """Signs requests with one connection's consumer and token credentials. ``nonce``
    makes the nonces (default: oauthlib's, 30 random digits)."""

    def __init__(self, auth: OAuth1Auth, values: Mapping[str, Any], *,
                 nonce: Callable[[], str] | None = None) -> None:
        def optional(template: str | None) -> str | None:
            return _fill(template, values) if template else None

        self._client_args: dict[str, Any] = {
            "client_key": _fill(auth.consumer_key, values),
            "client_secret": optional(auth.consumer_secret),
            "resource_owner_key": optional(auth.token),
            "resource_owner_secret": optional(auth.token_secret),
            "signature_method": _METHODS[auth.signature_method],
            "signature_type": _PLACEMENTS[auth.placement],
            "rsa_key": optional(auth.rsa_key),
            "realm": auth.realm,
        }
        self._placement = auth.placement
        self._version = auth.version
        self._nonce = nonce
        self.headers = frozenset({"authorization"}) if auth.placement == "header" else (
            frozenset())
        self.secrets = tuple(
            s for s in (self._client_args["client_secret"],
                        self._client_args["resource_owner_secret"],
                        self._client_args["rsa_key"]) if s)
        if auth.signature_method == "RSA-SHA1":
            # a key that does not parse is found now, not at the first call
            self._check_rsa_key()

    def _check_rsa_key(self) -> None:
        try:
            _Client(**self._client_args, nonce="0", timestamp="0").sign("https://h/")
        except Exception as exc:  # PyJWT's InvalidKeyError, cryptography's ValueError...
            # (the exception's text may quote the key: it is not chained)
            raise SigningError(f"the RSA-SHA1 key does not parse as a PEM private key "
                               f"({type(exc).__name__})") from None

    def sign(self, req: PreparedRequest, now: float) -> None:
        url = settle_url(req)
        content_type = header_value(req.headers, "content-type")
        body: str | None = None
        raw = body_bytes(req)
        if raw or req.method.upper() not in ("GET", "HEAD"):
            try:
                body = raw.decode()
            except UnicodeDecodeError:
                raise SigningError("OAuth 1.0a cannot sign a body that is not UTF-8 "
                                   "text") from None
        if body == "":
            body = None
        headers = {"Content-Type": content_type} if content_type is not None else {}
        client = _Client(**self._client_args, timestamp=str(int(now)),
                         nonce=self._nonce() if self._nonce is not None else None)
        client.send_version = self._version
        try:
            uri, signed_headers, signed_body = client.sign(
                str(url), req.method.upper(), body, headers)
        except ValueError as exc:
            # oauthlib's words say what is wrong with the request's shape, never a key
            raise SigningError(f"OAuth 1.0a cannot sign this request: {exc}") from None
        if self._placement == "query":
            req.url = uri
        elif self._placement == "body":
            req.data = signed_body.encode() if isinstance(signed_body, str) else signed_body
        else:
            req.headers["Authorization"] = signed_headers["Authorization"]
