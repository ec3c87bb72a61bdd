"""Which request signer an auth declaration needs (None: the scheme signs nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchwire.auth._hmac_signature import HmacSigner
from patchwire.auth._oauth1 import OAuth1Signer
from patchwire.auth._schemes import SIGNED_AUTH_TYPES
from patchwire.auth._signing import RequestSigner
from patchwire.auth._sigv4 import SigV4Signer
from patchwire.connectors.spec import AuthSpec, AwsSigV4Auth, HmacSignatureAuth, OAuth1Auth

__all__ = ["SIGNED_AUTH_TYPES", "build_signer"]


def build_signer(auth: AuthSpec, values: Mapping[str, Any]) -> RequestSigner | None:
    """The signer of a connection (built once per connection: keys decoded, templates
    compiled). MissingCredential when a value it needs is not set; SigningError when one
    is unusable (an RSA key that does not parse)."""
    if isinstance(auth, OAuth1Auth):
        return OAuth1Signer(auth, values)
    if isinstance(auth, AwsSigV4Auth):
        return SigV4Signer(auth, values)
    if isinstance(auth, HmacSignatureAuth):
        return HmacSigner(auth, values)
    return None
