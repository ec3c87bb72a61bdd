"""Identifiers for requests and records.

They must be unique, not unpredictable, and are made on every call: ``uuid4``'s
``os.urandom`` system call costs several µs on sandboxed kernels, and even formatting 72
fresh random bits costs more than the rest of the id. So each process draws one random
72-bit base from the OS (again in forked children) and counts up from it: ids of one
process never repeat, and two processes collide only if their ranges overlap within the
same microsecond. A time prefix makes them sort by creation, so indexes on them grow at
the end instead of splitting pages at random (this halved the cost of writing the call
log).
"""

from __future__ import annotations

import itertools
import os
from time import time_ns

__all__ = ["new_id"]

#: the base stays below 2**71, so counting up from it cannot reach the time prefix's bits
_SEQUENCE_BITS = 72


def _sequence() -> itertools.count[int]:
    return itertools.count(int.from_bytes(os.urandom(9)) >> 1)


# next() on itertools.count is one C call: threads cannot draw the same number
_next = _sequence().__next__


def _reseed() -> None:
    global _next
    _next = _sequence().__next__


os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """32 lowercase hex characters: microseconds since the epoch, then 72 bits of sequence."""
    return ((time_ns() // 1000 << _SEQUENCE_BITS) | _next()).to_bytes(16).hex()
