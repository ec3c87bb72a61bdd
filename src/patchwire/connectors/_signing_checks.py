"""Load-time checks of the request-signing auth schemes (oauth1, aws_sigv4,
hmac_signature) that the models cannot express: which placeholders a template may name,
and that keys come from secret settings (encrypted at rest, never shown back)."""

from __future__ import annotations

from typing import Any

from patchwire.connectors._template import placeholders_in
from patchwire.connectors.spec import (
    HMAC_SIGNATURE_VARIABLES,
    AwsSigV4Auth,
    ConnectorSpec,
    HmacSignatureAuth,
    OAuth1Auth,
)

__all__ = ["signing_problems"]

_Loc = tuple[str | int, ...]

#: the key material of each signing scheme: must come from secret settings
_KEY_FIELDS: dict[type[Any], tuple[str, ...]] = {
    OAuth1Auth: ("consumer_secret", "token_secret", "rsa_key"),
    AwsSigV4Auth: ("secret_access_key", "session_token"),
    HmacSignatureAuth: ("key",),
}
#: what an hmac_signature header may name besides settings
_HEADER_VARIABLES = frozenset({"signature", "timestamp", "nonce"})


def signing_problems(spec: ConnectorSpec) -> list[tuple[_Loc, str]]:
    auth = spec.auth
    found: list[tuple[_Loc, str]] = []
    for key in _KEY_FIELDS.get(type(auth), ()):
        template = getattr(auth, key)
        for name in sorted(placeholders_in(template)):
            setting = spec.settings.get(name.split(".")[0])
            if setting is not None and not setting.secret:
                found.append((("auth", key), f"setting {name!r} holds key material: "
                              "declare it `secret: true` so it is encrypted and never shown"))
    if isinstance(auth, HmacSignatureAuth):
        declared = set(spec.settings)
        for name in sorted(placeholders_in(auth.canonical)):
            if name not in HMAC_SIGNATURE_VARIABLES and name.split(".")[0] not in declared:
                known = ", ".join(f"{{{v}}}" for v in sorted(HMAC_SIGNATURE_VARIABLES))
                found.append((("auth", "canonical"), f"placeholder {{{name}}} is neither a "
                              f"request value ({known}) nor a declared setting"))
        for header, template in auth.headers.items():
            for name in sorted(placeholders_in(template)):
                if name not in _HEADER_VARIABLES and name.split(".")[0] not in declared:
                    found.append((("auth", "headers", header),
                                  f"placeholder {{{name}}} is neither {{signature}}, "
                                  "{timestamp}, {nonce} nor a declared setting"))
    return found
