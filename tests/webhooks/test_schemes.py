"""Webhook signature schemes against the vendors' SDKs, documented examples and forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import standardwebhooks
import stripe
from pydantic import ValidationError
from slack_sdk.signature import SignatureVerifier

from patchwire.errors import WebhookRejected
from patchwire.webhooks import SchemeSettings, Verified, handshake, sign, verify
from tests.support.conformance import conformance_path

VECTORS = conformance_path("webhooks", "standard-webhooks", "vectors.json")
NOW = 1_700_000_000.0
BODY = b'{"id": "evt_123", "type": "order.refunded", "event_id": "Ev123", "data": {"id": "42"}}'
SECRETS = {
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "stripe": "whsec_stripe_test_secret",
    "github": "It's a Secret to Everybody",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "shopify": "shpss_shopify_secret",
    "hmac": "generic-secret",
}
GENERIC = SchemeSettings(
    scheme="hmac",
    header="X-Signature",
    algorithm="sha512",
    encoding="base64",
    prefix="sha512=",
    signed_content="{timestamp}:{id}:{header:X-Tenant}:{body}",
    timestamp_header="X-Timestamp",
    id_header="X-Event-Id",
)
SCHEMES = ["standard", "stripe", "github", "slack", "shopify", "hmac"]
TIMESTAMPED = ["standard", "stripe", "slack", "hmac"]


def settings_for(scheme: str, **fields: Any) -> SchemeSettings:
    if scheme == "hmac":
        return GENERIC.model_copy(update=fields)
    return SchemeSettings.model_validate({"scheme": scheme, **fields})


def signed(scheme: str, body: bytes = BODY, *, at: float = NOW) -> dict[str, str]:
    tenant = {"X-Tenant": "acme"} if scheme == "hmac" else {}
    headers = sign(settings_for(scheme), SECRETS[scheme], body, timestamp=at, event_id="msg_1",
                   headers=tenant)
    return {**headers, **tenant}


def rejected(
    scheme: str | SchemeSettings,
    headers: dict[str, str],
    body: bytes = BODY,
    *,
    secrets: list[str] | None = None,
    now: float = NOW,
) -> WebhookRejected:
    settings = scheme if isinstance(scheme, SchemeSettings) else settings_for(scheme)
    if secrets is None:
        secrets = [SECRETS[settings.scheme]]
    with pytest.raises(WebhookRejected) as caught:
        verify(settings, secrets, headers, body, now=now)
    return caught.value


# -- Standard Webhooks: the conformance vectors (tests/conformance) --------------------------


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def test_every_standard_webhooks_sign_vector_is_reproduced_and_verified() -> None:
    vectors = load_vectors()["sign_vectors"]
    assert vectors
    standard = SchemeSettings(scheme="standard")
    for vector in vectors:
        payload = vector["payload"].encode()
        headers = sign(
            standard,
            vector["secret"],
            payload,
            timestamp=vector["timestamp"],
            event_id=vector["msg_id"],
        )
        assert headers["webhook-signature"] == vector["expected_signature"], vector["name"]
        result = verify(standard, [vector["secret"]], headers, payload, now=vector["timestamp"])
        assert result == Verified(vector["msg_id"], float(vector["timestamp"]))


def test_every_standard_webhooks_negative_vector_is_rejected() -> None:
    data = load_vectors()
    good = data["sign_vectors"][0]
    standard = SchemeSettings(scheme="standard")
    base = {
        "webhook-id": good["msg_id"],
        "webhook-timestamp": str(good["timestamp"]),
        "webhook-signature": good["expected_signature"],
    }
    payload = good["payload"].encode()
    checked = 0
    for vector in data["negative_vectors"]:
        assert vector["expect"] == "reject"
        name = vector["name"]
        cases: list[tuple[str, dict[str, str], bytes, float]] = []
        if "secret" in vector:
            ts = good["timestamp"]
            headers = {
                "webhook-id": vector["msg_id"],
                "webhook-timestamp": str(ts),
                "webhook-signature": vector["webhook-signature"],
            }
            cases.append((vector["secret"], headers, vector["payload"].encode(), ts))
        elif "webhook-signature" in vector:
            cases.append(
                (good["secret"], {**base, "webhook-signature": vector["webhook-signature"]},
                 payload, good["timestamp"])
            )
        elif name.startswith("missing"):
            for header in base:
                without = {k: v for k, v in base.items() if k != header}
                cases.append((good["secret"], without, payload, good["timestamp"]))
        elif "hello" in name:
            cases.append(
                (good["secret"], {**base, "webhook-timestamp": "hello"}, payload,
                 good["timestamp"])
            )
        elif name.startswith("timestamp older or newer"):
            for skew in (-301, 301):
                cases.append((good["secret"], base, payload, good["timestamp"] + skew))
        else:
            pytest.fail(f"negative vector not understood by this test: {name}")
        for secret, headers, body, now in cases:
            with pytest.raises(WebhookRejected):
                verify(standard, [secret], headers, body, now=now)
            checked += 1
    assert checked >= len(data["negative_vectors"])


def test_standard_multi_signature_header_verifies_when_any_v1_matches() -> None:
    data = load_vectors()
    good = data["sign_vectors"][0]
    noise = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    headers = {
        "webhook-id": good["msg_id"],
        "webhook-timestamp": str(good["timestamp"]),
        "webhook-signature": (
            f"{noise} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
            f"{good['expected_signature']} {noise}"
        ),
    }
    result = verify(
        SchemeSettings(scheme="standard"), [good["secret"]], headers,
        good["payload"].encode(), now=good["timestamp"],
    )
    assert result.event_id == good["msg_id"]


def test_standard_secret_works_with_or_without_prefix_and_padding() -> None:
    good = load_vectors()["sign_vectors"][0]
    bare = good["secret"].removeprefix("whsec_")
    standard = SchemeSettings(scheme="standard")
    headers = sign(standard, good["secret"], b"x", timestamp=NOW, event_id="msg_1")
    for secret in (good["secret"], bare, bare.rstrip("=")[:-1] + bare[-1]):
        verify(standard, [secret], headers, b"x", now=NOW)
    # python test_signature_verification_with_unpadded_secret: 31 chars == 31 chars + "="
    unpadded = sign(standard, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", b"x", timestamp=NOW,
                    event_id="msg_1")
    verify(standard, ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="], unpadded, b"x", now=NOW)


def test_standard_empty_secrets_are_refused_as_no_secret() -> None:
    standard = SchemeSettings(scheme="standard")
    headers = signed("standard")
    for empty in ([], [""], ["whsec_"]):
        error = rejected(standard, headers, secrets=empty)
        assert (error.reason, error.status) == ("no_secret", 500)
    with pytest.raises(ValueError):
        sign(standard, "whsec_", b"x", timestamp=NOW, event_id="msg_1")


def test_standardwebhooks_library_signatures_verify_and_ours_verify_with_it() -> None:
    secret = SECRETS["standard"]
    library = standardwebhooks.Webhook(secret)
    now = time.time()
    from datetime import UTC, datetime

    sig = library.sign("msg_lib", datetime.fromtimestamp(now, UTC), BODY.decode())
    headers = {"webhook-id": "msg_lib", "webhook-timestamp": str(int(now)),
               "webhook-signature": sig}
    standard = SchemeSettings(scheme="standard")
    assert verify(standard, [secret], headers, BODY, now=now).event_id == "msg_lib"

    ours = sign(standard, secret, BODY, timestamp=now, event_id="msg_ours")
    assert library.verify(BODY, ours) == json.loads(BODY)


# -- Stripe ---------------------------------------------------------------------------------


def test_stripe_sdk_generated_header_verifies_and_yields_the_event_id() -> None:
    secret = SECRETS["stripe"]
    header = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), secret, timestamp=int(NOW)
    )
    result = verify(SchemeSettings(scheme="stripe"), [secret], {"Stripe-Signature": header},
                    BODY, now=NOW)
    assert result == Verified("evt_123", NOW)


def test_stripe_construct_event_accepts_our_signature_header() -> None:
    secret = SECRETS["stripe"]
    headers = sign(SchemeSettings(scheme="stripe"), secret, BODY, timestamp=time.time(),
                   event_id="ignored")
    event = stripe.Webhook.construct_event(BODY, headers["Stripe-Signature"], secret)
    assert event["id"] == "evt_123"
    assert event["type"] == "order.refunded"


def test_stripe_header_computed_per_stripe_docs_verifies_with_several_v1_and_a_v0() -> None:
    # docs.stripe.com/webhooks: signed_payload = "{t}.{raw body}", HMAC-SHA256, hex; the
    # header may carry several v1 (secret rolling) and a v0 test-mode signature to ignore.
    secret = SECRETS["stripe"]
    t = int(NOW)
    good = hmac.new(secret.encode(), f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    other = hmac.new(b"old", f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    header = f"t={t},v1={other},v1={good},v0={other}"
    stripe.WebhookSignature.verify_header(BODY.decode(), header, secret, tolerance=None)
    verify(SchemeSettings(scheme="stripe"), [secret], {"stripe-signature": header}, BODY,
           now=NOW + 299)


def test_stripe_header_without_v1_or_t_is_malformed() -> None:
    t = int(NOW)
    assert rejected("stripe", {"Stripe-Signature": f"t={t},v0=abcd"}).reason == (
        "malformed_signature"
    )
    assert rejected("stripe", {"Stripe-Signature": "v1=abcd"}).reason == "missing_timestamp"
    assert rejected("stripe", {"Stripe-Signature": "t=soon,v1=ab"}).reason == (
        "malformed_timestamp"
    )


# -- GitHub ---------------------------------------------------------------------------------


def test_github_documented_test_vector_verifies() -> None:
    # docs.github.com "Validating webhook deliveries": testing the implementation.
    headers = {
        "X-Hub-Signature-256":
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    result = verify(SchemeSettings(scheme="github"), ["It's a Secret to Everybody"], headers,
                    b"Hello, World!", now=NOW)
    assert result == Verified("72d3162e-cc78-11e3-81ab-4c9367dc0958", None)
    assert sign(SchemeSettings(scheme="github"), "It's a Secret to Everybody",
                b"Hello, World!", timestamp=NOW, event_id="d")["X-Hub-Signature-256"] == (
        headers["X-Hub-Signature-256"]
    )


def test_github_legacy_sha1_header_alone_or_another_algorithm_is_not_accepted() -> None:
    sha1 = hmac.new(SECRETS["github"].encode(), BODY, hashlib.sha1).hexdigest()
    assert rejected("github", {"X-Hub-Signature": f"sha1={sha1}"}).reason == "missing_signature"
    assert rejected("github", {"X-Hub-Signature-256": f"sha1={sha1}"}).reason == (
        "malformed_signature"
    )


# -- Slack ----------------------------------------------------------------------------------


SLACK_DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
    b"-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977"
    b"00885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10"
    b"d2c447fce8b6703c"
)


def test_slack_documented_example_verifies() -> None:
    # api.slack.com/authentication/verifying-requests-from-slack, the worked example.
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature":
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    result = verify(SchemeSettings(scheme="slack"), ["8f742231b10e8888abcd99yyyzzz85a5"],
                    headers, SLACK_DOC_BODY, now=1531420618 + 60)
    assert result == Verified(None, 1531420618.0)  # a form body has no event_id


def test_slack_sdk_signatures_verify_and_ours_pass_the_sdk_verifier() -> None:
    secret = SECRETS["slack"]
    verifier = SignatureVerifier(secret)
    now = time.time()
    ts = str(int(now))
    theirs = verifier.generate_signature(timestamp=ts, body=BODY)
    assert theirs is not None
    result = verify(SchemeSettings(scheme="slack"), [secret],
                    {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": theirs}, BODY, now=now)
    assert result.event_id == "Ev123"

    ours = sign(SchemeSettings(scheme="slack"), secret, BODY, timestamp=now, event_id="x")
    assert verifier.is_valid_request(BODY, ours)


def test_slack_url_verification_is_answered_with_the_challenge_after_verification() -> None:
    slack = SchemeSettings(scheme="slack")
    body = b'{"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",' \
           b' "type": "url_verification"}'
    headers = signed("slack", body)
    verify(slack, [SECRETS["slack"]], headers, body, now=NOW)
    assert handshake(slack, "POST", headers, {}, body) == (
        200, "text/plain", b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    )
    assert handshake(slack, "POST", headers, {}, BODY) is None  # an ordinary event
    assert handshake(SchemeSettings(scheme="github"), "POST", {}, {}, body) is None


# -- Shopify --------------------------------------------------------------------------------


def test_shopify_base64_hmac_per_shopify_docs_verifies_with_the_webhook_id() -> None:
    # shopify.dev "Verify webhook deliveries": base64(HMAC-SHA256(client secret, raw body)).
    secret = SECRETS["shopify"]
    digest = base64.b64encode(hmac.new(secret.encode(), BODY, hashlib.sha256).digest()).decode()
    headers = {"X-Shopify-Hmac-SHA256": digest, "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37",
               "X-Shopify-Topic": "orders/create"}
    result = verify(SchemeSettings(scheme="shopify"), [secret], headers, BODY, now=NOW)
    assert result == Verified("b54557e4-bdd9-4b37", None)
    assert signed("shopify")["X-Shopify-Hmac-Sha256"] == digest


def test_shopify_signature_that_is_not_base64_is_malformed() -> None:
    assert rejected("shopify", {"X-Shopify-Hmac-Sha256": "%%%"}).reason == "malformed_signature"


# -- generic HMAC ---------------------------------------------------------------------------


def test_generic_hmac_template_signs_timestamp_id_and_a_named_header() -> None:
    headers = signed("hmac")
    assert headers["X-Signature"].startswith("sha512=")
    expected = hmac.new(
        SECRETS["hmac"].encode(), f"{int(NOW)}:msg_1:acme:".encode() + BODY, hashlib.sha512
    ).digest()
    assert base64.b64decode(headers["X-Signature"].removeprefix("sha512=")) == expected
    assert verify(GENERIC, [SECRETS["hmac"]], headers, BODY, now=NOW) == Verified("msg_1", NOW)
    # the named header is part of the signed content
    assert rejected("hmac", {**headers, "X-Tenant": "other"}).reason == "bad_signature"
    no_tenant = {k: v for k, v in headers.items() if k != "X-Tenant"}
    assert rejected("hmac", no_tenant).reason == "missing_header"


@pytest.mark.parametrize(
    ("algorithm", "encoding", "digest"),
    [("sha1", "hex", hashlib.sha1), ("sha256", "base64", hashlib.sha256),
     ("sha512", "hex", hashlib.sha512)],
)
def test_generic_hmac_over_the_body_with_each_algorithm_and_encoding(
    algorithm: str, encoding: str, digest: Any
) -> None:
    settings = SchemeSettings.model_validate(
        {"scheme": "hmac", "header": "X-Sig", "algorithm": algorithm, "encoding": encoding}
    )
    mac = hmac.new(b"k", BODY, digest).digest()
    value = mac.hex() if encoding == "hex" else base64.b64encode(mac).decode()
    assert verify(settings, ["k"], {"x-sig": value}, BODY, now=NOW) == Verified(None, None)
    assert sign(settings, "k", BODY, timestamp=NOW, event_id="e") == {"X-Sig": value}


def test_generic_hmac_literal_braces_and_missing_prefix() -> None:
    settings = SchemeSettings(scheme="hmac", header="X-Sig", prefix="v=",
                              signed_content="{{x}}{body}")
    mac = hmac.new(b"k", b"{x}" + BODY, hashlib.sha256).hexdigest()
    verify(settings, ["k"], {"X-Sig": f"v={mac}"}, BODY, now=NOW)
    error = rejected(settings, {"X-Sig": mac}, secrets=["k"])
    assert (error.reason, error.status) == ("malformed_signature", 400)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scheme": "hmac"}, "needs header"),
        ({"scheme": "hmac", "header": "X", "signed_content": "{timestamp}.{body}"},
         "timestamp_header"),
        ({"scheme": "hmac", "header": "X", "signed_content": "{id}.{body}"}, "id_header"),
        ({"scheme": "hmac", "header": "X", "signed_content": "{bodx}"}, "stray"),
        ({"scheme": "hmac", "header": "X", "signed_content": "}{body}"}, "stray"),
        ({"scheme": "github", "header": "X"}, "only apply to scheme 'hmac'"),
        ({"scheme": "stripe", "tolerance_s": 0}, "greater than or equal"),
        ({"scheme": "stripe", "secret": "x"}, "Extra inputs"),
    ],
)
def test_inconsistent_settings_are_refused_when_built(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SchemeSettings(**fields)


def test_settings_are_frozen() -> None:
    settings = SchemeSettings(scheme="github")
    with pytest.raises(ValidationError):
        settings.tolerance_s = 5  # type: ignore[misc]


# -- every scheme: forgeries, replays, rotation ---------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_accepts_its_own_signature_with_headers_in_any_case(scheme: str) -> None:
    headers = signed(scheme)
    for variant in (headers, {k.lower(): v for k, v in headers.items()},
                    {k.upper(): v for k, v in headers.items()}):
        result = verify(settings_for(scheme), [SECRETS[scheme]], variant, BODY, now=NOW)
        assert result.timestamp == (NOW if scheme in TIMESTAMPED else None)
        expected_id = {"stripe": "evt_123", "slack": "Ev123"}.get(scheme, "msg_1")
        assert result.event_id == expected_id


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_rejects_a_tampered_body(scheme: str) -> None:
    error = rejected(scheme, signed(scheme), BODY.replace(b"42", b"43"))
    assert (error.reason, error.status) == ("bad_signature", 401)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_rejects_the_wrong_secret_without_revealing_secrets(scheme: str) -> None:
    wrong = "whsec_d3Jvbmcgc2VjcmV0IHZhbHVl" if scheme == "standard" else "wrong secret value"
    error = rejected(scheme, signed(scheme), secrets=[wrong])
    assert (error.reason, error.status) == ("bad_signature", 401)
    text = f"{error} {error.to_dict()} {error!r}"
    assert wrong not in text and SECRETS[scheme] not in text


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_accepts_any_of_several_active_secrets(scheme: str) -> None:
    old = "whsec_b2xkIHNlY3JldCBrZXk=" if scheme == "standard" else "old secret"
    verify(settings_for(scheme), [old, SECRETS[scheme]], signed(scheme), BODY, now=NOW)
    verify(settings_for(scheme), [SECRETS[scheme], old], signed(scheme), BODY, now=NOW)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_reports_a_missing_signature(scheme: str) -> None:
    error = rejected(scheme, {"X-Tenant": "acme"})
    assert (error.reason, error.status) == ("missing_signature", 401)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_refuses_to_verify_without_a_secret(scheme: str) -> None:
    error = rejected(scheme, signed(scheme), secrets=[])
    assert (error.reason, error.status) == ("no_secret", 500)


@pytest.mark.parametrize("scheme", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_timestamped_schemes_reject_stale_and_future_timestamps(scheme: str, skew: int) -> None:
    # skew > 0: a replay received later; skew < 0: a sender clock far ahead
    error = rejected(scheme, signed(scheme), now=NOW + skew)
    assert (error.reason, error.status) == ("stale_timestamp", 401)


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_timestamped_schemes_accept_the_tolerance_edge_and_honour_a_custom_one(
    scheme: str,
) -> None:
    headers = signed(scheme)
    for skew in (-300, 300):
        verify(settings_for(scheme), [SECRETS[scheme]], headers, BODY, now=NOW + skew)
    strict = settings_for(scheme, tolerance_s=10)
    verify(strict, [SECRETS[scheme]], headers, BODY, now=NOW + 10)
    assert rejected(strict, headers, now=NOW + 11).reason == "stale_timestamp"


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_a_replay_with_a_refreshed_timestamp_but_the_old_signature_is_forged(scheme: str) -> None:
    old = signed(scheme, at=NOW - 3_600)
    fresh = signed(scheme, at=NOW)
    # splice the old signature onto the new timestamp: what a replayer would need to do
    replay = dict(fresh)
    for name, value in old.items():
        if "sig" in name.lower() or "hmac" in name.lower():
            replay[name] = value
    if scheme == "stripe":
        old_v1 = old["Stripe-Signature"].split(",v1=")[1]
        replay["Stripe-Signature"] = f"t={int(NOW)},v1={old_v1}"
    assert rejected(scheme, replay).reason == "bad_signature"


@pytest.mark.parametrize(
    ("scheme", "header", "value", "reason"),
    [
        ("standard", "webhook-timestamp", "", "missing_timestamp"),
        ("standard", "webhook-timestamp", "1e9", "malformed_timestamp"),
        ("standard", "webhook-id", "", "missing_id"),
        ("standard", "webhook-signature", "v1,", "malformed_signature"),
        ("standard", "webhook-signature", "v1a,abc", "malformed_signature"),
        ("slack", "X-Slack-Request-Timestamp", "nan", "malformed_timestamp"),
        ("slack", "X-Slack-Signature", "v1=abcdef", "malformed_signature"),
        ("slack", "X-Slack-Signature", "v0=zz", "malformed_signature"),
        ("github", "X-Hub-Signature-256", "sha256=", "malformed_signature"),
        ("hmac", "X-Timestamp", "-5", "malformed_timestamp"),
        ("hmac", "X-Event-Id", "", "missing_id"),
        ("hmac", "X-Signature", "sha512=***", "malformed_signature"),
    ],
)
def test_missing_and_malformed_headers_are_precise_4xx(
    scheme: str, header: str, value: str, reason: str
) -> None:
    headers = signed(scheme)
    if value:
        headers[header] = value
    else:
        del headers[header]
    error = rejected(scheme, headers)
    assert error.reason == reason
    assert error.status == 400


def test_missing_slack_timestamp_is_reported_as_such() -> None:
    headers = signed("slack")
    del headers["X-Slack-Request-Timestamp"]
    assert rejected("slack", headers).reason == "missing_timestamp"


# -- handshakes -----------------------------------------------------------------------------


def test_hub_challenge_get_is_echoed_for_any_scheme() -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "x"}
    for scheme in SCHEMES:
        assert handshake(settings_for(scheme), "GET", {}, query, b"") == (
            200, "text/plain", b"1158201444"
        )


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe"},
        {"hub.mode": "subscribe", "hub.challenge": "<script>\n"},
        {"hub.mode": "subscribe", "hub.challenge": "x" * 600},
    ],
)
def test_other_gets_are_not_handshakes(query: dict[str, str]) -> None:
    assert handshake(SchemeSettings(scheme="github"), "GET", {}, query, b"") is None


def test_ordinary_posts_are_not_handshakes() -> None:
    for scheme in SCHEMES:
        assert handshake(settings_for(scheme), "POST", {}, {}, BODY) is None
    assert handshake(SchemeSettings(scheme="slack"), "POST", {}, {}, b"{not json") is None
    assert handshake(SchemeSettings(scheme="slack"), "POST", {}, {},
                     b'{"type": "url_verification"}') is None


def test_a_lone_string_is_not_taken_for_a_list_of_one_character_secrets() -> None:
    with pytest.raises(TypeError):
        verify(SchemeSettings(scheme="github"), "s", signed("github"), BODY, now=NOW)
