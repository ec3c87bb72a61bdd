"""Keep-alive HTTP/1.1 exchanges for the call path's ordinary requests.

A request through ``aiohttp.ClientSession.request`` costs ~120 µs of CPU on the benchmark
machine, most of it machinery the call path never uses per request: trace hooks, cookie
jars, environment proxies, middlewares, per-request header merging and redirect
bookkeeping. The call path must stay within 15% of a raw aiohttp loop while it validates,
authenticates, limits and records every call, which that leaves no room for. So the HTTP
core sends ordinary requests here — http(s), a body that is absent or bytes, no cookies,
not ``HEAD`` — at ~50 µs, and everything else through the aiohttp transport.

What is hand-written is only the connection bookkeeping: the response is parsed by llhttp
(``httptools``, the parser uvicorn and Node.js use), TLS and sockets are asyncio's, URLs
are yarl's (the same normalisation and quoting aiohttp applies). Which requests come here is decided
before anything is sent (:meth:`WireTransport.frame`): one this module cannot express
byte for byte the way aiohttp would (a header with a line break, text that is not
Latin-1, a body the caller framed) is not framed and goes through aiohttp, which refuses
or encodes it as before.

* **SSRF guard**: a new connection resolves its host through the same
  :class:`~patchwire.http._ssrf.GuardedResolver` the aiohttp connector uses (literals
  parsed and checked, every DNS answer checked, metadata names refused) and connects to
  exactly the checked address, so no second lookup can be rebound. Kept-alive connections
  cost nothing more.
* **Redirects** are left to the caller: the response comes back as is, and the HTTP core
  follows the chain hop by hop (each hop through the transport its request calls for).
* **Timeouts**: the ``ClientTimeout``'s connect (new connections), total (the whole
  exchange) and sock_read (gap between reads) are enforced with one timer per exchange;
  they raise ``asyncio.TimeoutError`` as aiohttp does.
* **Hostile answers**: each exchange gets a fresh parser, and a byte beyond the awaited
  response drops the connection (a response smuggled behind it cannot answer the next
  call); the head is counted as it arrives (64 KiB, status line included); a gzip or
  deflate body is decoded as it arrives and ``max_body`` counts decoded bytes (a
  decompression bomb stops at the limit). Parsing is as lenient as aiohttp's (obs-fold,
  bare LF) and no more; a status outside 100-599 is refused on both paths.
* **Failures** raise aiohttp's own exception types (``ServerDisconnectedError``,
  ``ClientConnectorError``-like :class:`WireConnectError`, ``ClientPayloadError``), so the
  retry policy and error messages of the HTTP core treat both paths alike. A request on a
  reused connection that the server closed before answering is sent once more on a new
  connection when its method is idempotent (RFC 9112 §9.3.1), as aiohttp does.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from typing import Final, cast

import aiohttp
import httptools
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from patchwire.http._ssrf import GuardedResolver, literal_address
from patchwire.http._transport import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    Limits,
    PreparedRequest,
    RawResponse,
    bad_status,
    body_too_large,
)

__all__ = ["Frame", "WireConnectError", "WirePool", "WireTransport"]

#: methods a reused connection may resend after the server closed it unanswered
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: methods that carry a Content-Length even without a body (aiohttp sends 0 for these)
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
#: an idle connection older than this is closed instead of reused (aiohttp's default)
KEEPALIVE_TIMEOUT: Final = 15.0
ACCEPT_ENCODING: Final = "gzip, deflate"
_TOO_LONG: Final = (f"response headers exceed {MAX_HEADERS} fields or "
                    f"{MAX_HEADER_BYTES // 1024} KiB")


#: status, header lines and body of one response as parsed
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class WireConnectError(aiohttp.ClientConnectionError):
    """A new connection could not be opened (the name does not resolve, refused,
    unreachable, TLS failure)."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        self.host = host
        self.port = port
        self.os_error = os_error
        super().__init__(f"cannot connect to {host}:{port} ({os_error.strerror or os_error})")


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: at most one exchange at a time, no pipelining."""

    __slots__ = ("_body", "_body_bytes", "_chunks_seen", "_coding", "_decoder", "_encoding",
                 "_head_bytes", "_headers", "_last_read", "_parser", "_pool",
                 "_raw_bytes", "_status", "_timer", "_waiter", "closed", "idle_since", "key",
                 "max_body", "read_timeout", "transport", "truncate")

    def __init__(self, pool: WirePool, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = _parser(self)  # replaced by each exchange's
        self._waiter: asyncio.Future[_Answer] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        #: bytes of the body kept: decoded ones when it has a Content-Encoding we decode
        self._body_bytes = 0
        #: the Content-Encoding as received; the coding we decode ("gzip" or "deflate",
        #: once the headers are complete) and its decoder (once the body starts)
        self._encoding: bytes | None = None
        self._coding: str | None = None
        self._decoder: zlib._Decompress | None = None
        self._raw_bytes = 0
        #: read (and decode) at most this much of a body, then drop the connection (None:
        #: all of it), keeping what was read (``truncate``) or failing the exchange
        self.max_body: int | None = None
        self.truncate = True
        self._status = 0
        self._chunks_seen = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self.read_timeout: float | None = None
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: the framing can no longer be trusted
            return
        self._chunks_seen = True
        if self.read_timeout is not None:
            self._last_read = time.monotonic()
        if self._status < 200:
            # The head is counted as it arrives, status line included: llhttp keeps a
            # header value until its line ends, so on_header never sees an endless one.
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(aiohttp.ClientPayloadError("the server switched protocols unasked"))
            return
        except httptools.HttpParserError as exc:
            # a callback's own complaint (headers too large) is the better reason
            reason = (exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError)
                      and exc.__context__ is not None else exc)
            self._fail(aiohttp.ClientPayloadError(f"malformed HTTP response: {reason}"))
            return
        if self._status < 200 and self._head_bytes > MAX_HEADER_BYTES:
            self._fail(aiohttp.ClientPayloadError(f"malformed HTTP response: {_TOO_LONG}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self._status >= 200 and self._read_until_eof():
            # no Content-Length and not chunked: the body ends where the connection does
            # (cleanly: a reset could have cut it short)
            self._complete(keep_alive=False)
            return
        error: aiohttp.ClientError
        if self._status >= 200:  # as aiohttp words a body cut short
            error = aiohttp.ClientPayloadError("Response payload is not completed")
        else:
            error = aiohttp.ServerDisconnectedError()
        error.__cause__ = exc
        self._settle(error)

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # a second response behind the awaited one, in the same read: whoever sent it
            # wants it taken for the answer to the next request (desync). Raised inside
            # the parser's callback, it stops the parse and data_received drops the
            # connection before the exchange hands it back to the pool.
            raise ValueError("bytes beyond the end of the response")
        self._headers = []
        self._body = []
        self._body_bytes = 0
        self._encoding = self._coding = None
        self._decoder = None
        self._raw_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        # (raised inside the parser's callback: feed_data gives it back as a parser error)
        if 0 in value:  # lenient parsing lets a NUL through; aiohttp refuses it too
            raise ValueError(f"a NUL byte in the value of {name!r}")
        # llhttp strips the whitespace before a value but not after (RFC 9110 §5.5)
        self._headers.append((name, value.rstrip(b" \t")))
        if len(name) == 16 and name.lower() == b"content-encoding":
            self._encoding = value

    def on_headers_complete(self) -> None:
        # The head's size is counted per read (data_received): only a read that went past
        # the cap can hold a head that did, so the headers are measured only then.
        headers = self._headers
        if len(headers) > MAX_HEADERS or (
                self._head_bytes > MAX_HEADER_BYTES
                and sum(len(n) + len(v) for n, v in headers) > MAX_HEADER_BYTES):
            raise ValueError(_TOO_LONG)
        status = self._status = self._parser.get_status_code()
        if not 100 <= status <= 599:
            raise ValueError(bad_status(status))
        if self._encoding is not None:  # codings we did not ask for are left as they are
            coding = self._encoding.strip().lower()
            self._coding = ("gzip" if coding in (b"gzip", b"x-gzip") else
                            "deflate" if coding == b"deflate" else None)

    def on_body(self, body: bytes) -> None:
        if self._coding is not None:
            decoded = self._decode(body)
            if not decoded:
                return
            body = decoded
        limit = self.max_body
        if limit is None:
            self._body.append(body)
            return
        room = limit - self._body_bytes
        if not self.truncate:
            if len(body) > room:
                self._fail(body_too_large(limit))
                return
            self._body.append(body)
            self._body_bytes += len(body)
            return
        if room > 0:
            self._body.append(body[:room])
            self._body_bytes += min(len(body), room)
        if len(body) >= room:
            self._finish(keep_alive=False)  # enough read: the rest is never wanted

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            self._status = 0  # an interim answer (103 Early Hints): the real one follows
            return
        self._complete(keep_alive=self._parser.should_keep_alive())

    # -- the body's Content-Encoding -------------------------------------------------------

    def _decode(self, body: bytes) -> bytes | None:
        """What ``body`` decodes to, decoding at most one byte beyond ``max_body`` (a
        decompression bomb is stopped at the limit, not expanded in memory); None once
        the exchange has failed. The compressed bytes count against the limit as well:
        bytes after the end of the stream are never decoded."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return None
        self._raw_bytes += len(body)
        limit = self.max_body
        if limit is not None and self._raw_bytes > limit:
            if self.truncate:
                self._finish(keep_alive=False)  # enough read: the rest is never wanted
            else:
                self._fail(body_too_large(limit))
            return None
        decoder = self._decoder
        if decoder is None:
            if self._coding == "gzip":
                wbits = 16 + zlib.MAX_WBITS
            else:  # a zlib stream (RFC 1950), or raw deflate as some servers send (aiohttp)
                wbits = zlib.MAX_WBITS if body[0] & 0x0F == 8 else -zlib.MAX_WBITS
            decoder = self._decoder = zlib.decompressobj(wbits)
        elif decoder.eof:
            return None
        try:
            # max_length 0 is no limit; one byte beyond the room tells "too long"
            return decoder.decompress(body, 0 if limit is None else
                                      limit - self._body_bytes + 1)
        except zlib.error as exc:
            self._fail(aiohttp.ClientPayloadError(
                f"cannot decode the response body ({self._coding}): {exc}"))
            return None

    # -- the exchange ----------------------------------------------------------------------

    def _complete(self, *, keep_alive: bool) -> None:
        """The response ended: answer the exchange, unless its encoded body was cut short."""
        decoder = self._decoder
        if decoder is not None and not decoder.eof:
            self._fail(aiohttp.ClientPayloadError(
                f"cannot decode the response body ({self._coding}): incomplete or "
                "truncated stream"))
            return
        self._finish(keep_alive=keep_alive)

    def _read_until_eof(self) -> bool:
        """Whether the body ends with the connection: no Content-Length, and no
        Transfer-Encoding ending in chunked (``identity`` reads to the close, RFC 9112
        §6.3)."""
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if (lowered == b"transfer-encoding"
                    and value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"):
                return False
        return True

    def _finish(self, *, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self._cancel_timer()
        waiter.set_result((self._status, self._headers, b"".join(self._body)))
        if not keep_alive:
            self.close()

    def _settle(self, error: BaseException) -> None:
        waiter = self._waiter
        self._cancel_timer()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _fail(self, error: BaseException) -> None:
        self._settle(error)
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def arm(self, loop: asyncio.AbstractEventLoop, deadline: float | None,
            read_timeout: float | None) -> None:
        """Time the exchange: the total deadline (loop time) and the longest gap between
        reads; whichever comes first fails it with ``asyncio.TimeoutError``."""
        self.read_timeout = read_timeout
        if read_timeout is not None:
            self._last_read = time.monotonic()
        when = deadline
        if read_timeout is not None:
            read_by = loop.time() + read_timeout
            when = read_by if when is None else min(when, read_by)
        if when is not None:
            self._timer = loop.call_at(when, self._on_timer, loop, deadline)

    def _on_timer(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        self._timer = None
        if self.read_timeout is not None and (deadline is None or loop.time() < deadline):
            quiet = time.monotonic() - self._last_read
            if quiet < self.read_timeout:  # data came since: wait for the rest of the gap
                when = loop.time() + self.read_timeout - quiet
                if deadline is not None:
                    when = min(when, deadline)
                self._timer = loop.call_at(when, self._on_timer, loop, deadline)
                return
        self._fail(TimeoutError())

    def start(self, data: bytes) -> asyncio.Future[_Answer]:
        assert self.transport is not None
        # a fresh parser: nothing a previous answer left in the parser's state (a partly
        # parsed message, flags, counters) can become part of this one
        self._parser = _parser(self)
        self._status = 0
        self._head_bytes = 0
        self._chunks_seen = False
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return waiter

    @property
    def answered(self) -> bool:
        """Whether any byte of a response arrived for the current exchange."""
        return self._chunks_seen

    def close(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()


class Frame:
    """A request as the wire writes it: its origin, its bytes (head and body) and the URL
    it goes to (query included)."""

    __slots__ = ("data", "key", "method", "url")

    def __init__(self, method: str, key: tuple[str, str, int], data: bytes, url: URL) -> None:
        self.method = method
        self.key = key
        self.data = data
        self.url = url


#: a caller waiting for room: the origin it wants and what it is given (a kept-alive
#: connection to that origin, or None: a slot to open one)
_Waiter = tuple[tuple[str, str, int], "asyncio.Future[_Connection | None]"]


class WirePool:
    """Kept-alive connections per origin, opened through the SSRF guard; at most ``limit``
    open at once (callers beyond it wait, first come first served)."""

    def __init__(self, resolver: GuardedResolver, *, limit: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._resolver = resolver
        self._limit = limit
        self._clock = clock
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open = 0
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    # -- the request -----------------------------------------------------------------------

    def frame(self, method: str, url: str, headers: dict[str, str],
              params: dict[str, str] | None, body: bytes | None) -> Frame | None:
        """The request as this pool writes it, or None when it cannot be written byte for
        byte as aiohttp would (then it must go through aiohttp). Nothing is sent."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            return None  # aiohttp reports an invalid URL in its own words
        if params:
            parsed = parsed.extend_query(params)
        scheme = parsed.scheme
        host = parsed.raw_host
        if scheme not in ("http", "https") or not host or parsed.raw_user is not None:
            return None
        head = _head(method, parsed, headers, body)
        if head is None:
            return None
        port = parsed.port or (443 if scheme == "https" else 80)
        return Frame(method, (scheme, host, port), head if body is None else head + body,
                     parsed)

    async def exchange(self, frame: Frame, limits: Limits) -> RawResponse:
        """Send one framed request; a gzip or deflate body is decoded as it arrives, and
        at most ``limits.max_body`` bytes of it (decoded) are read: a longer one costs the
        connection, and either fails the exchange with ``ClientPayloadError`` or, with
        ``limits.truncate``, keeps its first ``max_body`` bytes."""
        if self._closed:
            raise RuntimeError("the HTTP core is closed")
        timeout = limits.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total if timeout.total else None
        key = frame.key
        method = frame.method
        for fresh_only in (False, True):
            conn = await self._acquire(key, fresh_only, timeout, deadline)
            reused = conn.idle_since > 0.0
            conn.max_body = limits.max_body
            conn.truncate = limits.truncate
            waiter = conn.start(frame.data)
            conn.arm(loop, deadline, timeout.sock_read)
            try:
                status, raw_headers, content = await waiter
            except aiohttp.ServerDisconnectedError:
                self._release(conn)
                if reused and not conn.answered and method in IDEMPOTENT and not fresh_only:
                    continue  # the server had closed the idle connection: one fresh try
                raise
            except BaseException:
                conn.close()  # cancelled or failed mid-exchange: the connection is unusable
                self._release(conn)
                raise
            self._release(conn)
            # (from a list: CIMultiDict takes one ~30% faster than a generator)
            response_headers = CIMultiDict([
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in raw_headers
            ])
            return RawResponse(status, CIMultiDictProxy(response_headers), content,
                               str(frame.url))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- connections -----------------------------------------------------------------------

    async def _acquire(self, key: tuple[str, str, int], fresh_only: bool,
                       limits: aiohttp.ClientTimeout, deadline: float | None) -> _Connection:
        if not fresh_only:
            idle = self._idle.get(key)
            now = self._clock()
            while idle:
                conn = idle.pop()
                if (not conn.closed and now - conn.idle_since < KEEPALIVE_TIMEOUT
                        and conn.transport is not None and not conn.transport.is_closing()):
                    return conn
                conn.close()
                self._slot_freed()
        if self._open < self._limit:
            self._open += 1
            return await self._connect_in_slot(key, limits, deadline)
        # Full: wait for a connection to this origin coming free, or for a slot to open
        # one. Like aiohttp's, the connect timeout covers this wait.
        loop = asyncio.get_running_loop()
        entry: _Waiter = (key, loop.create_future())
        self._queue.append(entry)
        wait = limits.connect
        if deadline is not None:
            left = deadline - loop.time()
            wait = left if wait is None else min(wait, left)
        try:
            async with asyncio.timeout(wait):
                given = await entry[1]
        except BaseException:
            if entry[1].done() and not entry[1].cancelled():
                self._hand_back(entry[1].result())  # handed over as we gave up: pass it on
            else:
                self._queue.remove(entry)
            raise
        if given is not None:
            return given
        return await self._connect_in_slot(key, limits, deadline)

    async def _connect_in_slot(self, key: tuple[str, str, int], limits: aiohttp.ClientTimeout,
                               deadline: float | None) -> _Connection:
        try:
            return await self._connect(key, limits, deadline)
        except BaseException:
            self._slot_freed()
            raise

    def _hand_back(self, given: _Connection | None) -> None:
        if given is None:
            self._slot_freed()
        else:
            self._release(given)

    def _release(self, conn: _Connection) -> None:
        """An exchange ended: keep the connection for its origin's next request (a caller
        waiting for one first), or close it and free its slot."""
        if conn.closed or self._closed:
            self._slot_freed()
            return
        conn.idle_since = self._clock()
        conn.read_timeout = None
        if self._queue:
            for entry in self._queue:
                if entry[0] == conn.key and not entry[1].done():
                    self._queue.remove(entry)
                    entry[1].set_result(conn)
                    return
            # everyone waiting wants another origin: this slot serves them better
            conn.close()
            self._slot_freed()
            return
        self._idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: _Connection) -> None:
        """A connection closed while idle (the server's keep-alive ran out)."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._slot_freed()

    def _slot_freed(self) -> None:
        """A connection slot is no longer used: the first waiter inherits it (to open a
        connection of its own), or the pool has room for one more."""
        while self._queue:
            _, waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1

    async def _connect(self, key: tuple[str, str, int], limits: aiohttp.ClientTimeout,
                       deadline: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        timeout = limits.sock_connect or limits.connect
        if deadline is not None:
            left = deadline - loop.time()
            timeout = left if timeout is None else min(timeout, left)
        async with asyncio.timeout(timeout):
            addresses = await self._addresses(host, port)
            tls = await self._tls() if scheme == "https" else None
            last: OSError | None = None
            for family, address in addresses:
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, key), address, port, family=family,
                        ssl=tls, server_hostname=host if tls is not None else None,
                    )
                except OSError as exc:  # ssl.SSLError included
                    last = exc
                    continue
                sock = conn.transport.get_extra_info("socket") if conn.transport else None
                if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return conn
        assert last is not None
        raise WireConnectError(host, port, last)

    async def _addresses(self, host: str, port: int) -> list[tuple[int, str]]:
        """The checked addresses to try for ``host`` (DestinationRefused otherwise)."""
        policy = self._resolver.policy
        policy.check_name(host)
        literal = literal_address(host)
        if literal is not None:
            policy.check_address(host, literal)
            return [(_family(literal), str(literal))]
        try:
            answers = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
        except TimeoutError:
            raise
        except OSError as exc:  # socket.gaierror: no such name (aiohttp: ClientConnectorDNSError)
            raise WireConnectError(host, port, exc) from exc
        return [(int(a["family"]), a["host"]) for a in answers]

    async def _tls(self) -> ssl.SSLContext:
        """Certificates verified against the system's CAs (``SSL_CERT_FILE`` and
        ``SSL_CERT_DIR`` honoured), HTTP/1.1 offered by ALPN, as aiohttp does."""
        if self._ssl is None:
            # loading the CA store reads files: not on the event loop
            self._ssl = await asyncio.to_thread(_verified_context)
        return self._ssl

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        while self._queue:
            _, waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the HTTP core is closed"))


def _parser(conn: _Connection) -> httptools.HttpResponseParser:
    """A response parser as lenient as aiohttp's (which is llhttp too): obs-fold header
    lines and bare LF line endings are accepted (RFC 9112 §5.2, §2.2), as are spaces after
    a chunk size; everything else stays strict."""
    parser = httptools.HttpResponseParser(conn)
    parser.set_dangerous_leniencies(lenient_headers=True, lenient_optional_cr_before_lf=True,
                                    lenient_spaces_after_chunk_size=True)
    return parser


def _verified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def _head(method: str, url: URL, headers: dict[str, str], body: bytes | None) -> bytes | None:
    """The request line and headers as aiohttp would write them, or None when a value
    cannot be sent as is (aiohttp then refuses or encodes it in its own way)."""
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1\r\n"]
    present = set()
    for name, value in headers.items():
        present.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if "host" not in present:
        lines.append(f"Host: {url.host_port_subcomponent}\r\n")
    if "accept" not in present:
        lines.append("Accept: */*\r\n")
    if "accept-encoding" not in present:
        lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}\r\n")
    if "user-agent" not in present:
        lines.append(f"User-Agent: {SERVER_SOFTWARE}\r\n")
    if body is not None or method in BODY_METHODS:
        if "content-length" in present or "transfer-encoding" in present:
            return None  # the caller framed the body itself: leave that to aiohttp
        lines.append(f"Content-Length: {len(body) if body is not None else 0}\r\n")
        if body is not None and "content-type" not in present:
            lines.append("Content-Type: application/octet-stream\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # one "\n" per line and each after a "\r": a line break inside a name or value (header
    # injection) shows up as a count that does not match
    if text.count("\n") != len(lines) or text.count("\r") != len(lines) or "\0" in text:
        return None
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


class WireTransport:
    """The kept-alive HTTP/1.1 :class:`~patchwire.http.Transport` over a :class:`WirePool`.

    It takes what it can write byte for byte as aiohttp would (:meth:`frame`): http(s),
    a body that is absent or bytes, no cookies, not ``HEAD``, headers that need no
    encoding. :meth:`handle` refuses anything else with a ``ValueError``; the default
    transport of the core asks :meth:`frame` first and sends the rest through aiohttp.
    """

    def __init__(self, pool: WirePool) -> None:
        self.pool = pool

    def frame(self, request: PreparedRequest) -> Frame | None:
        """The request framed for the wire, or None when this transport does not take it."""
        data = request.data
        if (request.cookies is not None or request.json is not None
                or request.method == "HEAD" or not (data is None or type(data) is bytes)
                or request.tls is not None):  # a client certificate: aiohttp's pool keys on it
            return None
        return self.pool.frame(request.method, request.url, request.headers, request.params,
                               data)

    async def send(self, frame: Frame, limits: Limits) -> RawResponse:
        return await self.pool.exchange(frame, limits)

    async def handle(self, request: PreparedRequest, limits: Limits) -> RawResponse:
        frame = self.frame(request)
        if frame is None:
            raise ValueError(f"the wire cannot send {request.method} {request.url} as "
                             "given (cookies, a JSON or form body, HEAD, or a header aiohttp "
                             "would encode): send it through the aiohttp transport")
        return await self.pool.exchange(frame, limits)

    async def aclose(self) -> None:
        await self.pool.close()
