"""Auth schemes, OAuth2 flows and the credential vault."""

from __future__ import annotations

from patchwire.auth.vault import Vault, connection_aad, reencrypt_connections

__all__ = ["Vault", "connection_aad", "reencrypt_connections"]
