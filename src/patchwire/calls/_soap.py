"""SOAP actions: zeep builds the envelope and reads the answer, Patchwire sends it.

The WSDL is parsed once per file version (``patchwire.connectors.wsdl.load_wsdl``) with a
transport that never touches the network. For a call, zeep serialises the validated
arguments into an envelope (XML text in an argument is escaped by the serialiser, never
markup), a WS-Security UsernameToken is added when the connector declares one, and the
request goes through the call path like any other: POST to the connection's base URL plus
the port address's path, ``text/xml`` with ``SOAPAction`` (1.1) or
``application/soap+xml; action=...`` (1.2). zeep never does HTTP.

The answer is parsed by zeep with DTDs, entities and external references refused, within
libxml2's depth and text limits, into plain JSON-like data (decimals as numbers, dates as
ISO text, bytes as base64). A SOAP fault, in a 500 or a 200, becomes a typed error: a
client/sender fault an ``UpstreamValidationError``, an authentication fault an
``AuthError``, any other an ``UpstreamError``; its faultstring is the (redacted) message.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from patchwire.calls._connection import BREAKS_HEADER, ResolvedConnection
from patchwire.connectors import MISSING, compile_template
from patchwire.connectors.spec import ActionSpec, ConnectorSpec
from patchwire.connectors.wsdl import SoapOperationInfo, WsdlImportError, load_wsdl
from patchwire.errors import (
    AuthError,
    CallContext,
    InputValidationError,
    RequestRenderError,
    ResponseMappingError,
    UpstreamError,
    UpstreamResponseError,
    UpstreamValidationError,
    ValidationProblem,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.http import PreparedRequest, RawResponse, Redactor, excerpt

__all__ = ["SoapAdapter"]

#: fault codes (or subcodes) that mean the credentials were refused (WS-Security 1.1
#: section 12 names FailedAuthentication, InvalidSecurity, InvalidSecurityToken)
_AUTH_FAULTS = ("failedauthentication", "invalidsecurity", "invalidsecuritytoken",
                "unauthorized", "authentication", "notauthorized")


class SoapAdapter:
    """Builds and reads the envelopes of one SOAP action."""

    def __init__(self, connector: ConnectorSpec, name: str, action: ActionSpec) -> None:
        assert action.soap is not None
        self.connector = connector
        self.name = name
        self.qualified = f"{connector.name}.{name}"
        self.action = action
        self.soap = action.soap
        self.response: Expression | None = (
            compile_expression(action.response)
            if action.response and action.response.strip() != "$" else None)
        self._op: SoapOperationInfo | None = None
        self._client: Any = None  # zeep's client of the parsed WSDL (reads answers)

    # -- the WSDL, parsed once ------------------------------------------------------------

    def _operation(self, context: CallContext) -> SoapOperationInfo:
        if self._op is None:
            soap = self.connector.soap
            if soap is None:
                raise RequestRenderError(f"{self.connector.name} declares no `soap:` section",
                                         context=context)
            try:
                service = load_wsdl(soap.wsdl)
                self._op = service.find(self.soap.operation, self.soap.service,
                                        self.soap.port, soap.version)
                self._client = service.client
            except WsdlImportError as exc:
                raise RequestRenderError(f"{self.qualified}: {exc}", context=context) from None
            except LookupError as exc:
                raise RequestRenderError(f"{self.qualified}: {exc}", context=context) from None
        return self._op

    # -- request ----------------------------------------------------------------------------

    def render(self, arguments: Mapping[str, Any], conn: ResolvedConnection,
               context: CallContext) -> PreparedRequest:
        from zeep import exceptions as zx
        from zeep.wsdl import utils as wsdl_utils

        op = self._operation(context)
        kwargs = _zeep_arguments(dict(arguments), op.operation_obj.input.body)
        soap_headers = self._soap_headers(op, conn, context)
        if soap_headers:
            kwargs["_soapheaders"] = soap_headers
        try:
            serialized = op.operation_obj.create(**kwargs)
        except (zx.ValidationError, TypeError, ValueError) as exc:
            # the JSON Schema let it through but zeep's XSD rules did not: say what, as
            # an input problem (zeep's messages name elements, never values)
            raise InputValidationError(
                [ValidationProblem("$", f"does not fit the operation's XML schema: "
                                   f"{conn.redact(str(exc))[:300]}")],
                context=context) from None
        envelope = serialized.content
        security = self.connector.soap.ws_security if self.connector.soap else None
        if security is not None:
            envelope = self._sign(envelope, security, conn, context)
        to_string: Any = wsdl_utils.etree_to_string  # untyped library
        body = to_string(envelope)
        action = op.soap_action or ""
        headers = dict(conn.headers)
        if BREAKS_HEADER.search(action):
            raise RequestRenderError(f"{self.qualified}: the WSDL's soapAction holds a line "
                                     "break", context=context)
        if op.version == "1.2":
            ctype = "application/soap+xml; charset=utf-8"
            if action:
                ctype += f'; action="{action}"'
            headers["Content-Type"] = ctype
        else:
            headers["Content-Type"] = "text/xml; charset=utf-8"
            headers["SOAPAction"] = f'"{action}"'
        return PreparedRequest(
            method="POST",
            url=conn.base_url + _address_path(op.address),
            headers=headers,
            params=dict(conn.auth.query) if conn.auth and conn.auth.query else None,
            cookies=dict(conn.auth.cookies) if conn.auth and conn.auth.cookies else None,
            data=body,
            idempotent=self.action.is_idempotent,
            credentials=conn.credential_headers,
        )

    def _soap_headers(self, op: SoapOperationInfo, conn: ResolvedConnection,
                      context: CallContext) -> dict[str, Any]:
        """The connector's ``soap.headers`` this operation declares, rendered over the
        connection's settings (an operation declaring none gets none)."""
        declared = self.connector.soap.headers if self.connector.soap else {}
        header = getattr(op.operation_obj.input, "header", None)
        if not declared or header is None:
            return {}
        names = {name for name, _ in getattr(header.type, "elements", [])}
        out: dict[str, Any] = {}
        for name, value in declared.items():
            if name in names:
                out[name] = _render_header(value, conn, context, f"soap.headers.{name}")
        return out

    def _sign(self, envelope: Any, security: Any, conn: ResolvedConnection,
              context: CallContext) -> Any:
        from zeep.wsse import username as wsse_username

        values = conn.values
        parts = []
        for label, template in (("username", security.username),
                                ("password", security.password)):
            rendered = compile_template(template).render(values)
            if rendered is MISSING or rendered in (None, ""):
                raise RequestRenderError(
                    f"connection {conn.record.name!r} has no value for the WS-Security "
                    f"{label} ({template!r}); set it with `patchwire connection update "
                    f"{conn.record.name} --set ...`", context=context)
            parts.append(str(rendered))
        token_class: Any = wsse_username.UsernameToken  # untyped library
        token = token_class(parts[0], parts[1], use_digest=security.digest)
        envelope, _ = token.apply(envelope, {})
        return envelope

    # -- answer -----------------------------------------------------------------------------

    def map_response(self, raw: RawResponse, arguments: Mapping[str, Any],
                     context: CallContext, redact: Redactor) -> Any:
        result = self._read(raw, context, redact)
        if self.response is None:
            return result
        try:
            return self.response.evaluate(result)
        except ExpressionError as exc:
            raise ResponseMappingError(
                f"response mapping {self.response.source!r} failed: {redact(str(exc))}",
                context=context) from None

    def pause_after(self, raw: RawResponse) -> float | None:
        return None  # SOAP answers declare no budget

    def error_for(self, raw: RawResponse, arguments: Mapping[str, Any],
                  context: CallContext, redact: Redactor) -> UpstreamResponseError | None:
        """A non-2xx answer holding a SOAP fault: typed by the fault. Anything else (a
        401 page from a proxy...) is left to the REST rules."""
        if not raw.body or b"Fault" not in raw.body:
            return None
        try:
            self._read(raw, context, redact)
        except UpstreamResponseError as fault:
            return fault
        except ResponseMappingError:
            return None
        return None

    def _read(self, raw: RawResponse, context: CallContext, redact: Redactor) -> Any:
        from zeep import exceptions as zx
        from zeep import helpers

        op = self._operation(context)
        if not raw.body.strip() and raw.ok:
            return None  # a one-way operation's 202 (or a 200 saying nothing)
        try:
            reply = op.binding.process_reply(self._client, op.operation_obj, _Reply(raw))
        except zx.Fault as fault:
            raise self._fault(fault, raw, context, redact) from None
        except zx.DTDForbidden:
            raise ResponseMappingError(
                f"{self.qualified}: the SOAP answer declares a DTD (<!DOCTYPE>), refused: "
                "that is how XML entity attacks begin", context=context) from None
        except zx.EntitiesForbidden:
            raise ResponseMappingError(
                f"{self.qualified}: the SOAP answer declares XML entities, refused",
                context=context) from None
        except zx.ExternalReferenceForbidden:
            raise ResponseMappingError(
                f"{self.qualified}: the SOAP answer references an external resource, refused",
                context=context) from None
        except zx.XMLSyntaxError as exc:
            raise ResponseMappingError(
                f"{self.qualified}: the SOAP answer is not well-formed XML (or is deeper or "
                f"larger than the parser's limits): {redact(str(exc.message))[:200]}",
                context=context) from None
        except zx.TransportError:
            raise ResponseMappingError(
                f"{self.qualified}: the upstream's answer is not a SOAP envelope: "
                f"{excerpt(raw.body, redact, 120)!r}", context=context) from None
        except (zx.Error, ValueError, KeyError, AttributeError, TypeError, IndexError) as exc:
            raise ResponseMappingError(
                f"{self.qualified}: cannot read the SOAP answer ({type(exc).__name__}): "
                f"{redact(str(exc))[:200]}", context=context) from None
        serialize: Any = helpers.serialize_object  # untyped library
        return _json_safe(serialize(reply, dict))

    def _fault(self, fault: Any, raw: RawResponse, context: CallContext,
               redact: Redactor) -> UpstreamResponseError:
        code = str(fault.code or "")
        local = code.rsplit(":", 1)[-1].rsplit("}", 1)[-1].lower()
        subcodes = " ".join(str(s) for s in (fault.subcodes or [])).lower()
        kind: type[UpstreamResponseError]
        if any(a in local or a in subcodes for a in _AUTH_FAULTS):
            kind = AuthError
        elif local.startswith(("client", "sender")):
            kind = UpstreamValidationError
        else:
            kind = UpstreamError  # Server, Receiver, VersionMismatch, MustUnderstand...
        message = redact(" ".join(str(fault.message or "no faultstring").split()))[:500]
        return kind(
            f"{self.qualified} failed with SOAP fault {redact(code) or '(no code)'}: {message}",
            status=raw.status, body_excerpt=excerpt(raw.body, redact), context=context)


class _Reply:
    """The part of a ``requests.Response`` zeep's ``process_reply`` reads."""

    def __init__(self, raw: RawResponse) -> None:
        # zeep treats any status but 200 as a fault answer; a 2xx is an answer
        self.status_code = 200 if 200 <= raw.status < 300 else raw.status
        self.content = raw.body
        self.headers = {"Content-Type": raw.headers.get("Content-Type", "text/xml")}
        self.encoding = "utf-8"


def _render_header(value: Any, conn: ResolvedConnection, context: CallContext,
                   where: str) -> Any:
    if isinstance(value, dict):
        return {k: _render_header(v, conn, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render_header(v, conn, context, where) for v in value]
    if not isinstance(value, str):
        return value
    rendered = compile_template(value).render(conn.values)
    if rendered is MISSING or rendered is None:
        raise RequestRenderError(
            f"connection {conn.record.name!r} has no value for {where} ({value!r}); set it "
            f"with `patchwire connection update {conn.record.name} --set ...`",
            context=context)
    return rendered


def _address_path(address: str | None) -> str:
    """The path (and query) of the port's address, appended to the connection's base URL:
    the host is the connection's, so a WSDL cannot send calls elsewhere."""
    if not address:
        return ""
    parts = urlsplit(address)
    path = parts.path if parts.scheme else address
    if path and not path.startswith("/"):
        path = "/" + path
    return path + (f"?{parts.query}" if parts.query else "")


def _zeep_arguments(arguments: dict[str, Any], body: Any) -> dict[str, Any]:
    """JSON arguments as zeep takes them: base64 text as bytes where the XSD says
    base64Binary (JSON has no bytes); everything else as it is."""
    if body is None:
        return arguments
    return {k: _zeep_value(v, _child_type(body.type, k)) for k, v in arguments.items()}


def _child_type(xsd_type: Any, name: str) -> Any:
    for child, element in getattr(xsd_type, "elements", []):
        if child == name:
            return getattr(element, "type", None)
    for child, attribute in getattr(xsd_type, "attributes", []):
        if child == name:
            return getattr(attribute, "type", None)
    return None


def _zeep_value(value: Any, xsd_type: Any) -> Any:
    if xsd_type is None:
        return value
    from zeep.xsd.types.builtins import Base64Binary

    if isinstance(value, list):
        return [_zeep_value(v, xsd_type) for v in value]
    if isinstance(xsd_type, Base64Binary) and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value.encode()
    if isinstance(value, dict):
        return {k: _zeep_value(v, _child_type(xsd_type, k)) for k, v in value.items()}
    return value


def _json_safe(value: Any) -> Any:
    """zeep's Python values as JSON-like data."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 2**63:
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "tag") and hasattr(value, "itertext"):
        # an xsd:any part of the answer: zeep hands over the XML element; its text is
        # the most a JSON result can say of it
        from zeep.wsdl import utils as wsdl_utils

        to_string: Any = wsdl_utils.etree_to_string
        text = bytes(to_string(value)).decode("utf-8", errors="replace")
        return text.split("?>", 1)[1].lstrip() if text.startswith("<?xml") else text
    return str(value)
