"""The one same-origin rule (``patchwire.access.cross_site``) that SiteGuard applies to
every request and the key check applies again, stricter, to requests carrying the
dashboard's cookie. Over HTTP it is exercised in test_hostile_page.py and test_access.py;
here each clause on its own."""

from __future__ import annotations

from typing import Any

import pytest

from patchwire.access import cross_site

OWN = "http://127.0.0.1:8000"


def request(method: str = "POST", **headers: str) -> dict[str, Any]:
    sent = {"host": "127.0.0.1:8000", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return {"type": "http", "method": method, "scheme": "http", "path": "/x",
            "headers": [(k.encode(), v.encode()) for k, v in sent.items()]}


@pytest.mark.parametrize(("method", "headers"), [
    ("POST", {}),  # not a browser
    ("POST", {"origin": OWN}),
    ("POST", {"origin": OWN, "sec_fetch_site": "same-origin"}),
    ("POST", {"sec_fetch_site": "none"}),  # typed by the person
    ("GET", {"sec_fetch_site": "cross-site"}),  # a link from elsewhere: reading
    ("GET", {"referer": "http://evil.example/"}),
])
def test_what_this_server_s_pages_and_other_clients_send_passes(
    method: str, headers: dict[str, str],
) -> None:
    assert cross_site(request(method, **headers), method) is None


@pytest.mark.parametrize(("method", "headers", "title"), [
    ("GET", {"origin": "http://evil.example"}, "Invalid Origin header"),
    ("GET", {"origin": "null"}, "Invalid Origin header"),
    ("POST", {"origin": "https://127.0.0.1:8000"}, "Invalid Origin header"),
    ("POST", {"sec_fetch_site": "cross-site"}, "Cross-site request refused"),
    ("POST", {"sec_fetch_site": "same-site"}, "Cross-site request refused"),
    ("DELETE", {"origin": OWN, "sec_fetch_site": "cross-site"}, "Cross-site request refused"),
])
def test_what_another_site_s_page_sends_is_refused(method: str, headers: dict[str, str],
                                                  title: str) -> None:
    refused = cross_site(request(method, **headers), method)
    assert refused is not None and refused[0] == title
    assert "cross-site" in refused[1]


@pytest.mark.parametrize(("headers", "passes"), [
    ({"origin": OWN}, True),
    ({"referer": OWN + "/runs/r1"}, True),
    ({}, False),  # a cookie is sent whatever asks: a change must show where it comes from
    ({"referer": "http://evil.example/page"}, False),
    ({"origin": "null", "referer": OWN + "/runs"}, False),
])
def test_a_change_made_with_the_cookie_must_show_it_comes_from_this_server(
    headers: dict[str, str], passes: bool,
) -> None:
    refused = cross_site(request("POST", **headers), "POST", by_cookie=True)
    assert (refused is None) is passes, refused
    # a read with the cookie needs no such proof (reading changes nothing)
    if not headers:
        assert cross_site(request("GET"), "GET", by_cookie=True) is None


def test_a_request_without_a_host_is_never_same_origin() -> None:
    scope = request("POST", origin=OWN)
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"]
    assert cross_site(scope, "POST") is not None
    scope["headers"] = [(b"referer", OWN.encode())]
    assert cross_site(scope, "POST", by_cookie=True) is not None
