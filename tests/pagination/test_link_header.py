"""The Link header parser against RFC 8288's examples and GitHub's pagination headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from patchwire.http import ExtValue, Link, find_link, parse_link_header
from tests.support.conformance import conformance_path

VECTORS = json.loads(conformance_path("rfc", "rfc-vectors.json").read_text())
RFC8288 = VECTORS["rfc8288_link_header"]["examples"]
GITHUB = VECTORS["github_link_pagination"]["examples"]


def as_vector(link: Link) -> dict[str, Any]:
    """A parsed link in the vectors' shape: target, rel list, then the other parameters."""
    out: dict[str, Any] = {"target": link.target, "rel": list(link.rel)}
    for name, value in link.params.items():
        out[name] = (
            {"charset": value.charset, "language": value.language, "value": value.value}
            if isinstance(value, ExtValue) else value
        )
    return out


@pytest.mark.parametrize("example", RFC8288, ids=[e["value"][:40] for e in RFC8288])
def test_every_rfc_8288_example_parses_to_the_links_the_rfc_describes(
    example: dict[str, Any],
) -> None:
    assert [as_vector(link) for link in parse_link_header(example["value"])] == example["links"]


@pytest.mark.parametrize(
    "example", [e for e in RFC8288 if "equivalent_to_two_fields" in e], ids=["two-fields"]
)
def test_several_link_fields_parse_like_one_comma_joined_field(example: dict[str, Any]) -> None:
    fields = example["equivalent_to_two_fields"]
    assert parse_link_header(fields) == parse_link_header(example["value"])
    assert [as_vector(link) for link in parse_link_header(fields)] == example["links"]


@pytest.mark.parametrize("example", GITHUB, ids=["four-rels", "per-page"])
def test_githubs_link_headers_yield_their_next_page(example: dict[str, Any]) -> None:
    assert find_link(example["value"], "next", "https://api.github.com/") == example["next"]


def test_the_next_link_of_the_rfc_example_resolves_against_the_request_url() -> None:
    header = ("</TheBook/chapter2>; rel=\"previous\"; title*=UTF-8'de'letztes%20Kapitel, "
              "</TheBook/chapter4>; rel=\"next\"; title*=UTF-8'de'n%c3%a4chstes%20Kapitel")
    assert (find_link(header, "next", "http://example.com/TheBook/chapter3")
            == "http://example.com/TheBook/chapter4")


def test_a_relation_type_in_a_rel_list_is_found() -> None:
    header = '<http://example.org/>; rel="start http://example.net/relation/other"'
    assert find_link(header, "http://example.net/relation/other", "http://x/") == (
        "http://example.org/"
    )
    assert find_link('<p2>; rel="next last"', "last", "http://x/a/") == "http://x/a/p2"


def test_relation_types_compare_case_insensitively() -> None:
    assert find_link("<p2>; REL=NEXT", "next", "http://x/") == "http://x/p2"
    assert find_link('<p2>; rel="Next"', "NEXT", "http://x/") == "http://x/p2"


def test_an_unquoted_rel_and_parameters_in_any_order_are_read() -> None:
    header = '<p3>; title="a; b, c"; rel=next; type="application/json"'
    [link] = parse_link_header(header)
    assert link.rel == ("next",)
    assert link.params == {"title": "a; b, c", "type": "application/json"}


def test_commas_inside_targets_and_quoted_values_do_not_split_links() -> None:
    links = parse_link_header('<http://x/a,b>; rel="prev"; title="x, y", <http://x/c>; rel=next')
    assert [link.target for link in links] == ["http://x/a,b", "http://x/c"]


def test_a_second_rel_parameter_is_ignored() -> None:
    # RFC 8288 section 3.3: occurrences after the first must be ignored.
    assert find_link("<p2>; rel=prev; rel=next", "next", "http://x/") is None


def test_a_malformed_link_value_does_not_hide_the_others() -> None:
    assert find_link('garbage; rel=next, <http://x/2>; rel="next"', "next", "http://y/") == (
        "http://x/2"
    )
    assert parse_link_header("<unterminated; rel=next") == []
    assert parse_link_header("") == []


def test_a_header_without_a_next_link_ends_pagination() -> None:
    assert find_link('</first>; rel="first", </last>; rel="last"', "next", "http://x/") is None
