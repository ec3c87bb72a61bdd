"""Settings from ``patchwire.toml`` and ``PATCHWIRE_*`` environment variables.

Precedence: explicit arguments > environment > ``patchwire.toml`` in the working
directory > defaults. The secret key is deliberately absent from the toml file: it comes
from ``PATCHWIRE_SECRET_KEY`` or a key file with mode 0600 in the home directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from patchwire.errors import ConfigError

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    #: where the embedded store, key file and local state live
    home: Path = Path(".patchwire")
    #: SQLAlchemy URL; ``None`` means SQLite in ``home``
    database_url: str | None = None
    #: base64 (urlsafe) 32-byte key(s); ``None`` means the key file in ``home``
    secret_key: str | None = field(default=None, repr=False)
    #: extra directories searched for connector YAML files
    connector_paths: tuple[Path, ...] = (Path("connectors"),)
    #: server bind address
    host: str = "127.0.0.1"
    port: int = 8600

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'patchwire.db').resolve()}"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _from_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    section = data.get("patchwire", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [patchwire] must be a table")
    if "secret_key" in section:
        raise ConfigError(
            f"{path}: secret_key must not be stored in patchwire.toml; "
            "use PATCHWIRE_SECRET_KEY or the generated key file"
        )
    return section


def load_settings(
    *, environ: dict[str, str] | None = None, toml_path: Path | None = None, **overrides: Any
) -> Settings:
    env = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = _from_toml(toml_path or Path("patchwire.toml"))
    for key in ("home", "database_url", "secret_key", "connector_paths", "host", "port"):
        value = env.get(f"PATCHWIRE_{key.upper()}")
        if value:
            raw[key] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    kwargs: dict[str, Any] = {}
    if "home" in raw:
        kwargs["home"] = Path(raw["home"])
    if "database_url" in raw:
        kwargs["database_url"] = str(raw["database_url"])
    if "secret_key" in raw:
        kwargs["secret_key"] = str(raw["secret_key"])
    if "connector_paths" in raw:
        paths = raw["connector_paths"]
        if isinstance(paths, str):
            paths = [p for p in paths.split(os.pathsep) if p]
        kwargs["connector_paths"] = tuple(Path(p) for p in paths)
    if "host" in raw:
        kwargs["host"] = str(raw["host"])
    if "port" in raw:
        try:
            kwargs["port"] = int(raw["port"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"port must be an integer, got {raw['port']!r}") from exc
    return Settings(**kwargs)
