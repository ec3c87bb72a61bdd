"""``TokenStates``: what may be shown of a connection's OAuth2 tokens (whether there is one,
when it expires, whether a person must authorise again), read from the encrypted secrets in
a real SQLite store — never a token."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from patchwire.auth import TokenSet, TokenState, TokenStates, Vault, connection_aad
from patchwire.auth._tokens import mark_needs_reauth
from patchwire.errors import LookupFailed, VaultError
from patchwire.store import ConnectionRecord, Store


async def _add(store: Store, vault: Vault, name: str, secrets: dict[str, object]) -> None:
    rec = ConnectionRecord.new(name, "oauthy", settings={})
    await store.add_connection(dataclasses.replace(
        rec, secrets=vault.encrypt_json(secrets, aad=connection_aad(rec.id))))


async def test_the_state_of_a_connection_s_tokens_says_what_a_person_may_see(
    tmp_path: Path,
) -> None:
    vault = Vault.from_key_file(tmp_path / "key.json")
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}") as store:
        states = TokenStates(lambda: store, lambda: vault)
        fresh = TokenSet(access_token="canary-access", refresh_token="canary-rt",
                         expires_at=1_900_000_000.0)
        await _add(store, vault, "ana", fresh.merged_into({}))
        await _add(store, vault, "bob", mark_needs_reauth(fresh.merged_into({}),
                                                         "invalid_grant"))
        await _add(store, vault, "cy", {"client_secret": "canary-cs"})  # not connected yet

        assert await states.of("ana") == TokenState(True, False, 1_900_000_000.0)
        assert await states.of("bob") == TokenState(True, True, 1_900_000_000.0)
        assert await states.of("cy") == TokenState(False, False, None)
        assert "canary" not in repr(await states.of("ana"))
        with pytest.raises(LookupFailed):
            await states.of("nobody")
        # secrets another key sealed: the vault's typed error, for the page to show
        stranger = Vault.from_key_file(tmp_path / "other.json")
        other = TokenStates(lambda: store, lambda: stranger)
        with pytest.raises(VaultError):
            await other.of("ana")
