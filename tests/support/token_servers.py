"""Loopback upstreams for the token-acquiring auth modes (tests/auth/): a login endpoint
for two-step token exchange, a token endpoint checking RFC 7523 assertions with PyJWT,
an RFC 8628 device authorization server, and a PKI made with ``cryptography``.

Each server counts what it was asked and can hold a request at a gate (an Event), so a
test proves single-flight by counting token requests, never by timing."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from patchwire.auth import OAuth2Client
from patchwire.connectors import load_connector_text
from patchwire.connectors.spec import OAuth2Auth
from patchwire.http import HttpCore
from tests.support.servers import serve

#: RFC 7523 §3: the claims an assertion MUST contain
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


# -- two-step token exchange -----------------------------------------------------------------


@dataclass
class ExchangeState:
    """A login endpoint ``POST /auth/login`` taking ``{"key", "secret"}`` and answering
    ``{"data": {"session", "ttl"}}``; ``GET /api/me`` wants ``X-Session``."""

    key: str
    secret: str
    ttl: int = 600
    logins: int = 0
    me: dict[int, int] = field(default_factory=dict)
    valid: set[str] = field(default_factory=set)
    #: when set, a login waits for it (arrived is set first)
    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: when set, answers the login instead of the real answer
    answer: Callable[[], web.StreamResponse] | None = None
    seen_bodies: list[Any] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/auth/login", self._login)
        app.router.add_get("/api/me", self._me)
        return app

    async def _login(self, request: web.Request) -> web.StreamResponse:
        self.logins += 1
        body = await request.json()
        self.seen_bodies.append(body)
        if self.gate is not None:
            self.arrived.set()
            await asyncio.wait_for(self.gate.wait(), 10)
        if self.answer is not None:
            return self.answer()
        if body.get("key") != self.key or body.get("secret") != self.secret:
            # echoes what it was sent, as some careless upstreams do
            return web.json_response({"error": f"bad credentials {body}"}, status=401)
        session = f"session-{next(self._ids)}"
        self.valid.add(session)
        return web.json_response({"data": {"session": session, "ttl": self.ttl}})

    async def _me(self, request: web.Request) -> web.StreamResponse:
        session = request.headers.get("X-Session", "")
        status = 200 if session in self.valid else 401
        self.me[status] = self.me.get(status, 0) + 1
        if status != 200:
            return web.json_response({"error": "session expired"}, status=401)
        return web.json_response({"user": "acme", "session_number": session.split("-")[1]})


# -- RFC 7523 token endpoint -------------------------------------------------------------------


@dataclass
class JwtTokenState:
    """``POST /token`` verifying the JWT bearer assertion with ``public_key`` (PyJWT)."""

    public_key: Any
    algorithms: list[str]
    audience: str = ""  # set once the URL is known
    clock: Callable[[], float] = time.time
    claims: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    issued: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        if form.get("grant_type") != JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = form.get("assertion", "")
        try:
            # signature, audience and the claims' presence by PyJWT; expiry against the
            # test's clock (PyJWT reads the real one)
            claims = jwt.decode(assertion, self.public_key, algorithms=self.algorithms,
                                audience=self.audience,
                                options={"require": [*REQUIRED_CLAIMS, "iat"],
                                         "verify_exp": False, "verify_iat": False})
            if not claims["iat"] <= self.clock() < claims["exp"]:
                raise jwt.ExpiredSignatureError("expired by the test's clock")
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant",
                                      "error_description": f"{type(exc).__name__}"},
                                     status=400)
        self.claims.append(claims)
        self.headers.append(jwt.get_unverified_header(assertion))
        self.issued += 1
        return web.json_response({"access_token": f"at-{self.issued}", "token_type": "Bearer",
                                  "expires_in": 3600})


@asynccontextmanager
async def jwt_token_server(public_key: Any, algorithms: list[str],
                           clock: Callable[[], float] = time.time,
                           ) -> AsyncIterator[tuple[str, JwtTokenState]]:
    state = JwtTokenState(public_key, algorithms, clock=clock)
    async with serve(state.app()) as url:
        state.audience = f"{url}/token"
        yield url, state


# -- RFC 8628 device authorization ---------------------------------------------------------


@dataclass
class DeviceState:
    """``POST /device`` hands out a device code; ``POST /token`` answers the device grant
    from ``script`` (error codes, then tokens once the script is used up)."""

    script: list[str] = field(default_factory=list)
    interval: int = 5
    expires_in: int = 600
    user_code: str = "WDJB-MJHT"
    polls: int = 0
    device_requests: list[dict[str, str]] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    #: replaces the /device answer when set
    device_answer: dict[str, Any] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/device", self._device)
        app.router.add_post("/token", self._token)
        app.router.add_get("/me", self._me)
        return app

    async def _me(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") not in ("Bearer device-at-1",
                                                        "Bearer device-at-2"):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"device": "living room"})

    async def _device(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.device_requests.append(form)
        if self.device_answer is not None:
            return web.json_response(self.device_answer)
        return web.json_response({
            "device_code": "dev-code-secret-4711", "user_code": self.user_code,
            "verification_uri": "https://example.com/device",
            "verification_uri_complete": f"https://example.com/device?user_code={self.user_code}",
            "expires_in": self.expires_in, "interval": self.interval})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_forms.append(form)
        if form.get("grant_type") == "refresh_token":
            return web.json_response({"access_token": "device-at-2", "expires_in": 3600,
                                      "refresh_token": "device-rt-2"})
        if form.get("grant_type") != DEVICE_GRANT or form.get("device_code") != \
                "dev-code-secret-4711":
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.polls += 1
        if self.script:
            return web.json_response({"error": self.script.pop(0)}, status=400)
        return web.json_response({"access_token": "device-at-1", "token_type": "Bearer",
                                  "expires_in": 3600, "refresh_token": "device-rt-1"})


# -- PKI for mutual TLS ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    cert: str
    key: str


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    clients: dict[str, Pem]
    #: a client certificate no trusted CA signed
    stranger: Pem


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate, key: Any) -> Pem:
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(),
               key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode())


def _issue(cn: str, issuer: x509.Name, signer: Any, *, ca: bool = False,
           server: bool = False) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    cert = builder.sign(signer if signer is not None else key, hashes.SHA256())
    return cert, key


def make_pki(*clients: str) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and one client certificate per name (its
    common name), plus a self-signed stranger."""
    ca_cert, ca_key = _issue("Patchwire Test CA", _name("Patchwire Test CA"), None, ca=True)
    server = _pem(*_issue("127.0.0.1", ca_cert.subject, ca_key, server=True))
    issued = {name: _pem(*_issue(name, ca_cert.subject, ca_key)) for name in clients}
    stranger_cert, stranger_key = _issue("stranger", _name("stranger"), None)
    return Pki(_pem(ca_cert, ca_key), server, issued, _pem(stranger_cert, stranger_key))


def server_context(pki: Pki, tmp: Any) -> ssl.SSLContext:
    """A TLS server context requiring a client certificate signed by the PKI's CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert_file = tmp / "server.pem"
    cert_file.write_text(pki.server.key + pki.server.cert)
    context.load_cert_chain(cert_file)
    context.load_verify_locations(cadata=pki.ca.cert)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@asynccontextmanager
async def mtls_server(context: ssl.SSLContext) -> AsyncIterator[tuple[str, list[str]]]:
    """``GET /whoami`` over TLS requiring client certificates: answers the client's common
    name; ``POST /login`` answers a token named after it. Yields the base URL and the names
    seen, in order (``login:<name>`` for logins)."""
    seen: list[str] = []

    async def whoami(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in (peer or {}).get("subject", ()))
        seen.append(str(subject.get("commonName")))
        return web.json_response({"cn": subject.get("commonName")})

    async def login(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in (peer or {}).get("subject", ()))
        seen.append(f"login:{subject.get('commonName')}")
        return web.json_response({"access_token": f"tls-token-{subject.get('commonName')}",
                                  "expires_in": 600})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    app.router.add_post("/login", login)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def rsa_key() -> tuple[str, Any]:
    """A fresh RSA private key (PEM) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def ec_key() -> tuple[str, Any]:
    """A fresh P-256 private key (PEM) and its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def oauth2_client(text: str, values: dict[str, Any], http: HttpCore,
                  clock: Callable[[], float]) -> OAuth2Client:
    """The OAuth2 client of connector ``text`` (YAML) for connection ``acme``'s values."""
    auth = load_connector_text(text, "c.yaml").auth
    assert isinstance(auth, OAuth2Auth)
    return OAuth2Client(auth, values, http=http, connection="acme", clock=clock)
