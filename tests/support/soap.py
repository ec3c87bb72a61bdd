"""A real SOAP service for tests: spyne (a SOAP library no one here wrote) serving an
order service over SOAP 1.1 and 1.2, and one behind WS-Security UsernameToken, on
127.0.0.1 in a thread; and a Patchwire knowing the connector imported from its WSDL.

spyne does not check WS-Security, so a small WSGI middleware in front of the secured
service does, as the OASIS UsernameToken profile says (PasswordText, or PasswordDigest =
Base64(SHA-1(nonce + created + password))).
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal as Dec
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import yaml
from defusedxml import ElementTree as SafeXml  # type: ignore[import-untyped]
from spyne import (  # type: ignore[import-untyped]
    Application,
    Array,
    ComplexModel,
    DateTime,
    Decimal,
    Fault,
    Integer,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11, Soap12  # type: ignore[import-untyped]
from spyne.server.wsgi import WsgiApplication  # type: ignore[import-untyped]

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_file
from patchwire.connectors.wsdl import copy_wsdl_files, import_wsdl
from tests.support.settings import local_settings

NS = "urn:patchwire:test:orders"
WSSE = ("http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-wssecurity-secext-1.0.xsd")
WSU = ("http://docs.oasis-open.org/wss/2004/01/"
       "oasis-200401-wss-wssecurity-utility-1.0.xsd")
DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
          "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
#: the one account the secured service knows
USERNAME = "clerk"


class Line(ComplexModel):  # type: ignore[misc]
    __namespace__ = NS
    sku = Unicode
    quantity = Integer
    price = Decimal


class Customer(ComplexModel):  # type: ignore[misc]
    __namespace__ = NS
    name = Unicode
    email = Unicode


class Order(ComplexModel):  # type: ignore[misc]
    __namespace__ = NS
    id = Unicode
    status = Unicode(values=["open", "shipped", "cancelled"])
    total = Decimal
    placed = DateTime
    customer = Customer
    lines = Array(Line)


ORDERS = {
    "A-1": Order(id="A-1", status="shipped", total=Dec("59.90"),
                 placed=datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
                 customer=Customer(name="Ada Lovelace", email="ada@example.com"),
                 lines=[Line(sku="BOOK-1", quantity=2, price=Dec("19.95")),
                        Line(sku="PEN-7", quantity=1, price=Dec("20.00"))]),
}


class OrderService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode(min_occurs=1, nillable=False), _returns=Order)  # type: ignore[untyped-decorator]
    def get_order(ctx: Any, order_id: str) -> Order:
        """Look up one order by its id."""
        if order_id not in ORDERS:
            raise Fault("Client.NotFound", f"no order {order_id}")
        return ORDERS[order_id]

    @rpc(Unicode, _returns=Unicode)  # type: ignore[untyped-decorator]
    def echo_note(ctx: Any, note: str | None) -> str | None:
        """Answer the note as the service read it."""
        return note

    @rpc(Unicode, _returns=Unicode)  # type: ignore[untyped-decorator]
    def break_down(ctx: Any, reason: str | None) -> str:
        """Fail on the service's side."""
        raise Fault("Server.Database", f"the order database is down ({reason})")


class SecureService(ServiceBase):  # type: ignore[misc]
    @rpc(_returns=Unicode)  # type: ignore[untyped-decorator]
    def whoami(ctx: Any) -> str:
        """Who the WS-Security header said the caller is."""
        return str(ctx.transport.req_env.get("patchwire.user", ""))


def _app(services: list[Any], protocol: Any, name: str) -> WsgiApplication:
    return WsgiApplication(Application(services, NS, name=name,
                                       in_protocol=protocol(validator="lxml"),
                                       out_protocol=protocol()))


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class SecurityCheck:
    """WSGI middleware: refuses envelopes without a valid UsernameToken for ``password``."""

    app: WsgiApp
    password: str
    seen: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size)
        environ["wsgi.input"] = io.BytesIO(body)
        token = _username_token(body)
        self.seen.append(token)
        if not self._valid(token):
            fault = (
                '<?xml version="1.0" encoding="utf-8"?>'
                '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
                f'<s:Body><s:Fault><faultcode xmlns:wsse="{WSSE}">wsse:FailedAuthentication'
                "</faultcode><faultstring>The security token could not be authenticated"
                "</faultstring></s:Fault></s:Body></s:Envelope>").encode()
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/xml; charset=utf-8"),
                            ("Content-Length", str(len(fault)))])
            return [fault]
        environ["patchwire.user"] = token["username"]
        return self.app(environ, start_response)

    def _valid(self, token: dict[str, str]) -> bool:
        if token.get("username") != USERNAME:
            return False
        if token.get("type") == DIGEST:
            nonce = base64.b64decode(token.get("nonce", ""))
            expected = base64.b64encode(hashlib.sha1(  # the profile says SHA-1
                nonce + token.get("created", "").encode() + self.password.encode()).digest())
            return expected.decode() == token.get("password")
        return token.get("password") == self.password


def _username_token(body: bytes) -> dict[str, str]:
    root = SafeXml.fromstring(body, forbid_dtd=True)
    token = root.find(f".//{{{WSSE}}}UsernameToken")
    if token is None:
        return {}
    password = token.find(f"{{{WSSE}}}Password")
    out = {
        "username": token.findtext(f"{{{WSSE}}}Username") or "",
        "password": password.text or "" if password is not None else "",
        "type": password.get("Type", "") if password is not None else "",
        "nonce": token.findtext(f"{{{WSSE}}}Nonce") or "",
        "created": token.findtext(f"{{{WSU}}}Created") or "",
    }
    return out


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output is for the tests


@dataclass
class SoapServer:
    url: str
    security: SecurityCheck

    def wsdl(self, path: str) -> bytes:
        """The WSDL spyne generates for the service at ``path`` (``/orders``...)."""
        with urllib.request.urlopen(f"{self.url}{path}?wsdl", timeout=10) as resp:
            body: bytes = resp.read()
        return body


@contextmanager
def spyne_server(password: str) -> Iterator[SoapServer]:
    """The order service at ``/orders`` (SOAP 1.1) and ``/orders12`` (SOAP 1.2), and the
    secured one at ``/secure`` (SOAP 1.1, UsernameToken with ``password``), on
    127.0.0.1 in a thread."""
    security = SecurityCheck(_app([SecureService], Soap11, "Secure"), password)
    routes: dict[str, WsgiApp] = {
        "/orders12": _app([OrderService], Soap12, "Orders12"),
        "/orders": _app([OrderService], Soap11, "Orders"),
        "/secure": security,
    }

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        for prefix, app in routes.items():
            if path == prefix:
                return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such service"]

    server: WSGIServer = make_server("127.0.0.1", 0, dispatch, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield SoapServer(f"http://127.0.0.1:{server.server_port}", security)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def imported_connector(directory: Path, wsdl: bytes, file: str = "service.wsdl",
                       name: str = "orders", extra: dict[str, Any] | None = None) -> Path:
    """``wsdl`` saved in ``directory``, imported, its connector written beside it (with
    ``extra`` merged into the connector's top level; ``soap`` merged key by key); the
    connector file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "download" / file
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(wsdl)
    result = import_wsdl(source, name=name)
    copy_wsdl_files(result, directory)
    data = yaml.safe_load(result.to_yaml())
    for key, value in (extra or {}).items():
        if key == "soap":
            data["soap"].update(value)
        else:
            data[key] = value
    target = directory / f"{name}.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


@asynccontextmanager
async def soap_patchwire(home: Path, connector: Path,
                         settings: dict[str, Any] | None = None) -> AsyncIterator[Patchwire]:
    """A Patchwire knowing the connector at ``connector``, with one connection ``main``."""
    spec = load_connector_file(connector)
    async with Patchwire(local_settings(home),
                         connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection(spec.name, "main", settings or {})
        yield pw
