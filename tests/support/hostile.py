"""What hostile upstreams and DNS do: decompression bombs, the memory they would cost,
and resolvers answering from a table (``.invalid`` names: no such name)."""

from __future__ import annotations

import functools
import socket
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp.abc import AbstractResolver, ResolveResult

MiB = 1024 * 1024


@functools.cache
def bomb(coding: str, mib: int = 400) -> bytes:
    """A valid gzip or deflate (zlib) body of ``mib`` MiB of zeros, about 1,000 times
    smaller: one compressed MiB repeated (each block starts afresh after a full flush), so
    building it never holds the decoded size in memory."""
    chunk = bytes(MiB)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    stream = block * mib + packer.flush()
    if coding == "gzip":
        crc = 0
        for _ in range(mib):
            crc = zlib.crc32(chunk, crc)
        return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + stream
                + struct.pack("<II", crc, (mib * MiB) & 0xFFFFFFFF))
    adler = 1
    for _ in range(mib):
        adler = zlib.adler32(chunk, adler)
    return b"\x78\xda" + stream + struct.pack(">I", adler)


@contextmanager
def memory_peak() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak of the memory Python allocated
    while the block ran (bytes, tracemalloc's count: C extensions' objects included)."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


class StubResolver(AbstractResolver):
    """Answers from a table; each name's answers are consumed in order (the last repeats),
    so a test can change what DNS says between lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        queue = self.answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [ResolveResult(hostname=host, host=address, port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


class NoInvalidNames(StubResolver):
    """DNS as RFC 6761 has it for ``.invalid``: no such name (getaddrinfo's
    ``socket.gaierror``, EAI_NONAME), without a query leaving the machine."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host.rstrip(".").lower().endswith(".invalid"):
            self.lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await super().resolve(host, port, family)
