"""Looking for a secret where it must not be: in output, in files, in database rows.

A test gives the sandbox a unique canary as its credential, lets the secret flow through
the real code path, then searches everything a user or attacker could read for the canary
in each encoding a careless implementation might store it in.
"""

from __future__ import annotations

import base64
import secrets
import urllib.parse
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from patchwire.store import normalize_url


def new_canary(label: str = "canary") -> str:
    """A secret value that cannot occur by accident (long enough for a solid base64 core)."""
    return f"{label}-{secrets.token_hex(16)}"


def encoded_forms(secret: str) -> dict[str, bytes]:
    """The secret as bytes in every encoding worth looking for.

    Base64 of a secret embedded in a longer value depends on its alignment in the 3-byte
    groups, so for each of the three alignments only the characters produced by secret
    bytes alone are kept (they appear whatever surrounds the secret).
    """
    raw = secret.encode()
    forms = {
        "plain": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "utf-16-le": secret.encode("utf-16-le"),
        "url-quoted": urllib.parse.quote(secret, safe="").encode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        first_group = -(-shift // 3)  # the first 3-byte group made of secret bytes only
        last_group = (shift + len(raw)) // 3
        core = encoded[4 * first_group : 4 * last_group]
        forms[f"base64@{shift}"] = core
        forms[f"base64url@{shift}"] = core.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def leaks_in(data: bytes | str, secret: str) -> list[str]:
    """The names of the encodings in which ``secret`` occurs in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    return [name for name, form in encoded_forms(secret).items() if form in blob]


def leaks_in_files(root: Path, secret: str) -> dict[str, list[str]]:
    """Every file under ``root`` (database, WAL, SHM, key file...) holding the secret."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hits = leaks_in(path.read_bytes(), secret)
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


async def leaks_in_database(url: str, secret: str) -> dict[str, list[str]]:
    """Every table whose rows (any column, as text or bytes) hold the secret."""
    engine = create_async_engine(normalize_url(url))
    found: dict[str, list[str]] = {}
    try:
        async with engine.connect() as conn:
            meta = MetaData()
            await conn.run_sync(meta.reflect)
            for table in meta.sorted_tables:
                rows = (await conn.execute(table.select())).all()
                blob = b"".join(
                    v if isinstance(v, bytes) else repr(v).encode() for row in rows for v in row
                )
                hits = leaks_in(blob, secret)
                if hits:
                    found[table.name] = hits
    finally:
        await engine.dispose()
    return found
