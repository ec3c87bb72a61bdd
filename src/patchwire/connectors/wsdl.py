"""WSDL documents: read safely with zeep, and imported as connectors.

:func:`load_wsdl` parses a WSDL (and the schemas and WSDLs it imports) with zeep, once per
file version: parsing is expensive, and every SOAP action of a connector shares the result.
Reading is local and hardened by construction: the transport given to zeep fetches nothing
from the network and no file outside the WSDL's own directory, and zeep's parser refuses
DTDs, entity declarations and external references (XXE, billion laughs). A refused document
raises :class:`WsdlImportError` saying which file and why.

:func:`import_wsdl` turns every SOAP operation into an action of a ``protocol: soap``
connector: its input JSON Schema from the operation's XSD types (sequences, choices,
occurrence bounds, enumerations and other facets, nested and recursive complex types to a
bounded depth), its description from ``wsdl:documentation``, the base URL from the service
address. ``patchwire connector import service.wsdl`` is a thin wrapper around it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from defusedxml import ElementTree as SafeXml  # type: ignore[import-untyped]
from zeep.xsd import Any as AnyElement
from zeep.xsd import Attribute, Choice, ComplexType, Element
from zeep.xsd.types import builtins as b
from zeep.xsd.types.collection import ListType, UnionType

from patchwire.connectors._schemas import input_schema_problem
from patchwire.connectors.openapi import ImportResult, SkippedItem, snake_case
from patchwire.connectors.spec import NAME_PATTERN, ConnectorSpec
from patchwire.errors import OpenAPIImportError

__all__ = [
    "MAX_SCHEMA_DEPTH",
    "SoapOperationInfo",
    "WsdlImportError",
    "WsdlImportResult",
    "WsdlService",
    "copy_wsdl_files",
    "import_wsdl",
    "is_wsdl",
    "load_wsdl",
    "safe_settings",
    "soap_problems",
]

#: nested complex types described to this depth; deeper (or recursive) ones are left open
MAX_SCHEMA_DEPTH = 8
#: the largest WSDL or schema file read (a WSDL is a description, not a data set)
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
#: parsed WSDLs kept (per file version)
_CACHE_SIZE = 64

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
_NAME_RE = re.compile(NAME_PATTERN)


class WsdlImportError(OpenAPIImportError):
    """A WSDL document cannot be read or turned into a connector (an import error, like an
    OpenAPI document's: the CLI reports both the same way)."""


def safe_settings(forbid_external: bool = True) -> Any:
    """zeep settings that refuse DTDs, entity declarations and external references, and
    keep libxml2's limits on depth and text size (no ``huge_tree``). ``forbid_external``
    is turned off only while a WSDL loads through the local transport, which is then the
    one that refuses (or finds beside the WSDL) what an import names by URL."""
    from zeep.settings import Settings

    return Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                    forbid_external=forbid_external, xml_huge_tree=False)


class _Refused(Exception):
    """A reference the local transport will not follow."""


def _local_transport(root: Path) -> Any:
    """A zeep transport that reads files under ``root`` only and never uses the network
    (zeep's own would fetch any http(s) or file URL an import names)."""
    from zeep.transports import Transport

    class LocalOnly(Transport):
        def __init__(self) -> None:
            # zeep's constructor opens a requests session: not needed, never used
            self.cache = None
            self._close_session = False  # read by zeep's __del__
            self.load_timeout = 0
            self.operation_timeout = 0
            self.loaded: dict[Path, bytes] = {}

        def load(self, url: str) -> bytes:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "ftp"):
                # never fetched; a copy saved beside the WSDL under the URL's file name is
                # read instead (as an XML catalog would map it): real WSDLs import W3C and
                # OASIS schemas by URL
                name = Path(unquote(parts.path)).name
                if name and (root / name).is_file():
                    url = str(root / name)
                else:
                    raise _Refused(
                        f"it imports {url}, and WSDL imports are never fetched from the "
                        f"network: save that document beside the WSDL as {name or 'a file'!r}")
            elif parts.scheme == "file":
                url = unquote(parts.path)
            elif parts.scheme and len(parts.scheme) > 1:
                raise _Refused(f"it imports {url}, which is not a local file")
            path = Path(os.path.realpath(os.path.expanduser(url)))
            if path != root and root not in path.parents:
                raise _Refused(f"it imports {url}, outside the WSDL's directory {root}")
            try:
                size = path.stat().st_size
                if size > MAX_DOCUMENT_BYTES:
                    raise _Refused(f"{path.name} is {size} bytes, more than the "
                                   f"{MAX_DOCUMENT_BYTES} a WSDL or schema may have")
                content = path.read_bytes()
            except OSError as exc:
                raise _Refused(f"cannot read {path}: {exc.strerror or exc}") from None
            self.loaded[path] = content
            return content

        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise _Refused("zeep never sends requests here: Patchwire does")

        get = post = post_xml = _refuse

    return LocalOnly()


@dataclass(frozen=True)
class SoapOperationInfo:
    """One operation of one SOAP port, as the adapter and the importer need it."""

    service: str
    port: str
    operation: str
    version: str  # "1.1" | "1.2"
    address: str | None
    soap_action: str | None
    style: str
    binding: Any = field(repr=False)  # zeep's SoapBinding
    operation_obj: Any = field(repr=False)  # zeep's SoapOperation


class WsdlService:
    """A parsed WSDL: zeep's client (for building and reading envelopes) and the facts
    zeep drops (documentation, XSD facets), read from the same local files."""

    def __init__(self, path: Path) -> None:
        import zeep

        self.path = path
        transport = _local_transport(path.parent)
        self.settings = safe_settings(forbid_external=False)
        client_class: Any = zeep.Client  # untyped library
        self.client = _wrap(path, lambda: client_class(str(path), transport=transport,
                                                       settings=self.settings))
        # loaded: from here on the settings read answers, which may reference nothing
        self.settings.forbid_external = True
        self.files: list[Path] = list(transport.loaded)
        self.documentation: dict[str, str] = {}
        self.service_documentation: dict[str, str] = {}
        self.facets: dict[str, dict[str, Any]] = {}
        #: operations whose binding says `use="encoded"` (SOAP section 5 encoding)
        self.encoded: set[str] = set()
        for content in transport.loaded.values():
            self._read_extras(content)

    def operations(self) -> Iterator[SoapOperationInfo]:
        """Every operation of every SOAP port, in document order."""
        from zeep.wsdl.bindings.soap import Soap12Binding, SoapBinding

        for service_name, service in self.client.wsdl.services.items():
            for port_name, port in service.ports.items():
                binding = port.binding
                if not isinstance(binding, SoapBinding):
                    continue  # HTTP GET/POST bindings: not SOAP
                version = "1.2" if isinstance(binding, Soap12Binding) else "1.1"
                address = (port.binding_options or {}).get("address")
                for op_name, op in binding._operations.items():
                    yield SoapOperationInfo(service_name, port_name, op_name, version,
                                            address, op.soapaction or None, op.style or "",
                                            binding, op)

    def find(self, operation: str, service: str | None = None,
             port: str | None = None, version: str | None = None) -> SoapOperationInfo:
        """The operation named (of that service and port, when given; of a port of that
        SOAP version first); LookupError saying what exists otherwise."""
        found = [o for o in self.operations() if o.operation == operation
                 and (service is None or o.service == service)
                 and (port is None or o.port == port)]
        if version is not None:
            found.sort(key=lambda o: o.version != version)
        if not found:
            where = " ".join(f"{k} {v!r}" for k, v in (("service", service), ("port", port))
                             if v)
            known = sorted({o.operation for o in self.operations()})
            raise LookupError(
                f"{self.path.name} has no SOAP operation {operation!r}"
                + (f" in {where}" if where else "")
                + f" (it has: {', '.join(known[:20]) or 'none'})")
        return found[0]

    # -- what zeep does not keep ---------------------------------------------------------------

    def _read_extras(self, content: bytes) -> None:
        try:
            # zeep parsed it already (refusing DTDs); defusedxml refuses them too
            root = SafeXml.fromstring(content, forbid_dtd=True)
        except Exception:
            return
        for op in root.iterfind(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation"):
            doc = _documentation(op)
            if doc and op.get("name"):
                self.documentation.setdefault(op.get("name", ""), doc)
        for op in root.iterfind(f"{{{WSDL_NS}}}binding/{{{WSDL_NS}}}operation"):
            doc = _documentation(op)
            if doc and op.get("name"):
                self.documentation.setdefault(op.get("name", ""), doc)
        for op in root.iterfind(f"{{{WSDL_NS}}}binding/{{{WSDL_NS}}}operation"):
            # zeep keeps no note of `use="encoded"`; the importer warns about it
            if any(body.get("use") == "encoded" for body in op.iter()
                   if str(body.tag).endswith("}body")):
                self.encoded.add(op.get("name", ""))
        for svc in root.iterfind(f"{{{WSDL_NS}}}service"):
            doc = _documentation(svc)
            if doc and svc.get("name"):
                self.service_documentation[svc.get("name", "")] = doc
        schemas = ([root] if root.tag == f"{{{XSD_NS}}}schema"
                   else root.iterfind(f".//{{{XSD_NS}}}schema"))
        for schema in schemas:
            tns = schema.get("targetNamespace", "")
            for simple in schema.iterfind(f"{{{XSD_NS}}}simpleType"):
                self._facets_of(simple, f"{{{tns}}}{simple.get('name')}")
            # an anonymous simple type takes its element's name in zeep; kept only when
            # that name is not used for two different restrictions
            for owner in schema.iter(f"{{{XSD_NS}}}element"):
                simple = owner.find(f"{{{XSD_NS}}}simpleType")
                if simple is not None and owner.get("name"):
                    self._facets_of(simple, f"{{{tns}}}{owner.get('name')}", anonymous=True)

    def _facets_of(self, simple: Any, key: str, anonymous: bool = False) -> None:
        restriction = simple.find(f"{{{XSD_NS}}}restriction")
        if restriction is None:
            return
        facets: dict[str, Any] = {}
        enum = [e.get("value", "") for e in restriction.iterfind(f"{{{XSD_NS}}}enumeration")]
        if enum:
            facets["enum"] = enum
        for name in ("pattern", "minLength", "maxLength", "minInclusive", "maxInclusive",
                     "minExclusive", "maxExclusive"):
            node = restriction.find(f"{{{XSD_NS}}}{name}")
            if node is not None and node.get("value") is not None:
                facets[name] = node.get("value")
        if anonymous and key in self.facets and self.facets[key] != facets:
            self.facets[key] = {}  # two different restrictions under one name: neither
            return
        self.facets[key] = facets


def _documentation(node: Any) -> str:
    doc = node.find(f"{{{WSDL_NS}}}documentation")
    if doc is None:
        return ""
    return " ".join("".join(doc.itertext()).split())


def _wrap(path: Path, build: Any) -> Any:
    """zeep's refusals as one typed error naming the file."""
    from zeep import exceptions as zx

    try:
        return build()
    except _Refused as exc:
        raise WsdlImportError(f"{path.name}: refused: {exc}") from None
    except zx.DTDForbidden:
        raise WsdlImportError(
            f"{path.name}: refused: it declares a DTD (<!DOCTYPE>), which a WSDL never needs "
            "and which is how XML entity attacks (XXE, billion laughs) begin") from None
    except zx.EntitiesForbidden as exc:
        raise WsdlImportError(f"{path.name}: refused: it declares the XML entity "
                              f"{getattr(exc, 'name', '?')!r}") from None
    except zx.ExternalReferenceForbidden as exc:
        raise WsdlImportError(
            f"{path.name}: refused: it references {exc}, and WSDL imports are never fetched "
            "from the network") from None
    except zx.XMLSyntaxError as exc:
        raise WsdlImportError(f"{path.name}: not well-formed XML: {exc}") from None
    except Exception as exc:
        # zeep's parser meets unsupported or broken documents with assorted exceptions
        raise WsdlImportError(f"{path.name}: cannot be read as a WSDL: "
                              f"{type(exc).__name__}: {exc}") from None


_cache: dict[tuple[str, int, int], WsdlService] = {}
_cache_lock = threading.Lock()


def load_wsdl(path: str | Path) -> WsdlService:
    """The parsed WSDL at ``path``, parsed once per file version (path, size, mtime)."""
    p = Path(os.path.realpath(Path(path).expanduser()))
    try:
        st = p.stat()
    except OSError as exc:
        raise WsdlImportError(f"{p}: cannot read the WSDL: {exc.strerror or exc}") from None
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    if st.st_size > MAX_DOCUMENT_BYTES:
        raise WsdlImportError(f"{p.name}: {st.st_size} bytes, more than the "
                              f"{MAX_DOCUMENT_BYTES} a WSDL may have")
    service = WsdlService(p)
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = service
    return service


# -- XSD types → JSON Schema ----------------------------------------------------------------


class SchemaBuilder:
    """JSON Schema of zeep XSD types and elements, with the facets zeep drops."""

    def __init__(self, facets: dict[str, dict[str, Any]],
                 max_depth: int = MAX_SCHEMA_DEPTH) -> None:
        self.facets = facets
        self.max_depth = max_depth
        self.notes: list[str] = []

    def body(self, body: Any) -> dict[str, Any]:
        """The input object of a message body (zeep's ``operation.input.body``)."""
        if body is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        xsd_type = body.type
        if isinstance(xsd_type, ComplexType):
            return self.complex(xsd_type, 0, frozenset())
        # a body that is one simple value: zeep takes it as the first argument, named
        # after its element
        return {"type": "object", "properties": {body.name: self.simple(xsd_type)},
                "required": [body.name], "additionalProperties": False}

    def complex(self, xsd_type: Any, depth: int, seen: frozenset[str]) -> dict[str, Any]:
        qname = str(xsd_type.qname) if getattr(xsd_type, "qname", None) is not None else ""
        if depth >= self.max_depth or (qname and qname in seen):
            why = "recursive" if qname in seen else f"nested deeper than {self.max_depth} levels"
            return {"type": "object",
                    "description": f"{xsd_type.name or 'value'} ({why}: not described further)"}
        seen = seen | {qname} if qname else seen
        props: dict[str, Any] = {}
        required: list[str] = []
        choices = _choice_groups(xsd_type)
        for name, element in xsd_type.elements:
            if isinstance(element, AnyElement) or not isinstance(element, Element):
                continue  # xsd:any: free XML, which JSON arguments cannot carry
            schema = self.element(element, depth + 1, seen)
            group = choices.get(name)
            if group:
                others = [g for g in group if g != name]
                note = f"a choice: give this or one of {', '.join(others)}"
                schema = {**schema, "description": _join(schema.get("description"), note)}
            props[name] = schema
            if element.min_occurs and element.min_occurs > 0 and not group:
                required.append(name)
        for name, attribute in getattr(xsd_type, "attributes", []):
            if not isinstance(attribute, Attribute) or not name or name.startswith("_"):
                continue
            props[name] = self.simple(attribute.type)
            if getattr(attribute, "required", False):
                required.append(name)
        out: dict[str, Any] = {"type": "object", "properties": props,
                               "additionalProperties": False}
        if required:
            out["required"] = required
        return out

    def element(self, element: Any, depth: int, seen: frozenset[str]) -> dict[str, Any]:
        xsd_type = element.type
        if isinstance(xsd_type, ComplexType):
            if _simple_content(xsd_type):
                item = self.complex(xsd_type, depth, seen)
            else:
                item = self.complex(xsd_type, depth, seen)
        else:
            item = self.simple(xsd_type, element)
        max_occurs = element.max_occurs
        if max_occurs == "unbounded" or (isinstance(max_occurs, int) and max_occurs > 1):
            array: dict[str, Any] = {"type": "array", "items": item}
            if element.min_occurs and element.min_occurs > 1:
                array["minItems"] = element.min_occurs
            if isinstance(max_occurs, int):
                array["maxItems"] = max_occurs
            return array
        return item

    def simple(self, xsd_type: Any, element: Any = None) -> dict[str, Any]:
        if isinstance(xsd_type, ListType):
            item = self.simple(xsd_type.item_type) if getattr(xsd_type, "item_type", None) \
                else {"type": "string"}
            return {"type": "array", "items": item}
        if isinstance(xsd_type, UnionType):
            return {"type": "string"}
        out: dict[str, Any]
        if isinstance(xsd_type, b.Boolean):
            out = {"type": "boolean"}
        elif isinstance(xsd_type, b.Integer):
            out = {"type": "integer", **_INTEGER_BOUNDS.get(_base_name(xsd_type), {})}
        elif isinstance(xsd_type, b.Decimal | b.Float | b.Double):
            out = {"type": "number"}
        elif isinstance(xsd_type, b.DateTime):
            out = {"type": "string", "format": "date-time"}
        elif isinstance(xsd_type, b.Date):
            out = {"type": "string", "format": "date"}
        elif isinstance(xsd_type, b.Time):
            out = {"type": "string", "format": "time"}
        elif isinstance(xsd_type, b.Duration):
            out = {"type": "string", "format": "duration"}
        elif isinstance(xsd_type, b.Base64Binary):
            out = {"type": "string", "description": "base64-encoded bytes"}
        elif isinstance(xsd_type, b.HexBinary):
            out = {"type": "string", "pattern": "^[0-9A-Fa-f]*$",
                   "description": "hex-encoded bytes"}
        else:
            out = {"type": "string"}
        qname = getattr(xsd_type, "qname", None)
        facets = self.facets.get(str(qname)) if qname is not None else None
        if not facets and element is not None and getattr(element, "qname", None) is not None:
            facets = self.facets.get(str(element.qname))
        if facets:
            _apply_facets(out, facets)
        return out


def _base_name(xsd_type: Any) -> str:
    """The XSD built-in a (possibly restricted) simple type derives from."""
    for cls in type(xsd_type).__mro__:
        if cls.__module__ == b.__name__:
            return cls.__name__
    return ""


_INTEGER_BOUNDS: dict[str, dict[str, int]] = {
    "Long": {"minimum": -(2**63), "maximum": 2**63 - 1},
    "Int": {"minimum": -(2**31), "maximum": 2**31 - 1},
    "Short": {"minimum": -(2**15), "maximum": 2**15 - 1},
    "Byte": {"minimum": -128, "maximum": 127},
    "NonNegativeInteger": {"minimum": 0},
    "PositiveInteger": {"minimum": 1},
    "NonPositiveInteger": {"maximum": 0},
    "NegativeInteger": {"maximum": -1},
    "UnsignedLong": {"minimum": 0, "maximum": 2**64 - 1},
    "UnsignedInt": {"minimum": 0, "maximum": 2**32 - 1},
    "UnsignedShort": {"minimum": 0, "maximum": 2**16 - 1},
    "UnsignedByte": {"minimum": 0, "maximum": 255},
}

#: XSD regular-expression escapes with no counterpart in JSON Schema's (ECMA 262) dialect
_XSD_ONLY_ESCAPES = re.compile(r"\\[icIC]|\\p\{Is|\\P\{Is")


def _apply_facets(out: dict[str, Any], facets: dict[str, Any]) -> None:
    kind = out.get("type")
    number = kind in ("integer", "number")

    def as_number(text: str) -> int | float | None:
        try:
            return int(text) if kind == "integer" else float(text)
        except ValueError:
            return None

    if "enum" in facets:
        values = [as_number(v) for v in facets["enum"]] if number else list(facets["enum"])
        if all(v is not None for v in values):
            out["enum"] = values
            out.pop("format", None)
    pattern = facets.get("pattern")
    if (isinstance(pattern, str) and kind == "string" and "enum" not in out
            and not _XSD_ONLY_ESCAPES.search(pattern)):
        try:
            re.compile(pattern)
        except re.error:
            pass
        else:
            # an XSD pattern matches the whole value; JSON Schema's matches anywhere
            out["pattern"] = f"^(?:{pattern})$"
    if kind == "string":
        for facet, key in (("minLength", "minLength"), ("maxLength", "maxLength")):
            if facet in facets and str(facets[facet]).isdigit():
                out[key] = int(facets[facet])
    if number:
        for facet, key in (("minInclusive", "minimum"), ("maxInclusive", "maximum"),
                           ("minExclusive", "exclusiveMinimum"),
                           ("maxExclusive", "exclusiveMaximum")):
            if facet in facets:
                value = as_number(str(facets[facet]))
                if value is not None:
                    out[key] = value


def _simple_content(xsd_type: Any) -> bool:
    return any(name == "_value_1" for name, _ in getattr(xsd_type, "elements", []))


def _choice_groups(xsd_type: Any) -> dict[str, list[str]]:
    """Element name → the names of its xsd:choice (its alternatives)."""
    groups: dict[str, list[str]] = {}

    def walk(particle: Any) -> None:
        if isinstance(particle, Choice):
            names = [c.name for c in particle if isinstance(c, Element) and c.name]
            if len(names) > 1:
                for n in names:
                    groups[n] = names
        if hasattr(particle, "__iter__") and not isinstance(particle, Element | str):
            try:
                children = list(particle)
            except TypeError:
                return
            for child in children:
                if not isinstance(child, Element):
                    walk(child)

    root = getattr(xsd_type, "_element", None)
    if root is not None:
        walk(root)
    return groups


def _join(*texts: str | None) -> str:
    return "; ".join(t for t in texts if t)


# -- import ---------------------------------------------------------------------------------


@dataclass
class WsdlImportResult(ImportResult):
    """A connector imported from a WSDL; ``files`` are the WSDL and every local document it
    imports, which must sit beside the connector (``copy_wsdl_files``)."""

    wsdl: Path = Path()
    files: list[Path] = field(default_factory=list)

    def to_yaml(self) -> str:
        text = super().to_yaml().replace(" from ", " from WSDL ", 1)
        # `tool: true` is how the format's docs write an action offered with defaults
        return re.sub(r"(?m)^(\s+tool): \{\}$", r"\1: true", text)


def import_wsdl(source: str | Path, *, name: str | None = None,
                base_url: str | None = None) -> WsdlImportResult:
    """Turn a WSDL file into a ``protocol: soap`` connector: one action per SOAP
    operation. ``name`` overrides the connector name (from the service's name);
    ``base_url`` the service address's origin. Raises :class:`WsdlImportError`."""
    path = Path(source)
    if "://" in str(source):
        raise WsdlImportError(f"{source}: a WSDL is imported from a file: save it first "
                              "(imports are never fetched from the network)")
    if name is not None and not _NAME_RE.match(name):
        raise WsdlImportError(f"connector name {name!r} must be lower snake_case "
                              "(a-z, 0-9, _; starting with a letter)")
    service = load_wsdl(path)
    ops = list(service.operations())
    if not ops:
        raise WsdlImportError(f"{path.name}: no SOAP 1.1 or 1.2 port with operations "
                              "(HTTP GET/POST bindings are not imported)")
    version = "1.1" if any(o.version == "1.1" for o in ops) else "1.2"
    skipped: list[SkippedItem] = []
    warnings: list[str] = []
    chosen: dict[str, SoapOperationInfo] = {}
    names: dict[str, str] = {}
    for op in ops:
        if op.version != version:
            continue  # the same operations over the other SOAP version: one is enough
        where = f"{op.service}/{op.port}/{op.operation}"
        action = snake_case(op.operation) or "operation"
        if not action[0].isalpha():
            action = "op_" + action
        if op.operation in chosen or action in names:
            first = chosen.get(op.operation) or chosen[names[action]]
            skipped.append(SkippedItem(where, f"also offered by {first.service}/{first.port} "
                                       "(imported from there)"))
            continue
        chosen[op.operation] = op
        names[action] = op.operation
    addresses = {o.address for o in chosen.values() if o.address}
    origin = base_url or _origin(next(iter(sorted(addresses)), None))
    if origin is None:
        raise WsdlImportError(f"{path.name}: its ports give no http(s) address; "
                              "pass --base-url")
    if len({_origin(a) for a in addresses}) > 1 and base_url is None:
        hosts = ", ".join(sorted(addresses))
        warnings.append(f"the ports have addresses on several hosts ({hosts}); "
                        f"base_url is {origin}")
    actions: dict[str, Any] = {}
    for action, op_name in names.items():
        op = chosen[op_name]
        builder = SchemaBuilder(service.facets)
        try:
            schema = builder.body(op.operation_obj.input.body if op.operation_obj.input
                                  else None)
        except Exception as exc:  # an odd type skips one action, named
            skipped.append(SkippedItem(f"{op.service}/{op.port}/{op.operation}",
                                       f"its input types cannot be described: {exc}"))
            continue
        problem = input_schema_problem(schema)
        if problem:
            skipped.append(SkippedItem(f"{op.service}/{op.port}/{op.operation}",
                                       f"its input schema is invalid: {problem}"))
            continue
        doc = service.documentation.get(op.operation, "")
        spec: dict[str, Any] = {"summary": op.operation[:200], "input": schema,
                                "soap": {"operation": op.operation, "service": op.service,
                                         "port": op.port},
                                "tool": True}
        if doc:
            spec["description"] = doc[:2000]
        actions[action] = spec
    with_headers: dict[str, list[str]] = {}
    for op_name in names.values():
        header = getattr(chosen[op_name].operation_obj.input, "header", None)
        for part, _ in getattr(getattr(header, "type", None), "elements", []):
            with_headers.setdefault(part, []).append(op_name)
    if with_headers:
        parts = sorted(with_headers)
        shown = ", ".join(parts[:8]) + (f" and {len(parts) - 8} more" if len(parts) > 8
                                        else "")
        warnings.append(f"operations take SOAP headers ({shown}): give those the service "
                        "needs under soap.headers.<name> (templates over the connection's "
                        "settings)")
    encoded = [n for n in names.values() if n in service.encoded]
    if encoded:
        listed = ", ".join(encoded[:10]) + (f" and {len(encoded) - 10} more"
                                            if len(encoded) > 10 else "")
        warnings.append(f"{listed}: SOAP-encoded (use=\"encoded\") bindings; envelopes are "
                        "written as literal XML, which most such services accept: try one "
                        "call before relying on them")
    service_name = next(iter(chosen.values())).service if chosen else path.stem
    connector_name = name or _connector_name(service_name or path.stem)
    data: dict[str, Any] = {
        "name": connector_name,
        "title": service_name,
        "protocol": "soap",
        "soap": {"wsdl": path.name, "version": version},
        "base_url": origin,
        "actions": actions,
    }
    description = service.service_documentation.get(service_name, "")
    if description:
        data["description"] = description[:2000]
    try:
        connector = ConnectorSpec.model_validate(data)
    except Exception as exc:  # pydantic's ValidationError: a bug of ours, said plainly
        raise WsdlImportError(f"{path.name}: the imported connector is invalid: {exc}") from None
    return WsdlImportResult(connector=connector, skipped=skipped, warnings=warnings,
                            source=str(source), wsdl=service.path, files=service.files)


def copy_wsdl_files(result: WsdlImportResult, directory: Path) -> list[Path]:
    """Copy the WSDL and the local documents it imports into ``directory`` (keeping their
    places relative to the WSDL), unless they are there already; the copies' paths."""
    root = result.wsdl.parent
    directory = Path(os.path.realpath(directory))
    if directory == root:
        return []
    written = []
    for source in result.files:
        target = directory / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written


def _origin(address: str | None) -> str | None:
    if not address:
        return None
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _connector_name(title: str) -> str:
    base = snake_case(title)[:40].strip("_") or "soap_service"
    return base if base[0].isalpha() else "soap_" + base



def is_wsdl(source: str | Path) -> bool:
    """Whether ``source`` names a WSDL file (by its extension, or by its first bytes: a
    ``definitions`` element of the WSDL 1.1 namespace)."""
    text = str(source)
    if "://" in text:
        return text.lower().split("?", 1)[0].endswith(".wsdl") or text.lower().endswith("?wsdl")
    if text.lower().endswith(".wsdl"):
        return True
    try:
        with open(text, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"<") and WSDL_NS.encode() in head and b"definitions" in head


def soap_problems(spec: ConnectorSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of a SOAP connector, found when it loads (``patchwire connector check``):
    its WSDL unreadable or refused, an action naming an operation (service, port) the WSDL
    lacks, a WS-Security template naming an undeclared setting."""
    from patchwire.connectors._template import compile_template

    found: list[tuple[tuple[str | int, ...], str]] = []
    soap = spec.soap
    if spec.protocol != "soap" or soap is None:
        return found
    if "://" in soap.wsdl:
        return [(("soap", "wsdl"), "the WSDL must be a file beside the connector (save it, "
                 "or import it with `patchwire connector import service.wsdl`)")]
    if soap.ws_security is not None:
        for key in ("username", "password"):
            for name in compile_template(getattr(soap.ws_security, key)).names:
                if name.split(".")[0] not in spec.settings:
                    found.append((("soap", "ws_security", key),
                                  f"{{{name}}} names no setting of this connector "
                                  f"(settings: {', '.join(sorted(spec.settings)) or 'none'})"))
    def header_names(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set().union(*(header_names(v) for v in value.values())) if value else set()
        if isinstance(value, list):
            return set().union(*(header_names(v) for v in value)) if value else set()
        return set(compile_template(value).names) if isinstance(value, str) else set()

    for part, value in soap.headers.items():
        for name in sorted(header_names(value)):
            if name.split(".")[0] not in spec.settings:
                found.append((("soap", "headers", part),
                              f"{{{name}}} names no setting of this connector "
                              f"(settings: {', '.join(sorted(spec.settings)) or 'none'})"))
    try:
        service = load_wsdl(soap.wsdl)
    except WsdlImportError as exc:
        return [*found, (("soap", "wsdl"), str(exc))]
    for name, action in spec.actions.items():
        if action.soap is None:
            continue
        try:
            service.find(action.soap.operation, action.soap.service, action.soap.port,
                         soap.version)
        except LookupError as exc:
            found.append((("actions", name, "soap", "operation"), str(exc)))
    return found
