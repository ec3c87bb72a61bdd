"""Inbound webhook verification: the vendors' signature schemes and their handshakes.

=========== ============================================= ================== ================
scheme      signature                                     signed content     event id
=========== ============================================= ================== ================
standard    ``webhook-signature: v1,<b64> [v1,<b64>...]`` ``{id}.{ts}.{b}``  webhook-id
            (secret ``whsec_<base64 key>``)
stripe      ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=..]`` ``{ts}.{b}``       body ``id``
github      ``X-Hub-Signature-256: sha256=<hex>``         ``{b}``            X-GitHub-Delivery
slack       ``X-Slack-Signature: v0=<hex>`` and           ``v0:{ts}:{b}``    body ``event_id``
            ``X-Slack-Request-Timestamp``
shopify     ``X-Shopify-Hmac-Sha256: <base64>``           ``{b}``            X-Shopify-Webhook-Id
hmac        configurable (:class:`SchemeSettings`)        template           ``id_header``
=========== ============================================= ================== ================

GitHub's and Shopify's ids are headers no signature covers, as is the generic scheme's
unless its template has ``{id}``. Wherever the signature covers no event id — these, and a
Stripe or Slack body without one — :class:`Verified` carries the SHA-256 of the signed
content, so that the inbox can tell a captured request replayed under a new delivery id
from a new event.

All MACs are HMAC (SHA-256 unless the generic scheme says otherwise) and are compared with
:func:`hmac.compare_digest` on the decoded bytes. Several secrets may be active at once
(rotation): any of them may match. Where a scheme signs a timestamp, it must lie within
``tolerance_s`` of ``now`` in either direction, so a captured request cannot be replayed
later and a clock far ahead is not trusted either. The signature is checked before the
timestamp so that a replay of a genuine event is reported as ``stale_timestamp`` and a
forgery as ``bad_signature``.

:func:`verify` raises :class:`~patchwire.errors.WebhookRejected` with one of these reasons:

========================= ====== ===========================================================
reason                    status meaning
========================= ====== ===========================================================
``no_secret``             500    no usable secret is configured: a server problem, and a
                                 5xx makes the sender retry once it is fixed
``missing_signature``     401    the signature header is absent
``malformed_signature``   400    the signature header cannot be parsed
``bad_signature``         401    no active secret produces the signature
``missing_timestamp``     400    the scheme signs a timestamp and it is absent
``malformed_timestamp``   400    the timestamp is not whole Unix seconds (ASCII digits, no
                                 sign, point or exponent; at most year 9999)
``stale_timestamp``       401    the timestamp is outside the tolerance (past or future)
``missing_id``            400    the scheme signs an event id and it is absent
``missing_header``        400    the generic template signs a header that is absent
========================= ====== ===========================================================

Messages name headers and codes only, never secrets or expected signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from patchwire.errors import WebhookRejected

__all__ = ["SchemeName", "SchemeSettings", "Verified", "handshake", "sign", "verify"]

SchemeName = Literal["standard", "stripe", "github", "slack", "shopify", "hmac"]

_HMAC_ONLY = frozenset(
    {
        "header",
        "algorithm",
        "encoding",
        "prefix",
        "signed_content",
        "timestamp_header",
        "id_header",
    }
)
# RFC 9110 token characters: what a header name in {header:Name} may contain.
_TEMPLATE = re.compile(
    r"\{\{|\}\}|\{(body|timestamp|id|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)\}|[{}]"
)
_STANDARD_PREFIX = "whsec_"
# A hub.challenge is echoed verbatim: keep it short and printable so the endpoint cannot be
# used to reflect arbitrary content.
_MAX_CHALLENGE = 512


#: the latest timestamp a scheme accepts (9999-12-31T23:59:59Z): later ones are not a
#: clock's reading but a hostile or broken sender's, refused as malformed
_MAX_TIMESTAMP = 253_402_300_799
_MAX_TIMESTAMP_DIGITS = len(str(_MAX_TIMESTAMP))

#: the widest timestamp tolerance a source may set: a day
MAX_TOLERANCE_S = 86_400


class SchemeSettings(BaseModel):
    """A source's non-secret verification settings.

    Secrets are passed separately to :func:`verify` so that these settings can be stored,
    logged and shown without care.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: SchemeName
    tolerance_s: int = Field(300, ge=1, le=MAX_TOLERANCE_S)
    """Timestamp tolerance in seconds, both directions, where the scheme signs a timestamp
    (at most a day: a longer window is barely replay protection at all)."""
    header: str | None = None
    """Generic HMAC only: the header carrying the signature."""
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    """Generic HMAC only: text before the encoded MAC in the header, e.g. ``sha256=``."""
    signed_content: str = "{body}"
    """Generic HMAC only: ``{body}``, ``{timestamp}``, ``{id}``, ``{header:Name}``; ``{{``
    and ``}}`` stand for literal braces."""
    timestamp_header: str | None = None
    """Generic HMAC only: a header with Unix seconds; when set it is required and checked."""
    id_header: str | None = None
    """Generic HMAC only: a header with the event id (for deduplication)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scheme != "hmac":
            stray = sorted(self.model_fields_set & _HMAC_ONLY)
            if stray:
                raise ValueError(f"{', '.join(stray)} only apply to scheme 'hmac'")
            return self
        if not self.header:
            raise ValueError("scheme 'hmac' needs header (the signature header's name)")
        parts = _parse_template(self.signed_content)  # raises ValueError when malformed
        kinds = {kind for kind, _ in parts}
        if "timestamp" in kinds and not self.timestamp_header:
            raise ValueError("signed_content uses {timestamp} but timestamp_header is not set")
        if "id" in kinds and not self.id_header:
            raise ValueError("signed_content uses {id} but id_header is not set")
        return self


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified request tells about its event."""

    event_id: str | None
    """The scheme's event id when it has one; the inbox deduplicates on it."""
    timestamp: float | None
    """The signed timestamp (Unix seconds) when the scheme has one."""
    content_digest: str | None = field(default=None, compare=False)
    """SHA-256 (hex) of the signed content when the signature does not cover an event id
    (GitHub's and Shopify's delivery ids are plain headers: anyone holding a captured
    request can send it again under a new one). The inbox deduplicates on it too. Not
    compared: it is a function of the request, not another fact about the event."""


# -- helpers -------------------------------------------------------------------------------


def _reject(reason: str, status: int, message: str) -> WebhookRejected:
    return WebhookRejected(reason, status, message)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@lru_cache(maxsize=256)
def _parse_template(template: str) -> tuple[tuple[str, bytes], ...]:
    """``signed_content`` as parts: ``("lit", text)``, ``("body"|"timestamp"|"id", b"")`` or
    ``("header", lowercased name)``. Cached: settings are parsed once, verified many times."""
    parts: list[tuple[str, bytes]] = []
    literal = bytearray()
    position = 0
    for match in _TEMPLATE.finditer(template):
        literal += template[position : match.start()].encode()
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal += token[0].encode()
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(
                f"signed_content has a stray {token!r} at {match.start()}; write {token * 2} "
                "for a literal brace; placeholders are {body}, {timestamp}, {id}, "
                "{header:Name}"
            )
        if literal:
            parts.append(("lit", bytes(literal)))
            literal.clear()
        if name.startswith("header:"):
            parts.append(("header", name[7:].lower().encode()))
        else:
            parts.append((name, b""))
    literal += template[position:].encode()
    if literal:
        parts.append(("lit", bytes(literal)))
    return tuple(parts)


def _render(
    parts: tuple[tuple[str, bytes], ...],
    body: bytes,
    timestamp: str | None,
    event_id: str | None,
    header: Callable[[str], str | None],
) -> bytes:
    out: list[bytes] = []
    for kind, value in parts:
        if kind == "lit":
            out.append(value)
        elif kind == "body":
            out.append(body)
        elif kind == "timestamp":
            assert timestamp is not None  # the callers check presence first
            out.append(timestamp.encode())
        elif kind == "id":
            assert event_id is not None
            out.append(event_id.encode())
        else:
            name = value.decode()
            found = header(name)
            if found is None:
                raise _reject("missing_header", 400, f"the signed header {name} is missing")
            out.append(found.encode())
    return b"".join(out)


def _standard_key(secret: str) -> bytes | None:
    """The HMAC key of a Standard Webhooks secret: base64 after an optional ``whsec_``.

    Padding is optional, as in the reference libraries.
    """
    raw = secret.strip()
    if raw.startswith(_STANDARD_PREFIX):
        raw = raw[len(_STANDARD_PREFIX) :]
    raw = raw.rstrip("=")
    if not raw:
        return None
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def _key(scheme: SchemeName, secret: str) -> bytes | None:
    if scheme == "standard":
        return _standard_key(secret)
    # Stripe's "whsec_..." and every other vendor's secret is used as its UTF-8 text.
    return secret.encode() if secret else None


def _keys(scheme: SchemeName, secrets: Sequence[str]) -> list[bytes]:
    keys = [key for key in (_key(scheme, s) for s in secrets) if key is not None]
    if not keys:
        raise _reject("no_secret", 500, "no usable webhook secret is configured for this source")
    return keys


def _unhex(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _unbase64(value: str) -> bytes | None:
    value = value.strip()
    if not value:
        return None
    altchars = b"-_" if ("-" in value or "_" in value) else None
    try:
        return base64.b64decode(
            value + "=" * (-len(value) % 4), altchars=altchars, validate=True
        )
    except (binascii.Error, ValueError):
        return None


def _matches(keys: Sequence[bytes], digest: str, message: bytes, given: Sequence[bytes]) -> bool:
    """Whether any key's MAC of ``message`` equals any given signature, in constant time.

    Every pair is compared (no early exit) so the time taken does not tell which secret
    or which of several signatures matched.
    """
    matched = False
    for key in keys:
        expected = hmac.digest(key, message, digest)
        for candidate in given:
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def _timestamp(raw: str | None, where: str) -> float:
    if raw is None or not raw.strip():
        raise _reject("missing_timestamp", 400, f"the timestamp ({where}) is missing")
    text = raw.strip()
    # ASCII digits only: float() would also take "nan", "inf", "1e9", "-5", and every
    # vendor here signs whole seconds. The length is checked before converting: 400
    # nines made float() infinite and int() of that an OverflowError (a 500).
    if (len(text) > _MAX_TIMESTAMP_DIGITS or not text.isascii() or not text.isdigit()
            or int(text) > _MAX_TIMESTAMP):
        raise _reject(
            "malformed_timestamp",
            400,
            f"the timestamp ({where}) is not Unix seconds: whole seconds, digits only, "
            f"at most {_MAX_TIMESTAMP}",
        )
    return float(text)


def _check_age(timestamp: float, now: float, tolerance: int) -> None:
    skew = now - timestamp
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "far in the future"
        raise _reject(
            "stale_timestamp",
            401,
            f"the timestamp is {direction}: more than {tolerance} s from the receiver's clock",
        )


def _json_field(body: bytes, name: str) -> str | None:
    """A top-level string (or integer) field of a JSON object body, or None."""
    if body.lstrip()[:1] != b"{":
        return None
    try:
        value: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    found = value.get(name)
    if isinstance(found, str) and found:
        return found
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    return None


def _digest(signed: bytes) -> str:
    return hashlib.sha256(signed).hexdigest()


def _bad_signature() -> WebhookRejected:
    return _reject("bad_signature", 401, "the signature does not match any active secret")


# -- the schemes ---------------------------------------------------------------------------

_Verifier = Callable[[SchemeSettings, list[bytes], dict[str, str], bytes, float], Verified]


def _verify_standard(
    settings: SchemeSettings, keys: list[bytes], h: dict[str, str], body: bytes, now: float
) -> Verified:
    signature = h.get("webhook-signature")
    if not signature:
        raise _reject("missing_signature", 401, "the webhook-signature header is missing")
    msg_id = h.get("webhook-id")
    if not msg_id:
        raise _reject("missing_id", 400, "the webhook-id header is missing")
    raw_ts = h.get("webhook-timestamp")
    timestamp = _timestamp(raw_ts, "webhook-timestamp")
    assert raw_ts is not None
    candidates: list[bytes] = []
    for item in signature.split():
        version, _, value = item.partition(",")
        if version != "v1":
            continue  # v1a (ed25519) and future versions: not ours to check
        decoded = _unbase64(value)
        if decoded:
            candidates.append(decoded)
    if not candidates:
        raise _reject(
            "malformed_signature", 400, "webhook-signature has no v1,<base64> signature"
        )
    message = b"%s.%s.%s" % (msg_id.encode(), raw_ts.strip().encode(), body)
    if not _matches(keys, "sha256", message, candidates):
        raise _bad_signature()
    _check_age(timestamp, now, settings.tolerance_s)
    return Verified(msg_id, timestamp)


def _verify_stripe(
    settings: SchemeSettings, keys: list[bytes], h: dict[str, str], body: bytes, now: float
) -> Verified:
    header = h.get("stripe-signature")
    if not header:
        raise _reject("missing_signature", 401, "the Stripe-Signature header is missing")
    raw_ts: str | None = None
    candidates: list[bytes] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            raw_ts = value
        elif name == "v1":
            decoded = _unhex(value)
            if decoded:
                candidates.append(decoded)
    timestamp = _timestamp(raw_ts, "Stripe-Signature t=")
    if not candidates:
        raise _reject("malformed_signature", 400, "Stripe-Signature has no v1=<hex> signature")
    # Stripe's own library signs and checks the integer form of t.
    message = b"%d.%s" % (int(timestamp), body)
    if not _matches(keys, "sha256", message, candidates):
        raise _bad_signature()
    _check_age(timestamp, now, settings.tolerance_s)
    event_id = _json_field(body, "id")  # in the body: signed
    return Verified(event_id, timestamp, None if event_id else _digest(message))


def _verify_github(
    settings: SchemeSettings, keys: list[bytes], h: dict[str, str], body: bytes, now: float
) -> Verified:
    # Only the SHA-256 header: GitHub keeps X-Hub-Signature (SHA-1) for legacy receivers;
    # a source that only has that can use the generic scheme.
    header = h.get("x-hub-signature-256")
    if not header:
        raise _reject("missing_signature", 401, "the X-Hub-Signature-256 header is missing")
    algo, _, value = header.strip().partition("=")
    decoded = _unhex(value) if algo == "sha256" else None
    if not decoded:
        raise _reject(
            "malformed_signature", 400, "X-Hub-Signature-256 is not sha256=<hex>"
        )
    if not _matches(keys, "sha256", body, [decoded]):
        raise _bad_signature()
    # X-GitHub-Delivery is not signed: the body's digest tells a replay under a new one
    return Verified(h.get("x-github-delivery") or None, None, _digest(body))


def _verify_slack(
    settings: SchemeSettings, keys: list[bytes], h: dict[str, str], body: bytes, now: float
) -> Verified:
    header = h.get("x-slack-signature")
    if not header:
        raise _reject("missing_signature", 401, "the X-Slack-Signature header is missing")
    raw_ts = h.get("x-slack-request-timestamp")
    timestamp = _timestamp(raw_ts, "X-Slack-Request-Timestamp")
    assert raw_ts is not None
    version, _, value = header.strip().partition("=")
    decoded = _unhex(value) if version == "v0" else None
    if not decoded:
        raise _reject("malformed_signature", 400, "X-Slack-Signature is not v0=<hex>")
    message = b"v0:%s:%s" % (raw_ts.strip().encode(), body)
    if not _matches(keys, "sha256", message, [decoded]):
        raise _bad_signature()
    _check_age(timestamp, now, settings.tolerance_s)
    event_id = _json_field(body, "event_id")  # in the body: signed
    return Verified(event_id, timestamp, None if event_id else _digest(message))


def _verify_shopify(
    settings: SchemeSettings, keys: list[bytes], h: dict[str, str], body: bytes, now: float
) -> Verified:
    # Shopify's Events preview drops the X- prefix; both spellings carry the same MAC.
    header = h.get("x-shopify-hmac-sha256") or h.get("shopify-hmac-sha256")
    if not header:
        raise _reject("missing_signature", 401, "the X-Shopify-Hmac-Sha256 header is missing")
    decoded = _unbase64(header)
    if not decoded:
        raise _reject("malformed_signature", 400, "X-Shopify-Hmac-Sha256 is not base64")
    if not _matches(keys, "sha256", body, [decoded]):
        raise _bad_signature()
    # X-Shopify-Triggered-At is not signed, so it proves nothing about freshness: no
    # timestamp is reported and no tolerance applies.
    event_id = (
        h.get("x-shopify-webhook-id")
        or h.get("shopify-webhook-id")
        or h.get("x-shopify-event-id")
        or None
    )
    # neither id header is signed: the body's digest tells a replay under a new one
    return Verified(event_id, None, _digest(body))


def _verify_hmac(
    settings: SchemeSettings, keys: list[bytes], h: dict[str, str], body: bytes, now: float
) -> Verified:
    assert settings.header is not None  # the model validator requires it
    header = h.get(settings.header.lower())
    if not header:
        raise _reject("missing_signature", 401, f"the {settings.header} header is missing")
    value = header.strip()
    if not value.startswith(settings.prefix):
        raise _reject(
            "malformed_signature", 400, f"{settings.header} does not start with the prefix"
        )
    value = value[len(settings.prefix) :]
    decoded = _unhex(value) if settings.encoding == "hex" else _unbase64(value)
    if not decoded:
        raise _reject(
            "malformed_signature", 400, f"{settings.header} is not {settings.encoding}"
        )
    raw_ts: str | None = None
    timestamp: float | None = None
    if settings.timestamp_header:
        raw_ts = h.get(settings.timestamp_header.lower())
        timestamp = _timestamp(raw_ts, settings.timestamp_header)
        assert raw_ts is not None
        raw_ts = raw_ts.strip()
    event_id = h.get(settings.id_header.lower()) if settings.id_header else None
    parts = _parse_template(settings.signed_content)
    if event_id is None and any(kind == "id" for kind, _ in parts):
        raise _reject("missing_id", 400, f"the {settings.id_header} header is missing")
    message = _render(parts, body, raw_ts, event_id, h.get)
    if not _matches(keys, settings.algorithm, message, [decoded]):
        raise _bad_signature()
    if timestamp is not None:
        _check_age(timestamp, now, settings.tolerance_s)
    id_signed = bool(event_id) and any(kind == "id" for kind, _ in parts)
    return Verified(event_id or None, timestamp, None if id_signed else _digest(message))


_VERIFIERS: dict[str, _Verifier] = {
    "standard": _verify_standard,
    "stripe": _verify_stripe,
    "github": _verify_github,
    "slack": _verify_slack,
    "shopify": _verify_shopify,
    "hmac": _verify_hmac,
}


# -- public functions ----------------------------------------------------------------------


def verify(
    settings: SchemeSettings,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
) -> Verified:
    """Checks one request's signature (and timestamp) against the active ``secrets``.

    ``headers`` are matched case-insensitively; ``body`` must be the raw bytes received,
    before any parsing. ``now`` is the receiver's clock in Unix seconds (a parameter so
    tests and replays are deterministic). Raises :class:`WebhookRejected`.
    """
    if isinstance(secrets, str):
        # A lone string is a Sequence[str] too: each character would become a "secret".
        raise TypeError("secrets must be a sequence of secrets, not one string")
    keys = _keys(settings.scheme, secrets)
    return _VERIFIERS[settings.scheme](settings, keys, _lower(headers), body, now)


def handshake(
    settings: SchemeSettings,
    method: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
) -> tuple[int, str, bytes] | None:
    """The response ``(status, content type, body)`` to give instead of ingesting, or None.

    - ``GET ?hub.mode=subscribe&hub.challenge=X`` (WebSub, Meta and similar): echoes ``X``.
      Such a GET is unsigned by design; ``hub.verify_token`` is not checked because the
      echo grants nothing: every event that follows must still pass :func:`verify`.
    - Slack ``url_verification`` (a JSON body with ``type`` and ``challenge``): echoes the
      challenge. Slack signs this request like any other, so **the caller must call
      :func:`verify` first** and only answer the handshake once it passes; otherwise
      anybody could get a URL "verified" by us.

    ``headers`` are accepted for symmetry with :func:`verify` and future handshakes.
    """
    verb = method.upper()
    if verb == "GET":
        if query.get("hub.mode") != "subscribe":
            return None
        challenge = query.get("hub.challenge")
        if (
            not challenge
            or len(challenge) > _MAX_CHALLENGE
            or not challenge.isascii()
            or not challenge.isprintable()
        ):
            return None
        return 200, "text/plain", challenge.encode()
    if verb == "POST" and settings.scheme == "slack" and body.lstrip()[:1] == b"{":
        try:
            value: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict) or value.get("type") != "url_verification":
            return None
        challenge = value.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            return None
        return 200, "text/plain", challenge.encode()
    return None


def sign(
    settings: SchemeSettings,
    secret: str,
    body: bytes,
    *,
    timestamp: float,
    event_id: str,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers a sender of this scheme adds to a request carrying ``body``.

    Used by the sandbox, tests and benchmarks. ``timestamp`` is truncated to whole seconds
    (every scheme here signs integers). ``headers`` are the request's other headers, read
    only for ``{header:Name}`` in a generic template (they are not returned). Raises
    ValueError for an unusable secret or a ``{header:Name}`` that is nowhere to be found.
    """
    key = _key(settings.scheme, secret)
    if key is None:
        raise ValueError(f"the secret is not usable for scheme {settings.scheme!r}")
    ts = int(timestamp)
    scheme = settings.scheme
    if scheme == "standard":
        mac = hmac.digest(key, b"%s.%d.%s" % (event_id.encode(), ts, body), "sha256")
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        }
    if scheme == "stripe":
        mac = hmac.digest(key, b"%d.%s" % (ts, body), "sha256")
        return {"Stripe-Signature": f"t={ts},v1={mac.hex()}"}
    if scheme == "github":
        return {
            "X-Hub-Signature-256": "sha256=" + hmac.digest(key, body, "sha256").hex(),
            "X-GitHub-Delivery": event_id,
        }
    if scheme == "slack":
        mac = hmac.digest(key, b"v0:%d:%s" % (ts, body), "sha256")
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": "v0=" + mac.hex()}
    if scheme == "shopify":
        triggered = datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
        return {
            "X-Shopify-Hmac-Sha256": base64.b64encode(
                hmac.digest(key, body, "sha256")
            ).decode(),
            "X-Shopify-Webhook-Id": event_id,
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Triggered-At": triggered,
        }
    return _sign_hmac(settings, key, body, ts, event_id, headers or {})


def _sign_hmac(
    settings: SchemeSettings,
    key: bytes,
    body: bytes,
    ts: int,
    event_id: str,
    others: Mapping[str, str],
) -> dict[str, str]:
    assert settings.header is not None
    headers: dict[str, str] = {}
    if settings.timestamp_header:
        headers[settings.timestamp_header] = str(ts)
    if settings.id_header:
        headers[settings.id_header] = event_id
    available = {**_lower(others), **_lower(headers)}

    def header(name: str) -> str | None:
        found = available.get(name)
        if found is None:
            raise ValueError(f"{{header:{name}}} is signed but not among the headers given")
        return found

    message = _render(
        _parse_template(settings.signed_content), body, str(ts), event_id, header
    )
    mac = hmac.digest(key, message, settings.algorithm)
    encoded = mac.hex() if settings.encoding == "hex" else base64.b64encode(mac).decode()
    headers[settings.header] = settings.prefix + encoded
    return headers
