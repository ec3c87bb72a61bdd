"""Auth schemes, OAuth2 flows and the credential vault."""

from __future__ import annotations

from patchwire.auth._keeper import (
    DEFAULT_MAX_TOKEN_AGE,
    DEFAULT_REFRESH_SKEW,
    TokenKeeper,
    UnsavedTokens,
)
from patchwire.auth._pkce import PkcePair, code_challenge, new_code_verifier, new_state
from patchwire.auth._tokens import TokenSet
from patchwire.auth.oauth2 import OAuth2Client, new_authorization
from patchwire.auth.vault import Vault, connection_aad, oauth_app_aad, reencrypt_connections

from ._consent import DEFAULT_CONSENT_TIMEOUT, consent_via_loopback
from ._device import DeviceAuthorization
from ._exchange import TokenExchangeClient
from ._schemes import AuthParts, MissingCredential, render_auth, render_client_tls
from ._signers import SIGNED_AUTH_TYPES, build_signer
from ._signing import RequestSigner, SigningError
from ._token_state import TokenState, TokenStates

__all__ = [
    "DEFAULT_CONSENT_TIMEOUT",
    "DEFAULT_MAX_TOKEN_AGE",
    "DEFAULT_REFRESH_SKEW",
    "SIGNED_AUTH_TYPES",
    "AuthParts",
    "DeviceAuthorization",
    "MissingCredential",
    "OAuth2Client",
    "PkcePair",
    "RequestSigner",
    "SigningError",
    "TokenExchangeClient",
    "TokenKeeper",
    "TokenSet",
    "TokenState",
    "TokenStates",
    "UnsavedTokens",
    "Vault",
    "build_signer",
    "code_challenge",
    "connection_aad",
    "consent_via_loopback",
    "new_authorization",
    "new_code_verifier",
    "new_state",
    "oauth_app_aad",
    "reencrypt_connections",
    "render_auth",
    "render_client_tls",
]
