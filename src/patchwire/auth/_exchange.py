"""Two-step token exchange: POST a connection's credentials, use the token answered.

Many APIs (63 of the 981 in Nango's provider list) have no OAuth2 but a login endpoint:
``POST /auth {"api_key": ..., "secret": ...}`` → ``{"token": ..., "expires_in": 3600}``.
:class:`TokenExchangeClient` makes that request from the connector's templates, through
the HTTP core (SSRF guard, timeouts, one attempt, a bounded answer), and reads the token
and its expiry with JSONata. The token keeper (``_keeper.py``) caches what it returns and
renews it ahead of expiry, single-flight across coroutines and processes, as it does for
OAuth2.

Errors name the endpoint, the status and the field; never a credential or the token (the
upstream's words are redacted of every secret of the connection before being shown).
"""

from __future__ import annotations

import math
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from patchwire.auth._schemes import _fill
from patchwire.auth._tokens import TokenSet
from patchwire.connectors import MISSING, compile_template, host_setting_problem
from patchwire.connectors.spec import SettingSpec, Timeouts, TokenExchangeAuth
from patchwire.errors import CallContext, CallError, OAuthError
from patchwire.expressions import ExpressionError, compile_expression
from patchwire.http import HttpCore, PreparedRequest, Redactor, excerpt

__all__ = ["MAX_EXCHANGE_RESPONSE_BYTES", "TokenExchangeClient"]

#: the longest answer of a token endpoint read
MAX_EXCHANGE_RESPONSE_BYTES = 1024 * 1024
#: the longest token accepted (a header line must stay sane)
MAX_TOKEN_CHARS = 16 * 1024
#: characters a header value cannot carry (the token goes into one)
_BREAKS = re.compile(r"[\r\n\0]")


class TokenExchangeClient:
    """The token request of one connection of a ``type: token_exchange`` connector.

    ``values``: the connection's merged settings and secrets; ``base_url``: the connector's
    base URL template (a ``request.url`` starting with ``/`` is under it); ``clock``:
    epoch seconds (fake in tests).
    """

    def __init__(
        self, spec: TokenExchangeAuth, values: Mapping[str, Any], *, http: HttpCore,
        base_url: str, timeouts: Timeouts | None = None, connection: str | None = None,
        clock: Callable[[], float] = time.time,
        settings: Mapping[str, SettingSpec] | None = None,
        tls: ssl.SSLContext | None = None, secrets: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self._values = values
        self._http = http
        self._timeouts = timeouts or Timeouts()
        self.connection = connection
        self._clock = clock
        self._tls = tls
        self._secrets = [s for s in secrets if s]
        template = spec.request.url
        if template.startswith("/"):
            template = base_url.rstrip("/") + template
        # a setting moving the host (e.g. "127.0.0.1:8080/steal?") would send the
        # credentials elsewhere: the same rule as base_url and OAuth2's token_url
        problem = host_setting_problem(template, values, settings or {},
                                       where="the token exchange url")
        if problem is not None:
            raise OAuthError(problem[1], error="invalid_setting", connection=connection)
        self.url = _fill(template, values) if "{" in template else template
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OAuthError("the token exchange url is not an absolute http(s) URL",
                             error="invalid_setting", connection=connection)

    def __repr__(self) -> str:
        return f"TokenExchangeClient(url={self.url!r}, connection={self.connection!r})"

    async def renew(self, previous: TokenSet | None) -> TokenSet:
        """A new token for the connection's credentials (``previous`` is not needed: the
        credentials themselves are presented each time)."""
        del previous
        request = self.spec.request
        headers = {"Accept": "application/json"}
        for name, value in request.headers.items():
            text = _fill(value, self._values)
            if _BREAKS.search(text):
                raise OAuthError(f"header {name!r} of the token exchange would carry a line "
                                 "break (check the connection's settings)",
                                 error="invalid_setting", connection=self.connection)
            headers[name] = text
        data: bytes | None = None
        if request.body is not None:
            body = _render(request.body, self._values)
            if request.body_type == "form":
                if not isinstance(body, dict):
                    raise OAuthError("a form body must be a mapping", error="invalid_setting",
                                     connection=self.connection)
                data = urlencode([(str(k), _text(v)) for k, v in body.items()
                                  if v is not None]).encode()
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            else:
                data = orjson.dumps(body)
                headers.setdefault("Content-Type", "application/json")
        # the secrets, and what the header templates made of them (`Basic base64(...)`)
        redact = Redactor([*self._secrets, *(headers[name] for name in request.headers)])
        req = PreparedRequest(request.method, self.url, headers=headers, data=data,
                              idempotent=False, tls=self._tls)
        context = CallContext(connection=self.connection, method=request.method, url=self.url)
        now = self._clock()
        try:
            raw = await self._http.exchange(
                req, self._http.limits(self._timeouts, MAX_EXCHANGE_RESPONSE_BYTES),
                context=context)
        except CallError as exc:
            raise OAuthError(f"token exchange with {self.url} failed: {redact(exc.message)}",
                             error="transport", connection=self.connection) from None
        if raw.status >= 400:
            shown = excerpt(raw.body, redact, 300) if raw.body else "no body"
            raise OAuthError(
                f"token exchange with {self.url} answered HTTP {raw.status}: {shown}",
                error=f"http_{raw.status}", status=raw.status, connection=self.connection)
        try:
            parsed = orjson.loads(raw.body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise self._unusable("the answer is not a JSON object", raw.status)
        return self._tokens(parsed, now, raw.status)

    def _tokens(self, body: dict[str, Any], now: float, status: int) -> TokenSet:
        answer = self.spec.response
        token = self._read(answer.token, body, "token", status)
        if not isinstance(token, str) or not token:
            raise self._unusable("it holds no token (response.token gave no text)", status)
        if len(token) > MAX_TOKEN_CHARS or _BREAKS.search(token):
            raise self._unusable("the token is too long or holds line breaks", status)
        expires_at: float | None = None
        if answer.expires_at is not None:
            value = self._read(answer.expires_at, body, "expires_at", status)
            if value is not None:
                expires_at = _instant(value)
                if expires_at is None:
                    raise self._unusable("expires_at is neither epoch seconds nor an "
                                         "ISO 8601 time", status)
        if expires_at is None and answer.expires_in is not None:
            value = self._read(answer.expires_in, body, "expires_in", status)
            if value not in (None, ""):
                seconds = _number(value)
                if seconds is None or seconds < 0:
                    raise self._unusable("expires_in is not a number of seconds", status)
                expires_at = now + seconds
        if expires_at is None and answer.lifetime is not None:
            expires_at = now + answer.lifetime
        # no expiry said: the token is used until an upstream refuses it (refresh_on_status)
        return TokenSet(token, None, expires_at, None, "Bearer")

    def _read(self, expression: str, body: dict[str, Any], name: str, status: int) -> Any:
        try:
            return compile_expression(expression).evaluate(body)
        except ExpressionError:
            raise self._unusable(f"response.{name} could not be evaluated on it",
                                 status) from None

    def _unusable(self, why: str, status: int) -> OAuthError:
        return OAuthError(f"token exchange with {self.url} sent an unusable answer: {why}",
                          error="invalid_response", status=status, connection=self.connection)


def _render(value: Any, values: Mapping[str, Any]) -> Any:
    """A body template filled: a string that is one placeholder keeps its value's type."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        out = compile_template(value).render(values)
        if out is MISSING or out is None or out == "":
            return _fill(value, values)  # raises MissingCredential naming the setting
        return out
    if isinstance(value, dict):
        return {str(k): _render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, values) for v in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _instant(value: Any) -> float | None:
    """Epoch seconds (or milliseconds, as some APIs send) or an ISO 8601 time."""
    number = _number(value)
    if number is not None:
        if number <= 0:
            return None
        return number / 1000 if number > 1e11 else number
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None  # a local time of the upstream's: unknowable here
        return moment.timestamp()
    return None
