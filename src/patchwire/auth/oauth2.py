"""OAuth2 for connections: authorize URLs, the token client and the refresh keeper.

* :class:`OAuth2Client` talks to one connector's token endpoint for one connection's
  values: client credentials (RFC 6749 §4.4), authorization code with PKCE (§4.1, RFC 7636)
  and refresh (§6). Requests go through :class:`~patchwire.http.HttpCore`, the one place
  Patchwire talks HTTP, with the connector's timeouts.
* :class:`~patchwire.auth.TokenKeeper` (``_keeper.py``) keeps a connection's tokens
  fresh: proactive refresh before expiry, forced refresh after a 401, single-flight within
  a process and across processes sharing the store.

Nothing here logs or raises a token, code, verifier or client secret: errors carry the
RFC 6749 error code, the HTTP status and a redacted description.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import math
import ssl
import time
import unicodedata
from base64 import b64encode
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import orjson

from patchwire.auth._device import (
    DEFAULT_DEVICE_WAIT,
    DEVICE_CODE_GRANT,
    MAX_DEVICE_POLLS,
    DeviceAuthorization,
)
from patchwire.auth._jwt import JWT_BEARER_GRANT, AssertionProblem, sign_assertion
from patchwire.auth._pkce import PkcePair, code_challenge, new_code_verifier, new_state
from patchwire.auth._schemes import MissingCredential, _fill
from patchwire.auth._tokens import TokenResponseError, TokenSet, parse_token_response
from patchwire.connectors import compile_template, host_setting_problem
from patchwire.connectors.spec import (
    AUTHORIZE_PARAMS_OF_THE_FLOW,
    TOKEN_FIELDS_OF_THE_FLOW,
    OAuth2Auth,
    SettingSpec,
    Timeouts,
)
from patchwire.errors import CallContext, CallError, OAuthError, ReauthRequired
from patchwire.expressions import ExpressionError, compile_expression
from patchwire.http import HttpCore, PreparedRequest, RawResponse, Redactor

__all__ = [
    "REAUTH_ERRORS",
    "DeviceAuthorization",
    "OAuth2Client",
    "PkcePair",
    "TokenSet",
    "code_challenge",
    "new_authorization",
    "new_code_verifier",
    "new_state",
]

#: error codes after which retrying the same grant cannot succeed: a person must act
REAUTH_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})

#: token requests are not retried on 5xx: a refresh token the server already rotated
#: would be presented twice and could revoke the whole token family (reuse detection);
#: so they are sent as one exchange (``HttpCore.exchange``: one attempt).

#: the longest token endpoint answer read
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
#: the longest access or refresh token kept (it goes into a header line)
MAX_TOKEN_CHARS = 16 * 1024
#: the longest value a token response or callback may give a connection setting
MAX_LEARNED_SETTING = 2048
#: what a placeholder in the path of a token or authorize URL cannot hold: it would make
#: the request go to another path of the provider (``..``, ``/``) or carry other parameters
_NOT_IN_A_SEGMENT = frozenset("/?#\\@%")


class OAuth2Client:
    """Token requests for one connection of a connector with ``type: oauth2`` auth.

    ``values`` are the connection's merged settings and secrets (what templates such as
    ``client_id: "{client_id}"`` are filled from); ``settings``, the connector's setting
    declarations, give the ``enum`` a setting in the token URL's host may declare.
    ``clock`` gives epoch seconds; tests pass a fake one so expiry is deterministic.
    """

    def __init__(
        self,
        spec: OAuth2Auth,
        values: Mapping[str, Any],
        *,
        http: HttpCore,
        timeouts: Timeouts | None = None,
        connection: str | None = None,
        clock: Callable[[], float] = time.time,
        settings: Mapping[str, SettingSpec] | None = None,
        tls: ssl.SSLContext | None = None,
        base_url: str | None = None,
    ) -> None:
        self.spec = spec
        self._values = values
        self._http = http
        self._timeouts = timeouts or Timeouts()
        self.connection = connection
        self._clock = clock
        self._settings: Mapping[str, SettingSpec] = settings or {}
        #: the connector's base URL template: a setting learned from a token response or
        #: a callback is checked against every URL it fills
        self._base_url = base_url
        #: the connection's client certificate, presented to the token endpoint too
        self._tls = tls
        if spec.flow == "jwt_bearer" and not spec.client_id:
            self.client_id = ""  # the signed assertion identifies the client (RFC 7523 §3.1)
        else:
            self.client_id = _fill(spec.client_id, values)
        try:
            self._client_secret: str | None = _fill(spec.client_secret, values)
        except MissingCredential:
            self._client_secret = None  # a public client: PKCE protects the code instead
        for template, where in ((spec.token_url, "the token_url"),
                                (spec.authorize_url, "the authorize_url"),
                                (spec.device_authorization_url,
                                 "the device_authorization_url")):
            if not template or "{" not in template:
                continue
            # a tenant of "127.0.0.1:8080/steal?" would send the client secret (and codes)
            # elsewhere; ``settings`` supplies each setting's enum, if it declares one
            problem = host_setting_problem(template, values, settings or {}, where=where)
            if problem is None:
                problem = _path_setting_problem(template, values, settings or {}, where)
            if problem is not None:
                raise OAuthError(problem[1], error="invalid_setting", connection=connection)
        self.token_url = _render_url(spec.token_url, values)
        self.authorize_url = (
            _render_url(spec.authorize_url, values) if spec.authorize_url else None
        )
        self.device_authorization_url = (
            _render_url(spec.device_authorization_url, values)
            if spec.device_authorization_url else None
        )

    def __repr__(self) -> str:
        return f"OAuth2Client(token_url={self.token_url!r}, connection={self.connection!r})"

    def with_values(self, extra: Mapping[str, Any]) -> OAuth2Client:
        """This client with some values replaced (settings a callback taught): its URLs
        are rendered, and checked, again."""
        return OAuth2Client(self.spec, {**self._values, **extra}, http=self._http,
                            timeouts=self._timeouts, connection=self.connection,
                            clock=self._clock, settings=self._settings, tls=self._tls,
                            base_url=self._base_url)

    @property
    def scope(self) -> str | None:
        return self.spec.scope_separator.join(self.spec.scopes) if self.spec.scopes else None

    # -- authorization code ------------------------------------------------------------

    def authorization_url(
        self, *, redirect_uri: str, state: str, pkce: PkcePair | None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """The URL a person opens to grant access (RFC 6749 §4.1.1, RFC 7636 §4.3).

        Parameters the authorize URL already has (``?audience=...``) are kept.
        """
        if self.authorize_url is None:
            raise OAuthError(
                f"this connector uses the {self.spec.flow} flow: there is no authorize URL",
                error="invalid_request", connection=self.connection,
            )
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
        }
        if self.scope:
            params["scope"] = self.scope
        if pkce is not None:
            params["code_challenge"] = pkce.challenge
            params["code_challenge_method"] = pkce.method
        # the connector's extra parameters never replace the flow's (the spec refuses
        # them at load; a spec built in code is held to the same rule here)
        for key, value in self._filled(self.spec.authorize_params, "authorize_params").items():
            if key.strip().lower() not in AUTHORIZE_PARAMS_OF_THE_FLOW:
                params[key] = value
        params.update(extra or {})
        parts = urlsplit(self.authorize_url)
        query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None
    ) -> TokenSet:
        """Trade an authorization code (and its PKCE verifier) for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return await self._token_request(form, extra_secrets=(code, code_verifier or ""))

    def callback_settings(self, query: Mapping[str, str]) -> dict[str, str]:
        """The connection settings ``settings_from_callback`` takes from the callback's
        query (an object of strings), each checked against the setting's rules; an
        unusable one is an OAuthError naming the setting. Settings the query does not
        give are left out (the connection keeps what it has)."""
        query = {str(k): str(v) for k, v in query.items()}
        return self._learned(self.spec.settings_from_callback, query, "the callback")

    # -- client credentials and refresh -----------------------------------------------

    async def client_credentials(self) -> TokenSet:
        """A token for the client itself (RFC 6749 §4.4); there is no refresh token."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return await self._token_request(form)

    async def refresh(self, previous: TokenSet) -> TokenSet:
        """New tokens from ``previous.refresh_token`` (RFC 6749 §6).

        A refused grant raises :class:`ReauthRequired`; other failures :class:`OAuthError`.
        """
        if not previous.refresh_token:
            raise ReauthRequired(
                "there is no refresh token to renew the access token with",
                error="no_refresh_token", connection=self.connection,
            )
        form = {"grant_type": "refresh_token", "refresh_token": previous.refresh_token}
        return await self._token_request(
            form, previous=previous, extra_secrets=(previous.access_token,), refreshing=True
        )

    # -- password and JWT bearer --------------------------------------------------------

    async def password_grant(self) -> TokenSet:
        """Tokens for the connection's username and password (RFC 6749 §4.3)."""
        assert self.spec.username is not None and self.spec.password is not None
        password = _fill(self.spec.password, self._values)
        form = {"grant_type": "password", "username": _fill(self.spec.username, self._values),
                "password": password}
        if self.scope:
            form["scope"] = self.scope
        return await self._token_request(form, extra_secrets=(password,))

    async def jwt_bearer(self) -> TokenSet:
        """A token for a signed JWT assertion (RFC 7523 §2.1), made afresh for each request;
        the JWT's lifetime does not bound the token's."""
        assert self.spec.assertion is not None
        try:
            signed = sign_assertion(self.spec.assertion, self._values,
                                    token_url=self.token_url, scope=self.scope,
                                    now=self._clock())
        except AssertionProblem as exc:
            raise OAuthError(f"cannot make the JWT assertion: {exc}", error="invalid_setting",
                             connection=self.connection) from None
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": signed.token}
        if self.scope and self.spec.assertion.scope_in == "form":
            form["scope"] = self.scope
        return await self._token_request(form, extra_secrets=(signed.token, *signed.secrets))

    # -- device authorization (RFC 8628) ------------------------------------------------

    async def device_authorization(self) -> DeviceAuthorization:
        """Ask for a device code and the user code a person enters (RFC 8628 §3.1-3.2)."""
        if self.device_authorization_url is None:
            raise OAuthError("this connector declares no device_authorization_url",
                             error="invalid_request", connection=self.connection)
        form = {"client_id": self.client_id}
        if self.scope:
            form["scope"] = self.scope
        raw, body, redact = await self._post(self.device_authorization_url, form, ())
        if raw.status >= 400 or body is None:
            raise self._error(raw, body, redact, False, url=self.device_authorization_url)
        try:
            return DeviceAuthorization.from_response(body, now=self._clock())
        except ValueError as exc:
            raise OAuthError(
                f"device authorization endpoint {self.device_authorization_url} sent an "
                f"unusable response: {exc}", error="invalid_response", status=raw.status,
                connection=self.connection) from None

    async def poll_device_token(
        self, device: DeviceAuthorization, *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = DEFAULT_DEVICE_WAIT,
    ) -> TokenSet:
        """Poll the token endpoint until the person approved (RFC 8628 §3.4-3.5): every
        ``interval`` seconds, 5 more after each ``slow_down``; bounded by the code's expiry
        and ``max_wait`` (by this client's clock). ``sleep`` waits (a fake one in tests)."""
        interval = device.interval
        deadline = min(device.expires_at, self._clock() + max_wait)
        form = {"grant_type": DEVICE_CODE_GRANT, "device_code": device.device_code}
        for _ in range(MAX_DEVICE_POLLS):
            if self._clock() + interval > deadline:
                break
            await sleep(interval)
            try:
                return await self._token_request(form, extra_secrets=(device.device_code,))
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5.0  # RFC 8628 §3.5: for this and every later request
                    continue
                raise
        raise OAuthError("nobody approved the device code before it expired",
                         error="expired_token", connection=self.connection)

    async def renew(self, previous: TokenSet | None) -> TokenSet:
        """Whatever this flow does to get a fresh access token: refresh, or a new token
        for the client's own credentials (client credentials, JWT bearer: no refresh
        tokens) or the connection's password (after trying its refresh token)."""
        flow = self.spec.flow
        if flow == "client_credentials":
            return await self.client_credentials()
        if flow == "jwt_bearer":
            return await self.jwt_bearer()
        if flow == "password":
            if previous is not None and previous.refresh_token:
                try:
                    return await self.refresh(previous)
                except OAuthError:
                    pass  # the password is still at hand: a refused refresh costs nothing
            return await self.password_grant()
        if previous is None:
            how = ("`patchwire connection add` (it shows a code to enter)"
                   if flow == "device_code" else "`patchwire connection connect`")
            raise ReauthRequired(
                f"the connection has no tokens yet: authorise it with {how}",
                error="no_tokens", connection=self.connection,
            )
        return await self.refresh(previous)

    # -- the request -------------------------------------------------------------------

    async def _post(self, url: str, form: dict[str, str], extra_secrets: tuple[str, ...]
                    ) -> tuple[RawResponse, dict[str, Any] | None, Redactor]:
        """POST ``form`` with the client's authentication: (answer, its parsed body, a
        redactor of every secret involved)."""
        headers = {"Accept": "application/json"}
        if self._client_secret is not None and self.spec.client_auth == "basic":
            # client_secret_basic: the method every server must support (RFC 6749 §2.3.1),
            # with both parts form-encoded first as that section requires
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode("ascii")
        elif self._client_secret is not None:
            # client_secret_post (RFC 6749 §2.3.1's alternative), for the providers that
            # accept nothing else
            form = {**form, "client_id": self.client_id, "client_secret": self._client_secret}
        elif self.client_id:
            form = {**form, "client_id": self.client_id}
        # the Basic credentials too: an endpoint echoing the header must not show them
        basic = headers.get("Authorization", "").removeprefix("Basic ")
        redact = Redactor(
            s for s in (self._client_secret or "", form.get("refresh_token", ""), basic,
                        *extra_secrets) if s
        )
        req = PreparedRequest("POST", url, headers=headers, data=form,
                              idempotent=False, tls=self._tls)
        context = CallContext(connection=self.connection, method="POST", url=url)
        try:
            # one attempt (never retried, see above), and a bounded answer: a token
            # response is small, an endpoint streaming megabytes is cut off
            raw = await self._http.exchange(
                req, self._http.limits(self._timeouts, MAX_TOKEN_RESPONSE_BYTES),
                context=context)
        except CallError as exc:
            raise OAuthError(
                f"token request to {url} failed: {redact(exc.message)}",
                error="transport", connection=self.connection,
            ) from None
        return raw, _parse_body(raw), redact

    async def _token_request(
        self, form: dict[str, str], *, previous: TokenSet | None = None,
        extra_secrets: tuple[str, ...] = (), refreshing: bool = False,
    ) -> TokenSet:
        now = self._clock()
        # the connector's extra fields first: the grant's own always win (the spec also
        # refuses token_params naming them)
        form = {**{k: v for k, v in self._filled(self.spec.token_params, "token_params").items()
                   if k.strip().lower() not in TOKEN_FIELDS_OF_THE_FLOW}, **form}
        raw, body, redact = await self._post(self.token_url, form, extra_secrets)
        if raw.status >= 400 or body is None:
            raise self._error(raw, body, redact, refreshing)
        try:
            fields = self._token_fields(body)
            if "access_token" not in fields and isinstance(body.get("error"), str):
                # an error answered with 200, as Slack does ({"ok": false, "error": ...})
                raise self._error(raw, body, redact, refreshing)
            tokens = parse_token_response(fields, now=now, previous=previous)
            for name in ("access_token", "refresh_token"):
                value = getattr(tokens, name)
                if value is not None and (len(value) > MAX_TOKEN_CHARS
                                          or _has_control(value)):
                    raise TokenResponseError(f"{name} is too long or holds control "
                                             "characters")
        except TokenResponseError as exc:
            raise OAuthError(
                f"token endpoint {self.token_url} sent an unusable response: {exc}",
                error="invalid_response", status=raw.status, connection=self.connection,
            ) from None
        learned = self._learned(self.spec.settings_from_token, body, "the token response",
                                status=raw.status)
        return dataclasses.replace(tokens, settings=learned) if learned else tokens

    def _token_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """The RFC 6749 §5.1 fields of a token response, read where ``token_fields`` says
        (JSONata over the response; absent: the top-level field of that name)."""
        where = self.spec.token_fields
        if where is None:
            return body
        out: dict[str, Any] = {}
        for name, expression in where.model_dump().items():
            value = (self._evaluate(expression, body, f"token_fields.{name}")
                     if expression is not None else body.get(name))
            if value is not None:
                out[name] = value
        return out

    def _evaluate(self, expression: str, data: Any, what: str) -> Any:
        try:
            return compile_expression(expression).evaluate(data)
        except ExpressionError:
            # the expression's message may quote the answer: name the field only
            raise TokenResponseError(f"{what} could not be evaluated on it") from None

    def _filled(self, templates: Mapping[str, str], what: str) -> dict[str, str]:
        try:
            return {key: _fill(value, self._values) if "{" in value else value
                    for key, value in templates.items()}
        except MissingCredential as exc:
            raise OAuthError(
                f"the connection has no value for setting {exc.setting!r}, which the "
                f"connector's {what} need", error="missing_setting",
                connection=self.connection) from None

    def _learned(self, expressions: Mapping[str, str], data: Any, source: str, *,
                 status: int | None = None) -> dict[str, str]:
        """Settings taken from ``data`` (a token response, a callback's query), each
        checked with the connector's rules for that setting before anything uses it."""
        out: dict[str, str] = {}
        for name, expression in expressions.items():
            try:
                value = compile_expression(expression).evaluate(data)
            except ExpressionError:
                raise self._refused(name, source, "its expression could not be evaluated "
                                    "on it", status) from None
            if value is None:
                continue  # not given this time: the connection keeps what it has
            problem = self._setting_problem(name, value)
            if problem is not None:
                raise self._refused(name, source, problem, status)
            out[name] = _as_text(value)
        return out

    def _refused(self, name: str, source: str, why: str, status: int | None) -> OAuthError:
        return OAuthError(f"{source} gave setting {name!r} a value Patchwire refuses: {why}",
                          error="invalid_setting", status=status, connection=self.connection)

    def _setting_problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` cannot be connection setting ``name`` (None: it can). The same
        rules as a value a person gives (enum, a host's label), and for a setting that is
        a URL's whole origin, an http(s) origin on the token endpoint's own site."""
        if isinstance(value, bool) or not isinstance(value, str | int | float) or (
                isinstance(value, float) and not math.isfinite(value)):
            return "it is not text"
        text = _as_text(value)
        if not text or len(text) > MAX_LEARNED_SETTING or _has_control(text):
            return (f"it must be one line of 1 to {MAX_LEARNED_SETTING} characters without "
                    "control characters")
        spec = self._settings.get(name)
        if spec is not None and spec.enum is not None:
            return None if text in spec.enum else (
                f"it must be one of {', '.join(map(repr, spec.enum))}")
        templates = [(t, w) for t, w in ((self._base_url, "the base_url"),
                                         (self.spec.token_url, "the token_url"),
                                         (self.spec.authorize_url, "the authorize_url"))
                     if t]
        values = {name: text}
        for template, where in templates:
            found = host_setting_problem(template, values, self._settings, where=where)
            if found is None:
                found = _path_setting_problem(template, values, self._settings, where)
            if found is not None:
                return found[1]  # a secret setting's value is not shown in it
            if _leads(template, name):
                problem = _origin_problem(text, self.token_url)
                if problem is not None:
                    return problem
        return None

    def _error(
        self, raw: RawResponse, body: dict[str, Any] | None, redact: Redactor, refreshing: bool,
        url: str | None = None,
    ) -> OAuthError:
        code = body.get("error") if body else None
        if not isinstance(code, str) or not code:
            code = f"http_{raw.status}" if raw.status >= 400 else "invalid_response"
        description = body.get("error_description") if body else None
        detail = f": {redact(str(description))[:300]}" if description else ""
        message = (
            f"{'token endpoint' if url is None else 'endpoint'} {url or self.token_url} "
            f"answered HTTP {raw.status} {redact(code)[:100]}{detail}"
        )
        kind = ReauthRequired if refreshing and code in REAUTH_ERRORS else OAuthError
        return kind(message, error=code, status=raw.status, connection=self.connection)


def _render_url(template: str, values: Mapping[str, Any]) -> str:
    """Token and authorize URLs may name settings (``https://{subdomain}.example.com``)."""
    if "{" not in template:
        return template
    return _fill(template, values)


def _leads(template: str, name: str) -> bool:
    """True when ``template`` starts with setting ``name``: it is the URL's whole origin."""
    names = compile_template(template).names
    return bool(names) and names[0] == name and template.lstrip().startswith("{" + name)


def _path_setting_problem(
    template: str, values: Mapping[str, Any], settings: Mapping[str, SettingSpec], where: str,
) -> tuple[str, str] | None:
    """(setting, message) for a value that would change the path or query of a token or
    authorize URL it fills (Microsoft's ``/{tenant}/oauth2/v2.0/token``): one path
    segment, never ``..``. The origin-filling first placeholder of ``{url}/token`` is
    the host rules' business."""
    for name in compile_template(template).names:
        root = name.split(".", 1)[0]
        value = values.get(root)
        if value is None or _leads(template, root):
            continue
        text = _as_text(value)
        if text in (".", "..") or _has_control(text) or any(c in _NOT_IN_A_SEGMENT
                                                           for c in text):
            spec = settings.get(root)
            shown = ("a value that is not" if spec is not None and spec.secret
                     else repr(text[:80]))
            return root, (f"setting {root!r} fills part of {where}, so it must be one path "
                          f"segment (no '/', '?', '#', '\\', '@', '%', control characters, "
                          f"nor '.' or '..'); got {shown}")
    return None


def _origin_problem(text: str, token_url: str) -> str | None:
    """Why ``text`` cannot be the origin of the connector's URLs, learned from the token
    endpoint or a callback: not an http(s) origin, a downgrade from the token endpoint's
    https, or a host outside the token endpoint's site (a hostile answer must not send
    the connection's calls, and their token, anywhere it likes)."""
    if any(c in text for c in "\\@?#") or text.strip() != text:
        return "it must be an http(s) origin (no userinfo, query or fragment)"
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return "it must be an absolute http(s) URL"
    token = urlsplit(token_url)
    if parts.scheme == "http" and token.scheme == "https":
        return "it must be an https URL (the token endpoint is https)"
    if _site(parts.hostname) != _site(token.hostname or ""):
        return (f"its host must be on the token endpoint's site ({_site(token.hostname or '')}"
                "); declare the setting's enum to allow others")
    return None


def _site(host: str) -> str:
    """A host's site: an IP address itself, else its last two DNS labels (no public suffix
    list here: ``example.co.uk`` counts as ``co.uk``, looser, never stricter)."""
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ".".join(host.split(".")[-2:])


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a realmId sent as a JSON number
    return str(value)


def _parse_body(raw: RawResponse) -> dict[str, Any] | None:
    """JSON as RFC 6749 §5.1 says; form encoding as some older providers still send."""
    ctype = raw.headers.get("Content-Type", "")
    if "application/x-www-form-urlencoded" in ctype or "text/plain" in ctype:
        pairs = parse_qsl(raw.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        if pairs:
            return dict(pairs)
    try:
        value = orjson.loads(raw.body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def new_authorization(
    client: OAuth2Client, redirect_uri: str
) -> tuple[str, str, PkcePair | None]:
    """A fresh (authorize URL, state, PKCE pair) for ``client`` (PKCE when the spec says)."""
    state = new_state()
    pkce = PkcePair.new() if client.spec.pkce else None
    return client.authorization_url(redirect_uri=redirect_uri, state=state, pkce=pkce), state, pkce
