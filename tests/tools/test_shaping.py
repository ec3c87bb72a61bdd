"""Result shaping: projections and a size cap that says what it cut."""

from __future__ import annotations

import json

from patchwire.expressions import compile_expression
from patchwire.tools import shape_result


def test_a_small_result_is_passed_through_as_json() -> None:
    shaped = shape_result({"id": 1, "status": "paid"})
    assert (shaped.data, json.loads(shaped.text), shaped.truncated) == (
        {"id": 1, "status": "paid"}, {"id": 1, "status": "paid"}, False)


def test_a_projection_keeps_only_what_the_tool_declares() -> None:
    shaped = shape_result({"id": 1, "items": [1, 2], "internal": "x"},
                          projection=compile_expression("{'id': id, 'n': $count(items)}"))
    assert shaped.data == {"id": 1, "n": 2}


def test_a_long_list_is_cut_to_what_fits_with_a_note_giving_the_counts() -> None:
    rows = [{"id": i, "name": f"customer {i}", "note": "x" * 50} for i in range(500)]
    shaped = shape_result(rows, max_bytes=2048)
    assert shaped.truncated and len(shaped.text.encode()) <= 2048
    body, note = shaped.text.rsplit("\n", 1)
    assert json.loads(body) == shaped.data == rows[: len(shaped.data)]
    assert f"showing the first {len(shaped.data)} of 500 items" in note
    assert len(shaped.data) > 5  # it uses the room it has


def test_the_largest_list_inside_an_object_is_the_one_cut() -> None:
    value = {"total": 300, "page": 1, "data": [{"id": i, "pad": "y" * 40} for i in range(300)]}
    shaped = shape_result(value, max_bytes=1024)
    assert shaped.data["total"] == 300 and shaped.data["page"] == 1
    assert 0 < len(shaped.data["data"]) < 300
    assert "of 'data'" in shaped.text and len(shaped.text.encode()) <= 1024


def test_a_result_with_nothing_to_cut_is_cut_as_text_and_says_so() -> None:
    shaped = shape_result({"blob": "z" * 5000}, max_bytes=1000)
    assert shaped.data is None and shaped.truncated
    assert len(shaped.text.encode()) <= 1000 and "truncated" in shaped.text
