"""What may be shown of a connection's OAuth2 tokens: whether there is one, when it
expires, whether a person must authorise again — read from the encrypted secrets here, so
that pages and APIs showing it never hold a token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from patchwire.auth._tokens import TokenSet, needs_reauth
from patchwire.auth.vault import Vault, connection_aad

if TYPE_CHECKING:
    from patchwire.store import Store
    from patchwire.store.records import ConnectionRecord

__all__ = ["TokenState", "TokenStates"]


@dataclass(frozen=True)
class TokenState:
    """A connection's tokens as a person may see them (never a token)."""

    has_token: bool
    needs_reauth: bool
    #: epoch seconds (None: the token endpoint did not say, so it does not expire)
    expires_at: float | None

    @property
    def expires(self) -> bool:
        """False for a token granted without ``expires_in`` (GitHub OAuth apps, Slack
        without rotation): it is used until an upstream refuses it, never renewed ahead."""
        return self.has_token and self.expires_at is not None

    @property
    def summary(self) -> str:
        """The state in words, as pages show it (never the token)."""
        if self.needs_reauth:
            return "needs to be authorised again"
        if not self.has_token:
            return "not connected"
        return "valid, expires" if self.expires else "valid, does not expire"


class TokenStates:
    """The :class:`TokenState` of connections, over the store and the vault (callables:
    both exist once the application has opened)."""

    def __init__(self, store: Callable[[], Store], vault: Callable[[], Vault]) -> None:
        self._store = store
        self._vault = vault

    async def of(self, name: str) -> TokenState:
        """Raises the store's LookupFailed for an unknown connection, VaultError for
        secrets the vault's key cannot open."""
        return self.of_record(await self._store().get_connection(name))

    def of_record(self, rec: ConnectionRecord) -> TokenState:
        """From a record already read (a page of connections reads them in one query);
        VaultError for secrets the vault's key cannot open."""
        secrets = (self._vault().decrypt_json(rec.secrets, aad=connection_aad(rec.id))
                   if rec.secrets else {})
        tokens = TokenSet.from_secrets(secrets)
        return TokenState(has_token=tokens is not None, needs_reauth=needs_reauth(secrets),
                          expires_at=tokens.expires_at if tokens else None)
