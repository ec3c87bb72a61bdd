"""The JWT bearer grant's assertion (RFC 7523): claims from the connector's templates and
the connection's settings, signed with PyJWT.

RFC 7523 §3 requires ``iss``, ``sub``, ``aud`` and ``exp`` (and allows ``iat``, ``jti``);
Google's service accounts (https://developers.google.com/identity/protocols/oauth2/service-account)
add the requested scopes as a ``scope`` claim and the key's id as ``kid``. A service
account's JSON key (one secret setting) fills issuer, key and key id.

Nothing here puts the private key (or the service-account JSON) in an error: messages
name the setting and what is wrong with it, never its content.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from patchwire.auth._schemes import _fill
from patchwire.connectors import MISSING, compile_template
from patchwire.connectors.spec import JwtAssertion

__all__ = ["JWT_BEARER_GRANT", "AssertionProblem", "SignedAssertion", "sign_assertion"]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class AssertionProblem(ValueError):
    """The assertion cannot be made from the connection's values (names the field only)."""


@dataclass(frozen=True)
class SignedAssertion:
    token: str
    #: what must never be shown: the private key and the service-account JSON
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return "SignedAssertion(***)"


def _optional(template: str | None, values: Mapping[str, Any]) -> str | None:
    return _fill(template, values) if template else None


def _service_account(template: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The parsed service-account key and its text (for redaction)."""
    raw = compile_template(template).render(values)  # one placeholder keeps a mapping
    if raw is MISSING or raw is None or raw == "":
        _fill(template, values)  # raises MissingCredential naming the setting
    if isinstance(raw, Mapping):
        return dict(raw), orjson.dumps(dict(raw)).decode()
    text = str(raw)
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise AssertionProblem("the service-account key is not JSON") from None
    if not isinstance(parsed, dict):
        raise AssertionProblem("the service-account key is not a JSON object")
    return parsed, text


def sign_assertion(spec: JwtAssertion, values: Mapping[str, Any], *, token_url: str,
                   scope: str | None, now: float) -> SignedAssertion:
    """The signed JWT for one token request at ``now`` (epoch seconds).

    Raises MissingCredential when a setting it needs is empty, AssertionProblem when the
    values are unusable (not a key, not JSON).
    """
    hidden: list[str] = []
    account: dict[str, Any] = {}
    if spec.service_account is not None:
        account, text = _service_account(spec.service_account, values)
        hidden.append(text)
    issuer = _optional(spec.issuer, values) or account.get("client_email")
    key = _optional(spec.private_key, values) or account.get("private_key")
    key_id = _optional(spec.key_id, values) or account.get("private_key_id")
    if not isinstance(issuer, str) or not issuer:
        raise AssertionProblem("the assertion has no issuer (client_email of the "
                              "service-account key, or `issuer`)")
    if not isinstance(key, str) or not key.strip():
        raise AssertionProblem("the assertion has no private key (private_key of the "
                              "service-account key, or `private_key`)")
    hidden.append(key)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": _optional(spec.subject, values) or issuer,
        "aud": _optional(spec.audience, values) or token_url,
        "iat": int(now),
        "exp": int(now) + spec.lifetime,
        # a fresh id per assertion: a server may refuse one seen before (RFC 7523 §3)
        "jti": secrets.token_urlsafe(16),
    }
    if scope and spec.scope_in == "claim":
        claims["scope"] = scope
    for name, template in spec.claims.items():
        claims[name] = _fill(template, values)
    headers = {"kid": str(key_id)} if key_id else None
    try:
        token = jwt.encode(claims, key, algorithm=spec.algorithm, headers=headers)
    except Exception:  # PyJWT and cryptography raise many kinds: none may carry the key
        raise AssertionProblem(
            f"the private key cannot sign {spec.algorithm} (a PEM private key of that "
            "kind is expected)") from None
    return SignedAssertion(token, tuple(hidden))
