"""The call path's shortcuts give exactly what the general code they skip gives."""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

import pytest

from patchwire.calls._action import _encode_path_segment
from patchwire.ids import new_id


def test_ids_are_32_hex_characters_unique_and_in_creation_order() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    # the prefix is the time in microseconds
    assert abs(int(ids[-1][:14], 16) / 1e6 - time.time()) < 60


def test_ids_made_in_several_threads_never_repeat() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(m,)) for m in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for m in made for i in m]
    assert len(set(every)) == len(every)


@pytest.mark.parametrize("text", [
    "42", "ORD-2024_01.x~y", "", "a/../b c", "é", "١٢٣", "x?y#z", "100%", "a+b", "Ⅻ",
])
def test_path_segments_are_encoded_as_quote_would(text: str) -> None:
    assert _encode_path_segment(text) == quote(text, safe="")
