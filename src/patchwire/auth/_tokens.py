"""Token state of an OAuth2 connection and how it lives inside the encrypted secrets.

Why inside the vault-encrypted secrets and not in columns: refresh tokens are long-lived
credentials, so they get the same encryption (and AAD binding to the row) as every other
secret, and no schema migration is needed. ``access_token`` and ``refresh_token`` stay at
the top level of the secrets so the auth renderer and the redactor see them as they see any
secret; the non-secret bookkeeping sits under one ``oauth2`` key so that values like
``"True"`` or an expiry number are not fed to the redactor as if they were secrets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "META_KEY",
    "TokenResponseError",
    "TokenSet",
    "mark_needs_reauth",
    "needs_reauth",
    "parse_token_response",
    "renewed_at",
    "stamp_renewed",
]

META_KEY = "oauth2"


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a token endpoint granted. ``expires_at`` is epoch seconds (None: not said, and
    then the token is taken not to expire: it is used until an upstream refuses it).

    ``settings`` are connection settings the grant taught (``settings_from_token`` over
    the token response, ``settings_from_callback`` over the callback's query), checked
    already against the connector's setting rules; the keeper saves them with the
    connection. The repr names which tokens are present, never their values.
    """

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    scope: str | None = None
    token_type: str = "Bearer"
    settings: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token=***, refresh_token={'***' if self.refresh_token else None}, "
            f"expires_at={self.expires_at!r}, scope={self.scope!r}, "
            f"settings={sorted(self.settings)!r})"
        )

    __str__ = __repr__

    def expires_within(self, seconds: float, now: float) -> bool:
        """True when the token is expired or will be within ``seconds`` of ``now``."""
        return self.expires_at is not None and self.expires_at - seconds <= now

    def merged_into(self, secrets: Mapping[str, Any]) -> dict[str, Any]:
        """``secrets`` with this token state written in (other secrets are kept)."""
        out = dict(secrets)
        out["access_token"] = self.access_token
        if self.refresh_token:
            out["refresh_token"] = self.refresh_token
        else:
            out.pop("refresh_token", None)
        meta = dict(out.get(META_KEY) or {})
        meta.update(expires_at=self.expires_at, scope=self.scope, token_type=self.token_type,
                    needs_reauth=False)
        out[META_KEY] = meta
        return out

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, Any]) -> TokenSet | None:
        """The token state stored in a connection's secrets, or None if it has none."""
        access = secrets.get("access_token")
        if not access:
            return None
        meta = secrets.get(META_KEY) or {}
        expires_at = meta.get("expires_at")
        return cls(
            access_token=str(access),
            refresh_token=str(secrets["refresh_token"]) if secrets.get("refresh_token") else None,
            expires_at=float(expires_at) if expires_at is not None else None,
            scope=meta.get("scope"),
            token_type=str(meta.get("token_type") or "Bearer"),
        )


def needs_reauth(secrets: Mapping[str, Any]) -> bool:
    return bool((secrets.get(META_KEY) or {}).get("needs_reauth"))


def mark_needs_reauth(secrets: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """``secrets`` flagged as needing a person to authorise again. ``reason`` is an RFC 6749
    error code (never a description, which a server may fill with anything)."""
    out = dict(secrets)
    meta = dict(out.get(META_KEY) or {})
    meta.update(needs_reauth=True, reauth_reason=reason)
    out[META_KEY] = meta
    return out


def stamp_renewed(secrets: Mapping[str, Any], at: float) -> dict[str, Any]:
    """``secrets`` with the time tokens were last issued or renewed (epoch seconds) noted in
    the ``oauth2`` metadata: the background refresh keeps idle grants alive from it."""
    out = dict(secrets)
    meta = dict(out.get(META_KEY) or {})
    meta["renewed_at"] = at
    out[META_KEY] = meta
    return out


def renewed_at(secrets: Mapping[str, Any]) -> float | None:
    """When the tokens were last issued or renewed; None if never noted (older data)."""
    value = (secrets.get(META_KEY) or {}).get("renewed_at")
    return float(value) if isinstance(value, (int, float)) else None


class TokenResponseError(ValueError):
    """A 2xx token response that is not a usable token response (names the field only)."""


def parse_token_response(
    body: Mapping[str, Any], *, now: float, previous: TokenSet | None = None
) -> TokenSet:
    """A TokenSet from a successful token response (RFC 6749 §5.1).

    ``expires_in`` (seconds, sometimes sent as a string) becomes an absolute time from
    ``now``, taken before the request was sent, so network time only makes the token look
    older than it is, never younger. A response without a refresh token keeps the previous
    one (RFC 6749 §6: the server MAY issue a new one), and one without ``scope`` means the
    requested scope was granted, so the previous scope is kept.
    """
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenResponseError("access_token is missing")
    token_type = body.get("token_type") or "Bearer"
    if not isinstance(token_type, str):
        raise TokenResponseError("token_type is not a string")
    expires_at: float | None = None
    raw_expiry = body.get("expires_in")
    if raw_expiry not in (None, ""):
        try:
            seconds = float(raw_expiry)
        except (TypeError, ValueError):
            raise TokenResponseError("expires_in is not a number") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise TokenResponseError("expires_in is not a non-negative number")
        expires_at = now + seconds
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = previous.refresh_token if previous else None
    scope = body.get("scope")
    if isinstance(scope, list):  # a few providers send a JSON array
        scope = " ".join(str(s) for s in scope)
    if not isinstance(scope, str):
        scope = previous.scope if previous else None
    return TokenSet(access, refresh, expires_at, scope, token_type)
