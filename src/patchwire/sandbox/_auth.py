"""The four sandbox auth schemes and their fixed, documented credentials."""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

SANDBOX_CREDENTIALS: dict[str, dict[str, str]] = {
    "shop": {"api_key": "shop_test_key_123"},
    "helpdesk": {"username": "agent@example.com", "password": "helpdesk-pass"},
    "calendar": {"token": "cal_test_token"},
    "payments": {"secret_key": "pk_test_sandbox"},
}
"""Credentials each sandbox API accepts unless overridden; safe to publish, loopback only."""


def merged_credentials(
    overrides: Mapping[str, Mapping[str, str]] | None,
) -> dict[str, dict[str, str]]:
    creds = copy.deepcopy(SANDBOX_CREDENTIALS)
    for api, fields in (overrides or {}).items():
        if api not in creds:
            raise ValueError(f"unknown sandbox API {api!r}; expected one of {sorted(creds)}")
        unknown = set(fields) - set(creds[api])
        if unknown:
            raise ValueError(f"unknown credential fields for {api}: {sorted(unknown)}")
        creds[api].update(fields)
    return creds


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Checks one request's credential.

    ``header`` is where the credential travels; ``expected`` is the exact header value a
    well-behaved client sends, compared first so the common case costs one string compare.
    ``scheme`` is set for ``Authorization`` schemes, whose names are case-insensitive.
    """

    header: str
    expected: str
    scheme: str | None
    challenge: str

    def presented(self, request: web.BaseRequest) -> str:
        return request.headers.get(self.header, "")

    def accepts(self, value: str) -> bool:
        if value == self.expected:
            return True
        if self.scheme is None or not value:
            return False
        # RFC 9110 §11.1: the scheme token is case-insensitive; spaces before the
        # credentials may be repeated.
        word, _, rest = value.strip().partition(" ")
        if word.lower() != self.scheme.lower():
            return False
        want = self.expected.partition(" ")[2]
        got = rest.strip()
        if self.scheme.lower() == "basic":
            return _basic_pair(got) == _basic_pair(want)
        return got == want

    def challenge_for(self, value: str) -> str:
        if value and self.scheme == "Bearer":
            # RFC 6750 §3: a presented but wrong token is reported as invalid_token.
            return f'{self.challenge}, error="invalid_token"'
        return self.challenge


def _basic_pair(token: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def build_authenticators(creds: Mapping[str, Mapping[str, str]]) -> dict[str, Authenticator]:
    basic = base64.b64encode(
        f"{creds['helpdesk']['username']}:{creds['helpdesk']['password']}".encode()
    ).decode("ascii")
    return {
        "shop": Authenticator(
            header="X-API-Key",
            expected=creds["shop"]["api_key"],
            scheme=None,
            challenge='ApiKey realm="shop", header="X-API-Key"',
        ),
        "helpdesk": Authenticator(
            header="Authorization",
            expected=f"Basic {basic}",
            scheme="Basic",
            challenge='Basic realm="helpdesk", charset="UTF-8"',
        ),
        "calendar": Authenticator(
            header="Authorization",
            expected=f"Bearer {creds['calendar']['token']}",
            scheme="Bearer",
            challenge='Bearer realm="calendar"',
        ),
        "payments": Authenticator(
            header="Authorization",
            expected=f"Payments-Key {creds['payments']['secret_key']}",
            scheme="Payments-Key",
            challenge='Payments-Key realm="payments"',
        ),
    }


def auth_headers(
    api: str, credentials: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """The headers a client sends to authenticate to ``api`` (raw loops, benchmarks, tests)."""
    creds = merged_credentials(credentials)
    if api not in creds:
        raise ValueError(f"unknown sandbox API {api!r}; expected one of {sorted(creds)}")
    auth = build_authenticators(creds)[api]
    return {auth.header: auth.expected}
