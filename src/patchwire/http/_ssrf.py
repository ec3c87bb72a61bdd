"""The SSRF guard: upstream connections only go to public addresses unless allow-listed.

Connectors and connections carry URLs that people (and, through tools, chatbots) supply, so
a call must not become a way to reach the cloud metadata service, the database next door or
an admin port on loopback. The check runs where aiohttp turns a host into the addresses it
connects to, not on the URL beforehand:

* names are resolved once, by :class:`GuardedResolver`; every answer is checked and the
  connector connects to exactly those checked addresses. There is no second lookup at
  connect time, so a DNS answer that changes between check and connect (rebinding) cannot
  slip through;
* IP literals never reach a resolver in aiohttp, so :class:`GuardedConnector` parses them
  itself, the way the C resolver (``inet_aton``) would — ``2130706433``, ``0x7f.1``,
  ``0177.0.0.1`` and ``127.1`` are all 127.0.0.1 — and checks the result;
* as a last line, the socket factory refuses any address that was not checked.

Redirect hops open their connections through the same connector, so they are checked too.
It all happens when a connection is opened: a kept-alive connection costs nothing more.

The allow-list (``Settings.allow_networks``) holds CIDRs and host names:

* a CIDR admits every address inside it, whatever name led there (``127.0.0.0/8`` admits
  the sandbox on loopback). Matching is by address, after unwrapping IPv4-mapped,
  -compatible, NAT64 and 6to4 forms, so ``::ffff:127.0.0.1`` is 127.0.0.1 here as well;
* a host name admits that exact name (case-insensitive, trailing dot ignored) to resolve to
  internal addresses — except cloud metadata addresses, which only a CIDR can admit, so a
  trusted internal name that is re-pointed at the metadata service still cannot reach it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from patchwire.config import allow_entry

__all__ = [
    "DestinationPolicy",
    "DestinationRefused",
    "GuardedConnector",
    "GuardedResolver",
    "literal_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: addresses of instance metadata services: they hand out cloud credentials
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
    "169.254.170.2",    # AWS ECS task metadata
    "fd00:ec2::254",    # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))
#: names of metadata services, refused before they are resolved
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(n), why) for n, why in pairs)


# Ordered: the first match names the reason. Anything not matched but not global unicast
# is refused by the catch-alls in ``_verdict``.
_BLOCKED_V4 = _nets(
    ("0.0.0.0/8", "unspecified address ('this network')"),
    ("127.0.0.0/8", "loopback address"),
    ("10.0.0.0/8", "private address (RFC 1918)"),
    ("172.16.0.0/12", "private address (RFC 1918)"),
    ("192.168.0.0/16", "private address (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT address (RFC 6598)"),
    ("169.254.0.0/16", "link-local address"),
    ("224.0.0.0/4", "multicast address"),
    ("255.255.255.255/32", "broadcast address"),
    ("240.0.0.0/4", "reserved address"),
    ("192.0.0.0/24", "reserved address (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved address (documentation)"),
    ("198.51.100.0/24", "reserved address (documentation)"),
    ("203.0.113.0/24", "reserved address (documentation)"),
    ("198.18.0.0/15", "reserved address (benchmarking)"),
    ("192.88.99.0/24", "reserved address (6to4 relay)"),
)
_BLOCKED_V6 = _nets(
    ("::/128", "unspecified address"),
    ("::1/128", "loopback address"),
    ("fc00::/7", "private address (unique local, fc00::/7)"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "reserved address (site-local)"),
    ("ff00::/8", "multicast address"),
    ("64:ff9b:1::/48", "reserved address (local-use NAT64)"),
    ("100::/64", "reserved address (discard-only)"),
    ("2001::/32", "reserved address (Teredo tunnel)"),
    ("2001:db8::/32", "reserved address (documentation)"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# One part of an inet_aton address: hex (0x..), octal (leading 0) or decimal.
_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


class DestinationRefused(Exception):
    """Raised inside aiohttp's connect path; :class:`HttpCore` turns it into
    :class:`~patchwire.errors.BlockedDestinationError`. Deliberately not an ``OSError``,
    which aiohttp and the retry loop would treat as a transient connect failure."""

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        target = host if address is None or address == host else f"{host} ({address})"
        super().__init__(f"refused to connect to {target}: {reason}")


def literal_address(host: str) -> IPAddress | None:
    """``host`` as the C resolver would read it as a numeric address, else ``None``.

    IPv6 literals (with or without brackets or a zone), and IPv4 in every ``inet_aton``
    form: 1 to 4 parts, each decimal, octal or hex, the last filling the remaining bytes.
    """
    h = host.strip("[]")
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            return None
    parts = h.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.fullmatch(p) for p in parts):
        return None
    *head, last = [_part_value(p) for p in parts]
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _part_value(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:] or "0", 16)  # inet_aton reads a bare "0x" as 0
    return int(part, 8) if part.startswith("0") else int(part)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any: mapped (``::ffff:a.b.c.d``),
    compatible (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``).
    A connection to any of these can end up at that IPv4 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def canonical(ip: IPAddress) -> IPAddress:
    """Where a connection to ``ip`` really goes, for blocking and allowing alike."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return inner
        if ip.scope_id:
            return ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    return ip


def _verdict(ip: IPAddress) -> str | None:
    """Why ``ip`` (canonical) is refused, or ``None`` for a public address."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata endpoint"
    table = _BLOCKED_V4 if isinstance(ip, ipaddress.IPv4Address) else _BLOCKED_V6
    for net, why in table:
        if ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return "reserved address (outside global unicast 2000::/3)"
    if not ip.is_global:  # anything the tables above missed
        return "address that is not globally routable"
    return None


def _norm_name(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class DestinationPolicy:
    """What may be connected to: public addresses, plus the allow-list."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()

    @classmethod
    def from_allow_list(cls, entries: Iterable[str]) -> DestinationPolicy:
        """``entries`` are CIDRs or single addresses (admitted by address) and host names
        (admitted by exact name). Raises ``ValueError`` for an entry that is neither."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in entries:
            if entry.strip():
                parsed = allow_entry(entry)
                if isinstance(parsed, str):
                    names.add(parsed)
                else:
                    networks.append(parsed)
        return cls(tuple(networks), frozenset(names))

    def name_allowed(self, host: str) -> bool:
        return _norm_name(host) in self.names

    def check_name(self, host: str) -> None:
        """Refuse metadata service names before they are resolved."""
        name = _norm_name(host)
        if name in METADATA_NAMES and name not in self.names:
            raise DestinationRefused(host, None, "cloud metadata endpoint (by name)")

    def check_address(self, host: str, ip: IPAddress) -> None:
        """Raise :class:`DestinationRefused` unless ``ip`` (reached via ``host``) may be
        connected to."""
        real = canonical(ip)
        if any(real.version == n.version and real in n for n in self.networks):
            return
        why = _verdict(real)
        if why is None:
            return
        if self.name_allowed(host) and why != "cloud metadata endpoint":
            return
        shown = str(ip) if real == ip else f"{ip} = {real}"
        raise DestinationRefused(
            host, shown, f"{why}; the SSRF guard only connects to public addresses "
            "(add a CIDR or host name to PATCHWIRE_ALLOW_NETWORKS to admit it)")


class GuardedResolver(AbstractResolver):
    """Resolves a name once and returns only answers the policy admits; refuses the whole
    name when any answer is refused (a mixed answer is a rebinding tell, and failing is
    clearer than silently dropping some). ``inner`` does the lookup (injectable in tests).
    """

    def __init__(self, policy: DestinationPolicy, inner: AbstractResolver | None = None
                 ) -> None:
        self.policy = policy
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.policy.check_name(host)
        literal = literal_address(host)
        if literal is not None:  # a numeric host in a form aiohttp did not recognise
            self.policy.check_address(host, literal)
            return [_result(host, literal, port)]
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            ip = literal_address(answer["host"])
            if ip is None:  # a resolver must answer with numeric addresses
                raise DestinationRefused(host, answer["host"], "resolver returned a non-numeric "
                                         "address")
            self.policy.check_address(host, ip)
        return answers

    async def close(self) -> None:
        await self._inner.close()


def _result(host: str, ip: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return ResolveResult(hostname=host, host=str(ip), port=port, family=family, proto=0,
                         flags=socket.AI_NUMERICHOST)


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` whose every new connection passes the policy.

    ``_resolve_host`` is the one place aiohttp maps a URL host to the addresses it
    connects to; aiohttp short-cuts IP literals there (refusing only the all-digit
    non-canonical forms), so literals are checked here and names go on to the
    :class:`GuardedResolver`. The socket factory then refuses any address that was not
    checked, so a future aiohttp that routed hosts differently would fail closed.
    """

    def __init__(self, policy: DestinationPolicy, *, resolver: AbstractResolver | None = None,
                 **kwargs: Any) -> None:
        self.policy = policy
        self.guarded_resolver = GuardedResolver(policy, resolver)
        # addresses admitted only through an allow-listed name: the socket check cannot see
        # the name, so it consults this set (bounded by what the allow-listed names resolve to)
        self._admitted_by_name: set[IPAddress] = set()
        super().__init__(resolver=self.guarded_resolver, socket_factory=self._socket, **kwargs)

    async def _resolve_host(self, host: str, port: int, traces: Any = None
                            ) -> list[ResolveResult]:
        self.policy.check_name(host)
        literal = literal_address(host)
        if literal is not None:
            self.policy.check_address(host, literal)
            return [_result(host, literal, port)]
        answers: list[ResolveResult] = await super()._resolve_host(host, port, traces)
        if self.policy.name_allowed(host):
            self._admitted_by_name.update(ipaddress.ip_address(a["host"]) for a in answers)
        return answers

    def _socket(self, addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in self._admitted_by_name:
            self.policy.check_address(str(ip), ip)
        return socket.socket(family=family, type=type_, proto=proto)

    async def close(self, *, abort_ssl: bool = False) -> None:
        await super().close(abort_ssl=abort_ssl)
        await self.guarded_resolver.close()  # aiohttp leaves a passed-in resolver open
