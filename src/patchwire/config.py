"""Settings from ``patchwire.toml`` and ``PATCHWIRE_*`` environment variables.

Precedence: explicit arguments > environment > ``patchwire.toml`` in the working
directory > defaults. The secret key is deliberately absent from the toml file: it comes
from ``PATCHWIRE_SECRET_KEY`` or a key file with mode 0600 in the home directory.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from patchwire.errors import ConfigError

__all__ = ["Settings", "allow_entry", "check_public_url", "host_and_port", "load_settings",
           "parse_rate_limits"]


#: the Temporal engine's default ``expression_timeout``: under the 2 s its deadlock detector
#: allows a workflow task (flow expressions are evaluated in workflow code)
TEMPORAL_EXPRESSION_TIMEOUT = 1.0


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
    #: extra directories searched for flow YAML files
    flow_paths: tuple[Path, ...] = (Path("flows"),)
    #: extra directories searched for sync YAML files
    sync_paths: tuple[Path, ...] = (Path("syncs"),)
    #: the only directories custom code (``code: package.module:function`` in connectors
    #: and flows) is imported from, relative to the project directory (``patchwire.toml``'s);
    #: none (the default): custom code is disabled. Env: ``PATCHWIRE_CODE_PATHS``
    #: (``os.pathsep``-separated, relative to the working directory). docs/connectors/code.md
    code_paths: tuple[Path, ...] = ()
    #: server bind address
    host: str = "127.0.0.1"
    port: int = 8600
    #: the names a browser may use for this server besides loopback names and the address a
    #: request arrives at: the public name behind a reverse proxy or tunnel. ``name`` (any
    #: port) or ``name:port``; other ``Host`` headers are refused (DNS rebinding). Env:
    #: comma-separated ``PATCHWIRE_ALLOWED_HOSTS``.
    allowed_hosts: tuple[str, ...] = ()
    #: the externally visible base URL of this server (``https://pw.example.com``, with a
    #: path when a proxy serves it under one): connect links and the OAuth2 redirect URI
    #: are built from it, never from a request's ``Host``. ``None``: ``http://host:port``.
    #: Env: ``PATCHWIRE_PUBLIC_URL``.
    public_url: str | None = None
    #: what the SSRF guard admits besides public addresses: CIDRs (by address, e.g.
    #: ``127.0.0.0/8`` for the sandbox) and exact host names (their internal addresses,
    #: never cloud metadata). Env: comma-separated ``PATCHWIRE_ALLOW_NETWORKS``.
    allow_networks: tuple[str, ...] = ()
    #: where flow runs execute: ``embedded`` (this store) or ``temporal`` (docs/scale-out.md)
    engine: str = "embedded"
    #: Temporal frontend (host:port), namespace and task queue, for ``engine = "temporal"``
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "patchwire"
    #: seconds one activity attempt may take before Temporal retries it on another worker
    temporal_activity_timeout: float = 120.0
    #: whether connectors' ``concurrency`` caps hold across every process sharing the
    #: store (a store round trip per capped call) rather than per process; ``None``: yes
    #: on the Temporal engine (several workers), no on the embedded one
    shared_concurrency: bool | None = None
    #: seconds one JSONata evaluation may take (flows override it per flow and per step);
    #: ``None``: 5 s on the embedded engine, 1 s on Temporal, whose deadlock detector fails
    #: a workflow task that holds its thread for 2 s
    expression_timeout: float | None = None
    #: how deeply one JSONata evaluation may nest: real recursion (a function calling
    #: itself), not the items it maps; ``None``: 1000 (~330 levels of a recursive function)
    expression_max_depth: int | None = None
    #: seconds a webhook sender has to deliver a request's whole body to ``/hooks``; a
    #: slower one gets 408 and its connection closed (a 1 byte/s body would hold it forever)
    webhook_body_timeout: float = 10.0
    #: seconds a verified webhook body is remembered where the scheme signs no event id
    #: (GitHub, Shopify...): a replay of it under a new delivery id within this window is
    #: acknowledged as a duplicate and dropped. Longer than the vendors' retries (days).
    webhook_replay_window: float = 7 * 86_400.0
    #: how many tool calls one end user may make, across every process sharing the store:
    #: ``"100/minute"`` (several limits comma-separated, ``"20/second, 1000/hour"``); over
    #: it a tool answers ``rate_limited`` with when to retry. ``None``: no quota. Env:
    #: ``PATCHWIRE_END_USER_TOOL_CALLS``.
    end_user_tool_calls: str | None = None
    #: what a model is offered: ``"all"`` (every tool's definition) or ``"search"`` (two
    #: meta-tools, ``search_tools`` and ``call_tool``, for catalogs too big to send
    #: whole; docs/tools/search.md). The MCP endpoint's default (``/mcp?mode=`` chooses
    #: per client) and ``patchwire mcp``'s. Env: ``PATCHWIRE_TOOL_MODE``.
    tool_mode: str = "all"
    #: when a connection counts as unhealthy (``connection.unhealthy``) and as recovered:
    #: of its last ``health_window`` calls (judged once ``health_min_calls`` are known),
    #: fewer than ``health_unhealthy_below`` succeeded, or its connector's breaker is open;
    #: recovered after ``health_recover_streak`` successes in a row, with at least
    #: ``health_recovered_at`` of the window succeeding. Env: ``PATCHWIRE_HEALTH_WINDOW``...
    health_window: int = 20
    health_min_calls: int = 10
    health_unhealthy_below: float = 0.5
    health_recovered_at: float = 0.8
    health_recover_streak: int = 5

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'patchwire.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        """``public_url`` without a trailing slash, else ``http://{host}:{port}`` (an IPv6
        host in brackets). ConfigError for an unusable one."""
        if self.public_url:
            return check_public_url(self.public_url)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def effective_expression_timeout(self) -> float | None:
        """``expression_timeout``, or the engine's default (``None``: the built-in one)."""
        if self.expression_timeout is not None:
            return self.expression_timeout
        return TEMPORAL_EXPRESSION_TIMEOUT if self.engine == "temporal" else None

    @property
    def effective_shared_concurrency(self) -> bool:
        if self.shared_concurrency is not None:
            return self.shared_concurrency
        return self.engine == "temporal"

    @property
    def end_user_tool_call_limits(self) -> tuple[tuple[int, float], ...]:
        """``end_user_tool_calls`` as (calls, period in seconds) pairs; () for none."""
        if not self.end_user_tool_calls:
            return ()
        return parse_rate_limits("end_user_tool_calls", self.end_user_tool_calls)

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
    toml_file = toml_path or Path("patchwire.toml")
    raw: dict[str, Any] = _from_toml(toml_file)
    # code_paths written in patchwire.toml are relative to its directory, not to wherever
    # the process runs; from the environment or an argument, to the working directory
    code_base = toml_file.parent if "code_paths" in raw else Path(".")
    for key in ("home", "database_url", "secret_key", "connector_paths", "flow_paths",
                "sync_paths", "code_paths", "host", "public_url",
                "port", "allowed_hosts", "allow_networks", "engine", "temporal_address",
                "temporal_namespace", "temporal_task_queue", "temporal_activity_timeout",
                "shared_concurrency", "webhook_body_timeout", "webhook_replay_window",
                "expression_timeout", "expression_max_depth", "end_user_tool_calls",
                "tool_mode"):
        value = env.get(f"PATCHWIRE_{key.upper()}")
        if value:
            raw[key] = value
            if key == "code_paths":
                code_base = Path(".")
    if overrides.get("code_paths") is not None:
        code_base = Path(".")
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
    if "flow_paths" in raw:
        paths = raw["flow_paths"]
        if isinstance(paths, str):
            paths = [p for p in paths.split(os.pathsep) if p]
        kwargs["flow_paths"] = tuple(Path(p) for p in paths)
    if "sync_paths" in raw:
        paths = raw["sync_paths"]
        if isinstance(paths, str):
            paths = [p for p in paths.split(os.pathsep) if p]
        kwargs["sync_paths"] = tuple(Path(p) for p in paths)
    if "code_paths" in raw:
        kwargs["code_paths"] = _code_paths(raw["code_paths"], code_base)
    if "host" in raw:
        kwargs["host"] = str(raw["host"])
    if "port" in raw:
        try:
            kwargs["port"] = int(raw["port"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"port must be an integer, got {raw['port']!r}") from exc
    if "allowed_hosts" in raw:
        kwargs["allowed_hosts"] = _host_list(raw["allowed_hosts"])
    if "public_url" in raw:
        kwargs["public_url"] = check_public_url(raw["public_url"])
    if "allow_networks" in raw:
        kwargs["allow_networks"] = _allow_list(raw["allow_networks"])
    if "engine" in raw:
        engine = str(raw["engine"]).strip().lower()
        if engine not in ("embedded", "temporal"):
            raise ConfigError(f"engine must be 'embedded' or 'temporal', got {raw['engine']!r} "
                              "(PATCHWIRE_ENGINE, --engine or patchwire.toml)")
        kwargs["engine"] = engine
    for key in ("temporal_address", "temporal_namespace", "temporal_task_queue"):
        if key in raw:
            kwargs[key] = str(raw[key])
    if "temporal_activity_timeout" in raw:
        try:
            seconds = float(raw["temporal_activity_timeout"])
        except (TypeError, ValueError) as exc:
            seconds = math.nan
            cause: Exception | None = exc
        else:
            cause = None
        if not 0 < seconds < math.inf:
            raise ConfigError("temporal_activity_timeout must be a positive number of "
                              f"seconds, got {raw['temporal_activity_timeout']!r}") from cause
        kwargs["temporal_activity_timeout"] = seconds
    if "shared_concurrency" in raw:
        kwargs["shared_concurrency"] = _flag("shared_concurrency", raw["shared_concurrency"])
    for key in ("webhook_body_timeout", "webhook_replay_window", "expression_timeout"):
        if key in raw:
            kwargs[key] = _seconds(key, raw[key])
    if "expression_max_depth" in raw:
        kwargs["expression_max_depth"] = _positive_int("expression_max_depth",
                                                       raw["expression_max_depth"])
    if "end_user_tool_calls" in raw:
        text = str(raw["end_user_tool_calls"]).strip()
        parse_rate_limits("end_user_tool_calls", text)  # a typo fails at start-up
        kwargs["end_user_tool_calls"] = text or None
    if "tool_mode" in raw:
        mode = str(raw["tool_mode"]).strip().lower()
        if mode not in ("all", "search"):
            raise ConfigError(f"tool_mode must be 'all' or 'search', got {raw['tool_mode']!r} "
                              "(PATCHWIRE_TOOL_MODE or patchwire.toml)")
        kwargs["tool_mode"] = mode
    for key in _HEALTH_COUNTS + _HEALTH_SHARES:
        value = overrides.get(key)
        if value is None:
            value = env.get(f"PATCHWIRE_{key.upper()}") or raw.get(key)  # toml
        if value is not None:
            kwargs[key] = (_positive_int(key, value) if key in _HEALTH_COUNTS
                           else _share(key, value))
    return Settings(**kwargs)


def _code_paths(value: Any, base: Path) -> tuple[Path, ...]:
    """``code_paths``: an ``os.pathsep``-separated string (env) or a list of directories
    (toml), made absolute against ``base`` now, so the code a process may import does not
    change with its working directory."""
    items = [p for p in value.split(os.pathsep) if p] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str | Path) for i in items):
        raise ConfigError(f"code_paths must be a list of directories, got {value!r} "
                          "(PATCHWIRE_CODE_PATHS or patchwire.toml)")
    return tuple((base / Path(p)).resolve() for p in items if str(p).strip())


#: the connection health settings (docs/webhooks.md, connection events)
_HEALTH_COUNTS = ("health_window", "health_min_calls", "health_recover_streak")
_HEALTH_SHARES = ("health_unhealthy_below", "health_recovered_at")


def _share(key: str, value: Any) -> float:
    """A share between 0 and 1 (``0.5``)."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = math.nan
    if not 0 <= share <= 1:
        raise ConfigError(f"{key} must be a number between 0 and 1, got {value!r} "
                          f"(PATCHWIRE_{key.upper()} or patchwire.toml)")
    return share


_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86_400.0}
_RATE = re.compile(r"(\d+)\s*/\s*(second|minute|hour|day)", re.IGNORECASE)


def parse_rate_limits(key: str, text: str) -> tuple[tuple[int, float], ...]:
    """``"100/minute"`` or ``"20/second, 1000/hour"`` as (limit, period seconds) pairs;
    ConfigError naming ``key`` for anything else."""
    limits: list[tuple[int, float]] = []
    for part in text.split(","):
        match = _RATE.fullmatch(part.strip())
        if match is None or int(match[1]) < 1:
            raise ConfigError(f"{key} must be like '100/minute' (several separated by "
                              f"commas; per second, minute, hour or day), got {text[:100]!r} "
                              f"(PATCHWIRE_{key.upper()} or patchwire.toml)")
        limits.append((int(match[1]), _PERIODS[match[2].lower()]))
    return tuple(limits)


def _positive_int(key: str, value: Any) -> int:
    """A whole number of at least 1 (a toml integer or an env value such as ``500``)."""
    text = str(value).strip() if not isinstance(value, bool | float) else ""
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{key} must be a whole number of at least 1, got {value!r} "
                          f"(PATCHWIRE_{key.upper()} or patchwire.toml)")
    return int(text)


def _seconds(key: str, value: Any) -> float:
    """A positive, finite number of seconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ConfigError(f"{key} must be a positive number of seconds, got {value!r} "
                          f"(PATCHWIRE_{key.upper()} or patchwire.toml)")
    return seconds


#: what an environment variable may say for on and off
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def _flag(key: str, value: Any) -> bool:
    """A toml boolean, or an env value such as ``1``/``0`` or ``true``/``false``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(f"{key} must be true or false (1/0), got {value!r} "
                      f"(PATCHWIRE_{key.upper()} or patchwire.toml)")


_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")


def allow_entry(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """One ``allow_networks`` entry: a network (CIDR or single address) or a lower-case
    host name without trailing dot. Raises ``ValueError`` for anything else. Lives here,
    not in the HTTP package, so reading settings never imports aiohttp."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(text):
        raise ValueError(f"allow-list entry {entry!r} is neither a CIDR, an IP address "
                         f"nor a host name")
    return text.rstrip(".").lower()


def _allow_list(value: Any) -> tuple[str, ...]:
    """A comma-separated string (env) or a list of strings (toml), checked now so a typo
    fails at start-up rather than as a refused call."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"allow_networks must be a list of CIDRs or host names, got {value!r}")
    entries = tuple(i.strip() for i in items if i.strip())
    for entry in entries:
        try:
            allow_entry(entry)
        except ValueError as exc:
            raise ConfigError(f"allow_networks: {exc}") from exc
    return entries


_HOST_PORT = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?")


def host_and_port(text: str) -> tuple[str, int | None] | None:
    """A ``Host`` header (or an ``allowed_hosts`` entry) as (name, port): the name lower-case,
    without a trailing dot, an IPv6 address without brackets; None unless it is a host name
    or an IP address with an optional port."""
    match = _HOST_PORT.fullmatch(text.strip())
    if match is None:
        return None
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        return None
    if match.group("v6") is not None:
        try:
            return str(ipaddress.IPv6Address(match.group("v6"))), port
        except ValueError:
            return None
    name = match.group("name")
    if not _HOST_NAME.fullmatch(name):
        return None
    return name.rstrip(".").lower(), port


def check_public_url(value: Any) -> str:
    """``public_url`` without its trailing slash; ConfigError unless it is an absolute
    http(s) URL with a host and no user, query or fragment (links are built by appending
    paths to it)."""
    where = "public_url (PATCHWIRE_PUBLIC_URL or patchwire.toml)"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be an absolute http(s) URL, got {value!r}")
    text = value.strip()
    if len(text) > 2000 or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise ConfigError(f"{where} must be one URL of at most 2000 characters without "
                          "blanks or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: {text[:100]!r} is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} must be an absolute http(s) URL such as "
                          f"https://patchwire.example.com, got {text[:100]!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where} cannot carry a user name or password")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ConfigError(f"{where} cannot have a query or a fragment, got {text[:100]!r}")
    del port  # parsed only to refuse a bad one
    return text.rstrip("/")


def _host_list(value: Any) -> tuple[str, ...]:
    """``allowed_hosts``: a comma-separated string (env) or a list of strings (toml) of
    ``name`` or ``name:port``; checked now so a typo fails at start-up rather than as
    refused requests."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"allowed_hosts must be a list of host names, got {value!r}")
    entries = tuple(i.strip() for i in items if i.strip())
    for entry in entries:
        if host_and_port(entry) is None:
            raise ConfigError(f"allowed_hosts: {entry!r} is neither a host name nor an IP "
                              "address (with an optional :port)")
    return entries
