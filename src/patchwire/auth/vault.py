"""The credential vault: AES-256-GCM encryption of connection secrets at rest.

Why AES-GCM with a key id in every token: the key id lets several keys coexist, which is
what makes rotation possible without a flag day — new secrets are written under the active
key, old tokens still decrypt with the older keys until :func:`reencrypt_connections` has
rewritten them.

Where keys come from (see :meth:`Vault.from_settings`):

* ``PATCHWIRE_SECRET_KEY`` (``Settings.secret_key``): either one urlsafe-base64 32-byte key,
  or comma-separated ``kid:base64key`` entries. The first entry is the active key; the others
  only decrypt. To rotate, put a new ``kid:key`` entry at the front, restart, then run
  :func:`reencrypt_connections`, then drop the old entry.
* Otherwise the key file ``<home>/secret.key`` (JSON ``{"active": kid, "keys": {kid: b64}}``),
  created on first use with mode 0600 and refused if group or others can read it.
  :meth:`Vault.rotate` adds a new active key to it.

Token format: ``pwv1.<kid>.<urlsafe-b64(nonce[12] + ciphertext + tag)>`` (no padding).

AAD convention: every secret is bound to what it belongs to through the AES-GCM associated
data, so a token copied onto another row does not decrypt. Connection secrets use
``aad=f"connection:{connection_id}".encode()`` — always build it with :func:`connection_aad`;
an OAuth app's client secret (``oauth_apps``) is bound to its connector with
:func:`oauth_app_aad`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from patchwire.config import Settings
from patchwire.errors import ConfigError, VaultError

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = ["KEY_FILE_NAME", "TOKEN_PREFIX", "Vault", "connection_aad", "oauth_app_aad",
           "reencrypt_connections"]

TOKEN_PREFIX = "pwv1"
KEY_FILE_NAME = "secret.key"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_B64_RE = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def connection_aad(connection_id: str) -> bytes:
    """The associated data binding a secret to its connection row (see module docstring)."""
    return f"connection:{connection_id}".encode()


def oauth_app_aad(connector: str) -> bytes:
    """The associated data binding an OAuth app's client secret to its connector."""
    return f"oauth_app:{connector}".encode()


def _derive_kid(key: bytes) -> str:
    """Stable short id for a key given without one: first 8 hex chars of its SHA-256.

    Stable so that the same env key always yields the same id across restarts, which is
    what lets stored tokens find their key again.
    """
    return hashlib.sha256(key).hexdigest()[:8]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    """Strict urlsafe base64 decoding (standard ``+/`` accepted too, padding optional)."""
    text = text.strip().replace("+", "-").replace("/", "_")
    if not _B64_RE.match(text):
        raise ValueError("not valid base64")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def _decode_key(encoded: str, where: str) -> bytes:
    """Decode one key; errors say what is wrong and where, never the key itself."""
    try:
        key = _b64decode(encoded)
    except ValueError:
        raise ConfigError(f"{where}: key is not valid urlsafe base64") from None
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"{where}: key decodes to {len(key)} bytes, expected {_KEY_BYTES} "
            '(generate one with: python -c "import base64, os; '
            'print(base64.urlsafe_b64encode(os.urandom(32)).decode())")'
        )
    return key


def _check_kid(kid: str, where: str) -> str:
    if not _KID_RE.match(kid):
        raise ConfigError(
            f"{where}: key id {kid[:64]!r} is invalid (use 1-64 letters, digits, '_' or '-')"
        )
    return kid


def _parse_env_keys(value: str) -> tuple[dict[str, bytes], str]:
    """Parse ``PATCHWIRE_SECRET_KEY``: one bare key, or ``kid:key`` entries (first active)."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise ConfigError("PATCHWIRE_SECRET_KEY is set but empty")
    keys: dict[str, bytes] = {}
    active = ""
    for n, entry in enumerate(entries, start=1):
        where = f"PATCHWIRE_SECRET_KEY entry {n}"
        if ":" in entry:
            kid, _, encoded = entry.partition(":")
            kid = _check_kid(kid.strip(), where)
            key = _decode_key(encoded, f"{where} (key id {kid!r})")
        else:
            key = _decode_key(entry, where)
            kid = _derive_kid(key)
        if kid in keys:
            raise ConfigError(f"{where}: key id {kid!r} appears more than once")
        keys[kid] = key
        if n == 1:
            active = kid
    return keys, active


def _check_key_file_mode(path: Path) -> None:
    """Refuse a key file other users could read: it decrypts every stored credential."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"key file {path} is readable or writable by group/others (mode {mode:04o}); "
            f"fix it with: chmod 600 {path}"
        )


def _read_key_file(path: Path) -> tuple[dict[str, bytes], str]:
    _check_key_file_mode(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"key file {path} cannot be read as JSON: {type(exc).__name__}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("active"), str)
        or not isinstance(data.get("keys"), dict)
        or not data["keys"]
    ):
        raise ConfigError(
            f'key file {path} must look like {{"active": "<kid>", "keys": {{"<kid>": "<b64>"}}}}'
        )
    keys: dict[str, bytes] = {}
    for kid, encoded in data["keys"].items():
        where = f"key file {path}"
        _check_kid(str(kid), where)
        if not isinstance(encoded, str):
            raise ConfigError(f"{where}: key {kid!r} must be a base64 string")
        keys[kid] = _decode_key(encoded, f"{where} (key id {kid!r})")
    active = data["active"]
    if active not in keys:
        raise ConfigError(f"key file {path}: active key id {active!r} is not among its keys")
    return keys, active


def _key_file_json(keys: Mapping[str, bytes], active: str) -> bytes:
    doc = {"active": active, "keys": {kid: _b64encode(k) for kid, k in keys.items()}}
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _write_private_file(path: Path, content: bytes, *, replace: bool) -> bool:
    """Write ``content`` to ``path`` atomically with mode 0600 from the very first byte.

    The data goes to a temp file created with ``os.open(..., 0o600)`` and is then moved into
    place. With ``replace=False`` an existing file wins (returns False): two processes
    generating a key at the same time must end up with the same key, not two.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # no-clobber, atomic
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class Vault:
    """Encrypts and decrypts secrets with AES-256-GCM under one of several named keys.

    Build it with :meth:`from_settings`. ``encrypt``/``decrypt`` take an ``aad`` that binds
    the token to its owner; for connections that is :func:`connection_aad` (i.e.
    ``f"connection:{connection_id}".encode()``). Errors name key ids, never keys or
    plaintext, and ``repr`` shows only key ids.
    """

    def __init__(
        self, keys: Mapping[str, bytes], active: str, *, key_file: Path | None = None
    ) -> None:
        if active not in keys:
            raise ConfigError(f"active key id {active!r} is not among the vault's keys")
        for kid, key in keys.items():
            _check_kid(kid, "vault")
            if len(key) != _KEY_BYTES:
                raise ConfigError(f"vault key {kid!r} is {len(key)} bytes, expected {_KEY_BYTES}")
        self._keys: dict[str, bytes] = dict(keys)
        self._ciphers: dict[str, AESGCM] = {kid: AESGCM(k) for kid, k in self._keys.items()}
        self._active = active
        self._key_file = key_file

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """Vault from ``PATCHWIRE_SECRET_KEY`` if set, else from (or creating) the key file."""
        if settings.secret_key:
            keys, active = _parse_env_keys(settings.secret_key)
            return cls(keys, active)
        return cls.from_key_file(settings.home / KEY_FILE_NAME)

    @classmethod
    def from_key_file(cls, path: Path) -> Vault:
        """Load the key file, generating it (mode 0600, parent dir 0700) on first use."""
        if not path.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
                kid = _derive_kid(key)
                _write_private_file(path, _key_file_json({kid: key}, kid), replace=False)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create key file {path}: {exc.strerror or type(exc).__name__}"
                ) from None
        keys, active = _read_key_file(path)
        return cls(keys, active, key_file=path)

    @staticmethod
    def generate_key() -> str:
        """A fresh urlsafe-base64 32-byte key, suitable for ``PATCHWIRE_SECRET_KEY``."""
        return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")

    # -- introspection ------------------------------------------------------------------

    @property
    def active_key_id(self) -> str:
        """Key id new tokens are encrypted under."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this vault can decrypt, active first."""
        return (self._active, *(k for k in self._keys if k != self._active))

    @property
    def key_file(self) -> Path | None:
        """The key file this vault was loaded from, or None for env keys."""
        return self._key_file

    def __repr__(self) -> str:
        source = str(self._key_file) if self._key_file else "env"
        return f"Vault(active={self._active!r}, key_ids={list(self.key_ids)!r}, source={source!r})"

    __str__ = __repr__

    # -- encryption ---------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> str:
        """Encrypt under the active key; returns a ``pwv1.<kid>.<b64>`` token."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(nonce, plaintext, aad)
        return f"{TOKEN_PREFIX}.{self._active}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: bytes) -> bytes:
        """Decrypt a token; VaultError if malformed, unknown key id, tampered or wrong aad."""
        kid, blob = self._parse(token)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise VaultError(
                f"secret was encrypted under key id {kid!r}, which is not configured "
                f"(known key ids: {', '.join(self.key_ids)})"
            )
        if len(blob) < _NONCE_BYTES + 16:
            raise VaultError(f"secret under key id {kid!r} is truncated")
        try:
            return cipher.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise VaultError(
                f"secret under key id {kid!r} failed authentication "
                "(tampered data, a different key with the same id, or wrong associated data)"
            ) from None

    def encrypt_json(self, obj: dict[str, Any], *, aad: bytes) -> str:
        """Encrypt a JSON object (e.g. a connection's secret values)."""
        try:
            data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")
        except (TypeError, ValueError) as exc:
            # the exception text names the offending type, never the value
            raise VaultError(f"secret values are not JSON-serialisable: {exc}") from None
        return self.encrypt(data, aad=aad)

    def decrypt_json(self, token: str, *, aad: bytes) -> dict[str, Any]:
        """Decrypt a token made by :meth:`encrypt_json`."""
        data = self.decrypt(token, aad=aad)
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VaultError("decrypted secret is not valid JSON") from None
        if not isinstance(obj, dict):
            raise VaultError("decrypted secret is not a JSON object")
        return obj

    def needs_reencrypt(self, token: str) -> bool:
        """True if ``token`` is not under the active key. An empty token (no secret) is False."""
        if not token:
            return False
        kid, _ = self._parse(token)
        return kid != self._active

    @staticmethod
    def token_key_id(token: str) -> str:
        """The key id a token was encrypted under (without decrypting it)."""
        return Vault._parse(token)[0]

    @staticmethod
    def _parse(token: str) -> tuple[str, bytes]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not _KID_RE.match(parts[1]):
            raise VaultError(f"not a vault token (expected '{TOKEN_PREFIX}.<key id>.<data>')")
        try:
            blob = _b64decode(parts[2])
        except ValueError:
            raise VaultError(f"secret under key id {parts[1]!r} is not valid base64") from None
        return parts[1], blob

    # -- rotation -----------------------------------------------------------------------

    def rotate(self) -> str:
        """Add a new active key to the key file (old keys stay for decryption); returns its id.

        Afterwards run :func:`reencrypt_connections` so old keys can eventually be removed.
        """
        if self._key_file is None:
            raise ConfigError(
                "this vault's keys come from PATCHWIRE_SECRET_KEY and cannot be rotated in "
                "place: put a new 'kid:key' entry at the front of PATCHWIRE_SECRET_KEY "
                "(comma-separated, keep the old entries after it), restart, then re-encrypt"
            )
        path = self._key_file
        # Re-read so keys another process added meanwhile are kept.
        keys, _ = _read_key_file(path) if path.exists() else ({}, "")
        keys.update(self._keys)
        key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
        kid = _derive_kid(key)
        while kid in keys:  # pragma: no cover - 32-bit id collision
            key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
            kid = _derive_kid(key)
        keys[kid] = key
        try:
            _write_private_file(path, _key_file_json(keys, kid), replace=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot write key file {path}: {exc.strerror or type(exc).__name__}"
            ) from None
        self._keys = keys
        self._ciphers = {k: AESGCM(v) for k, v in keys.items()}
        self._active = kid
        return kid


async def reencrypt_connections(store: Store, vault: Vault) -> int:
    """Re-encrypt every connection secret not under the vault's active key.

    Each token is decrypted and encrypted again with the connection's AAD
    (:func:`connection_aad`). Returns how many connections were rewritten. Safe to re-run:
    tokens already under the active key are left alone.
    """
    count = 0
    for rec in await store.list_connections():
        if not vault.needs_reencrypt(rec.secrets):
            continue
        aad = connection_aad(rec.id)
        token = vault.encrypt(vault.decrypt(rec.secrets, aad=aad), aad=aad)
        await store.update_connection(rec.name, secrets=token)
        count += 1
    return count
