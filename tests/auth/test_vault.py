"""The credential vault: AES-GCM tokens, key sources, key files and rotation."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from patchwire.auth import Vault, connection_aad
from patchwire.config import Settings
from patchwire.errors import ConfigError, VaultError

AAD = connection_aad("0b9e3a4c-1111-2222-3333-444455556666")


def b64key(seed: int) -> str:
    return base64.urlsafe_b64encode(bytes([seed]) * 32).decode()


def env_vault(value: str, tmp_path: Path) -> Vault:
    return Vault.from_settings(Settings(home=tmp_path / "home", secret_key=value))


def test_encrypted_values_round_trip_and_tokens_carry_the_key_id(tmp_path: Path) -> None:
    vault = env_vault(b64key(1), tmp_path)
    token = vault.encrypt(b"hunter2", aad=AAD)
    prefix, kid, _ = token.split(".")
    assert (prefix, kid) == ("pwv1", vault.active_key_id)
    assert len(kid) == 8
    assert b"hunter2" not in token.encode()
    assert vault.decrypt(token, aad=AAD) == b"hunter2"
    assert vault.encrypt(b"hunter2", aad=AAD) != token  # fresh nonce each time
    obj = {"api_key": "k", "nested": {"n": 1}}
    assert vault.decrypt_json(vault.encrypt_json(obj, aad=AAD), aad=AAD) == obj


def test_a_bare_env_key_has_a_stable_derived_key_id(tmp_path: Path) -> None:
    assert (
        env_vault(b64key(1), tmp_path).active_key_id == env_vault(b64key(1), tmp_path).active_key_id
    )
    assert (
        env_vault(b64key(1), tmp_path).active_key_id != env_vault(b64key(2), tmp_path).active_key_id
    )


def test_tampered_ciphertext_raises_vault_error_naming_the_key_id(tmp_path: Path) -> None:
    vault = env_vault(b64key(1), tmp_path)
    token = vault.encrypt(b"hunter2", aad=AAD)
    prefix, kid, data = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    raw[-1] ^= 1
    tampered = f"{prefix}.{kid}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    with pytest.raises(VaultError, match=kid) as info:
        vault.decrypt(tampered, aad=AAD)
    assert "hunter2" not in str(info.value)
    assert b64key(1) not in str(info.value)


def test_wrong_associated_data_raises_vault_error(tmp_path: Path) -> None:
    vault = env_vault(b64key(1), tmp_path)
    token = vault.encrypt_json({"api_key": "k"}, aad=connection_aad("a"))
    with pytest.raises(VaultError):
        vault.decrypt_json(token, aad=connection_aad("b"))


def test_malformed_tokens_and_unknown_key_ids_raise_vault_error(tmp_path: Path) -> None:
    vault = env_vault(b64key(1), tmp_path)
    with pytest.raises(VaultError, match="not a vault token"):
        vault.decrypt("plain text", aad=AAD)
    foreign = env_vault(b64key(2), tmp_path).encrypt(b"x", aad=AAD)
    with pytest.raises(VaultError, match=Vault.token_key_id(foreign)):
        vault.decrypt(foreign, aad=AAD)


def test_env_keys_with_several_ids_encrypt_with_the_first_and_decrypt_all(
    tmp_path: Path,
) -> None:
    old = env_vault(f"old:{b64key(1)}", tmp_path)
    old_token = old.encrypt(b"legacy", aad=AAD)
    both = env_vault(f"new:{b64key(2)}, old:{b64key(1)}", tmp_path)
    assert both.active_key_id == "new"
    assert both.key_ids == ("new", "old")
    assert both.decrypt(old_token, aad=AAD) == b"legacy"
    assert both.needs_reencrypt(old_token)
    new_token = both.encrypt(b"fresh", aad=AAD)
    assert Vault.token_key_id(new_token) == "new"
    assert not both.needs_reencrypt(new_token)
    assert not both.needs_reencrypt("")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("c2hvcnQ=", "5 bytes, expected 32"),
        ("!!!not*base64!!!", "not valid urlsafe base64"),
        (f"bad kid:{b64key(1)}", "key id"),
        (f"a:{b64key(1)},a:{b64key(2)}", "more than once"),
    ],
)
def test_bad_env_keys_raise_config_error_without_echoing_the_key(
    tmp_path: Path, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        env_vault(value, tmp_path)
    assert b64key(1) not in str(info.value)
    assert "c2hvcnQ" not in str(info.value)


def test_env_vaults_cannot_rotate_and_say_how_to_rotate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PATCHWIRE_SECRET_KEY"):
        env_vault(b64key(1), tmp_path).rotate()


def test_vault_repr_never_shows_key_material(tmp_path: Path) -> None:
    vault = env_vault(f"k1:{b64key(7)}", tmp_path)
    raw = bytes([7]) * 32
    for shown in (repr(vault), str(vault)):
        assert "k1" in shown
        assert b64key(7) not in shown
        assert b64key(7).rstrip("=") not in shown
        assert repr(raw) not in shown


def test_key_file_is_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    vault = Vault.from_settings(Settings(home=home))
    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    doc = json.loads(key_file.read_text())
    assert doc["active"] == vault.active_key_id
    assert list(doc["keys"]) == [vault.active_key_id]
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no temp files left behind

    again = Vault.from_settings(Settings(home=home))
    assert again.decrypt(vault.encrypt(b"x", aad=AAD), aad=AAD) == b"x"


def test_key_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    Vault.from_settings(Settings(home=tmp_path))
    key_file = tmp_path / "secret.key"
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match=r"chmod 600 .*secret\.key") as info:
        Vault.from_settings(Settings(home=tmp_path))
    assert json.loads(key_file.read_text())["keys"].popitem()[1] not in str(info.value)


def test_key_file_rotation_keeps_old_keys_for_decryption(tmp_path: Path) -> None:
    vault = Vault.from_settings(Settings(home=tmp_path))
    old_kid = vault.active_key_id
    old_token = vault.encrypt(b"before", aad=AAD)

    new_kid = vault.rotate()
    assert vault.active_key_id == new_kid != old_kid
    assert vault.key_ids == (new_kid, old_kid)
    assert vault.decrypt(old_token, aad=AAD) == b"before"
    assert vault.needs_reencrypt(old_token)
    assert Vault.token_key_id(vault.encrypt(b"after", aad=AAD)) == new_kid

    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    reloaded = Vault.from_settings(Settings(home=tmp_path))
    assert reloaded.active_key_id == new_kid
    assert reloaded.decrypt(old_token, aad=AAD) == b"before"


def test_corrupt_key_file_raises_config_error(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"active": "x", "keys": {}}')
    os.close(fd)
    with pytest.raises(ConfigError, match="must look like"):
        Vault.from_settings(Settings(home=tmp_path))
