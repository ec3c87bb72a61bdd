from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from patchwire.auth import OAuth2Client, PkcePair, code_challenge, new_code_verifier, new_state
from patchwire.connectors.spec import OAuth2Auth
from patchwire.http import HttpCore
from tests.support.conformance import conformance_path
from tests.support.oauth import oauth_connector

VECTORS = conformance_path("rfc", "rfc-vectors.json")


def test_the_rfc7636_appendix_b_vector_holds() -> None:
    vector = json.loads(VECTORS.read_text())["rfc7636_pkce_s256"]
    verifier = vector["code_verifier"]
    import base64

    assert base64.urlsafe_b64encode(bytes(vector["verifier_octets"])).decode().rstrip("=") == verifier
    assert code_challenge(verifier) == vector["code_challenge"]
    pair = PkcePair(verifier, code_challenge(verifier))
    assert f"code_challenge={pair.challenge}&code_challenge_method={pair.method}" == \
        vector["authorization_request_params"]


def test_new_verifiers_are_43_unreserved_characters_and_never_repeat() -> None:
    verifiers = {new_code_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", v) for v in verifiers)


def test_a_malformed_verifier_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as err:
        code_challenge("short-secret-verifier")
    assert "short-secret-verifier" not in str(err.value)


def test_a_pkce_pair_repr_hides_the_verifier() -> None:
    pair = PkcePair.new()
    assert pair.verifier not in repr(pair)
    assert code_challenge(pair.verifier) == pair.challenge


def test_states_are_unguessable_and_distinct() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100 and all(len(s) >= 32 for s in states)


def test_the_authorize_url_carries_client_redirect_scope_state_and_challenge() -> None:
    spec = oauth_connector()
    assert isinstance(spec.auth, OAuth2Auth)
    client = OAuth2Client(spec.auth, {"sandbox_url": "https://auth.example.com",
                                      "client_id": "cid"}, http=HttpCore())
    pair = PkcePair.new()
    url = client.authorization_url(redirect_uri="http://127.0.0.1:9/cb", state="st", pkce=pair)
    parts = urlsplit(url)
    q = parse_qs(parts.query)
    assert q["response_type"] == ["code"] and q["client_id"] == ["cid"]
    assert q["redirect_uri"] == ["http://127.0.0.1:9/cb"] and q["state"] == ["st"]
    assert q["scope"] == ["profile email"]
    assert q["code_challenge"] == [pair.challenge] and q["code_challenge_method"] == ["S256"]
    assert pair.verifier not in url
