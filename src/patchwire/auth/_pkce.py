"""PKCE (RFC 7636) S256 pairs and the ``state`` value of an authorization request."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

__all__ = ["PkcePair", "code_challenge", "new_code_verifier", "new_state"]

#: RFC 7636 §4.1: 43..128 characters of the unreserved set
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def new_code_verifier() -> str:
    """32 random octets, base64url without padding: 43 characters, 256 bits of entropy
    (the construction RFC 7636 §4.1 recommends)."""
    return _b64url(secrets.token_bytes(32))


def code_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` without padding (RFC 7636 §4.2, S256)."""
    if not _VERIFIER_RE.match(verifier):
        # never echo the verifier itself: it is a secret until the exchange is done
        raise ValueError("a PKCE code_verifier must be 43-128 characters of [A-Za-z0-9-._~]")
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    """An unguessable ``state`` binding the callback to the request that started it (CSRF)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class PkcePair:
    """A verifier and its S256 challenge. The repr hides the verifier."""

    verifier: str
    challenge: str
    method: str = "S256"

    @classmethod
    def new(cls) -> PkcePair:
        verifier = new_code_verifier()
        return cls(verifier, code_challenge(verifier))

    def __repr__(self) -> str:
        return f"PkcePair(challenge={self.challenge!r}, method={self.method!r})"
