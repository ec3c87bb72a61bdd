"""Bodies by content type: an answer read as JSON, XML, CSV, text or binary, and a
request body written as XML.

Reading (:func:`read_answer`), by the answer's ``Content-Type``:

- JSON (``application/json``, ``+json``, or no type and a body starting ``{``/``[``):
  parsed as it is.
- XML (``application/xml``, ``text/xml``, ``+xml``): parsed safely (below) and mapped to
  JSON-like data for JSONata:

  - the document is ``{root: value}`` (the root element's local name);
  - an element with neither attributes nor child elements is its text (a string; XML
    has no numbers, ``$number()`` makes them), or None when empty;
  - any other element is an object: each attribute as ``"@name"``, each child element
    under its name — a name that repeats becomes a list, in document order — and its
    text, when it has any besides whitespace between children, as ``"#text"``;
  - namespaces are dropped: elements and attributes go by their local names
    (``<s:Body>`` is ``Body``, ``xsi:type`` is ``@type``); ``xmlns`` declarations,
    comments and processing instructions are not data;
  - CDATA is text; surrounding whitespace of text is trimmed.

- CSV (``text/csv``, ``application/csv``; ``text/tab-separated-values`` by tabs): a list
  of objects keyed by the header row. Values stay strings (an empty cell is ``""``); a
  row shorter than the header lacks the keys past its last cell, cells past the
  header go in a list under ``"_extra"``; a header repeated gets ``_2``, ``_3``..., an
  empty one ``column_<n>``. At most :data:`CSV_MAX_ROWS` rows and
  :data:`CSV_MAX_COLUMNS` columns.
- Text (``text/*`` and the like, or no type and UTF-8): the decoded string.
- Anything else is binary (PDF, images, ``application/octet-stream``, archives): a
  :class:`BinaryAnswer` whose ``meta`` is what mappings and models see — ``{"blob": id,
  "content_type", "size", "sha256", "filename"}`` — while the call path stores the
  bytes (capped by the connector's ``max_blob_bytes``: a larger answer is a
  ResponseMappingError naming the cap, and nothing is kept). Bytes never reach a model's
  context, as base64 or otherwise.

XML is parsed safe by construction: ``defusedxml``'s expat parser refusing any document
type declaration (so no entity is ever declared: no external entity reads a file or a
URL, no expansion bomb, billion laughs or quadratic), and the tree built here counts as
it goes, stopping past :data:`XML_MAX_DEPTH` levels or :data:`XML_MAX_NODES` elements and
attributes. Each refusal is a ResponseMappingError saying what was refused.

Writing (:func:`xml_body`): ``body_type: xml`` — the rendered body is a mapping with one
key, the root element's name; ``"@name"`` keys become attributes, ``"#text"`` the text, a
list repeated elements, None an empty element; every value is escaped, names must be XML
names (an argument cannot inject markup).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, Final
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape, quoteattr

import orjson
from defusedxml import (  # type: ignore[import-untyped]
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]

from patchwire.errors import CallContext, RequestRenderError, ResponseMappingError
from patchwire.http import RawResponse, Redactor, excerpt

__all__ = [
    "CSV_MAX_COLUMNS",
    "CSV_MAX_ROWS",
    "XML_MAX_DEPTH",
    "XML_MAX_NODES",
    "BinaryAnswer",
    "KeptBlob",
    "read_answer",
    "xml_body",
]

#: deepest nesting of elements an XML answer may have (real documents rarely pass 20)
XML_MAX_DEPTH: Final = 64
#: most elements plus attributes an XML answer may have (a page of 1,000 records of 50
#: fields is 51,000)
XML_MAX_NODES: Final = 100_000
#: most data rows, and columns, a CSV answer may have
CSV_MAX_ROWS: Final = 100_000
CSV_MAX_COLUMNS: Final = 1_000
#: the longest file name kept from Content-Disposition
MAX_FILENAME: Final = 120

_TEXT_TYPES: Final = frozenset({
    "application/x-www-form-urlencoded", "application/javascript",
    "application/ecmascript", "application/yaml", "application/x-yaml",
    "application/graphql", "application/sql", "application/x-ndjson",
})
_CSV_TYPES: Final = {"text/csv": ",", "application/csv": ",",
                     "text/tab-separated-values": "\t"}


@dataclass(frozen=True, slots=True)
class BinaryAnswer:
    """A binary answer: ``meta`` is what a mapping (and a model) sees, ``content`` the
    bytes the call path keeps under ``meta["blob"]``."""

    meta: dict[str, Any]
    content: bytes

    def holding(self, result: Any) -> KeptBlob:
        """The marker ``map_response`` returns: the mapped ``result`` and this blob, which
        the call path stores before handing the result on."""
        return KeptBlob(result, self)


@dataclass(frozen=True, slots=True)
class KeptBlob:
    """What ``CompiledAction.map_response`` returns for a binary answer: the call path
    stores ``blob`` (it is async; the mapping is not), then returns ``result``."""

    result: Any
    blob: BinaryAnswer


def media_type(header: str) -> tuple[str, str | None]:
    """A Content-Type's media type (lowercase, no parameters) and its charset, if named."""
    kind, _, params = header.partition(";")
    charset = None
    if params:
        match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", params, re.IGNORECASE)
        charset = match.group(1) if match else None
    return kind.strip().lower(), charset


def read_answer(raw: RawResponse, context: CallContext, redact: Redactor, *,
                max_blob_bytes: int | None) -> Any:
    """The answer's body as data (see the module docstring). ``max_blob_bytes``: a
    binary answer's cap, or None where nothing is kept (an error answer: its metadata
    only, ``blob`` None)."""
    if not raw.body:
        return None
    header = raw.headers.get("Content-Type", "")
    # JSON first, tested on the header as it is: most answers are, on the hot path
    if "json" in header or (not header and raw.body[:1] in (b"{", b"[")):
        try:
            return orjson.loads(raw.body)
        except orjson.JSONDecodeError as exc:
            raise ResponseMappingError(
                f"the upstream declared JSON but sent something else: "
                f"{excerpt(raw.body, redact, 120)!r} ({exc})",
                context=context,
            ) from None
    kind, charset = media_type(header)
    if kind.startswith(("image/", "audio/", "video/")):
        # an SVG too (image/svg+xml): a picture to keep, not data to map
        return _binary(raw, kind, context, max_blob_bytes)
    if kind.endswith("/xml") or kind.endswith("+xml"):
        return read_xml(raw.body, charset, context, redact)
    if kind in _CSV_TYPES:
        return read_csv(raw.body, charset, _CSV_TYPES[kind], context)
    if kind.startswith("text/") or kind in _TEXT_TYPES or (not kind and _is_text(raw.body)):
        return _decode(raw.body, charset)
    return _binary(raw, kind or "application/octet-stream", context, max_blob_bytes)


def _is_text(body: bytes) -> bool:
    if b"\x00" in body[:8192]:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


# -- XML --------------------------------------------------------------------------------------


class _Refused(Exception):
    """Raised inside the parser's callbacks to stop it (expat passes it through)."""


class _Builder:
    """An ElementTree parser target building the JSON-like value directly, counting
    depth and nodes as it goes (so a hostile document stops where it passes a bound,
    before it is all in memory)."""

    def __init__(self) -> None:
        # each open element: (name, attributes or None, children (name, value), text parts)
        self.stack: list[tuple[str, dict[str, Any] | None, list[tuple[str, Any]],
                               list[str]]] = []
        self.nodes = 0
        self.root: tuple[str, Any] | None = None
        #: qualified name -> local name (documents repeat a few names many times)
        self.names: dict[str, str] = {}

    def _name(self, qualified: str) -> str:
        local = self.names.get(qualified)
        if local is None:
            local = self.names[qualified] = _local(qualified)
        return local

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if len(self.stack) >= XML_MAX_DEPTH:
            raise _Refused(f"elements nested deeper than {XML_MAX_DEPTH} levels")
        self.nodes += 1 + len(attrib)
        if self.nodes > XML_MAX_NODES:
            raise _Refused(f"more than {XML_MAX_NODES} elements and attributes")
        attributes = ({"@" + self._name(k): v for k, v in attrib.items()}
                      if attrib else None)
        self.stack.append((self._name(tag), attributes, [], []))

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1][3].append(text)

    def end(self, tag: str) -> None:
        name, attributes, children, parts = self.stack.pop()
        text = "".join(parts).strip() if parts else ""
        value: Any
        if attributes is None and not children:
            value = text or None
        else:
            value = attributes or {}
            repeated: set[str] | None = None
            for child, child_value in children:
                if child not in value:
                    value[child] = child_value
                elif repeated is not None and child in repeated:
                    value[child].append(child_value)
                else:
                    value[child] = [value[child], child_value]
                    if repeated is None:
                        repeated = set()
                    repeated.add(child)
            if text:
                value["#text"] = text
        if self.stack:
            self.stack[-1][2].append((name, value))
        else:
            self.root = (name, value)

    def close(self) -> Any:
        if self.root is None:
            return None
        return {self.root[0]: self.root[1]}


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1] if name.startswith("{") else name.rsplit(":", 1)[-1]


def read_xml(body: bytes, charset: str | None, context: CallContext, redact: Redactor) -> Any:
    """An XML answer as JSON-like data (module docstring), parsed safely."""
    builder = _Builder()
    try:
        parser = DefusedXMLParser(target=builder, encoding=charset, forbid_dtd=True,
                                  forbid_entities=True, forbid_external=True)
        parser.feed(body)
        return parser.close()
    except DTDForbidden as exc:
        where = f" pointing at {redact(str(exc.sysid))!r}" if exc.sysid else ""
        raise ResponseMappingError(
            f"refused the upstream's XML answer: it has a document type declaration "
            f"(<!DOCTYPE {exc.name}>{where}); Patchwire reads no DTD, because a DTD can "
            f"declare entities that read local files or URLs (XXE) or expand without "
            f"bound (entity expansion bombs)", context=context) from None
    except (EntitiesForbidden, ExternalReferenceForbidden) as exc:
        # only reachable if a parser let a DTD through: kept so the refusal says why
        raise ResponseMappingError(
            f"refused the upstream's XML answer: it declares or references an entity "
            f"({type(exc).__name__})", context=context) from None
    except _Refused as exc:
        raise ResponseMappingError(
            f"refused the upstream's XML answer: {exc}", context=context) from None
    except ParseError as exc:
        raise ResponseMappingError(
            f"the upstream's XML answer is not well-formed ({exc}): "
            f"{excerpt(body, redact, 120)!r}", context=context) from None
    except LookupError:
        raise ResponseMappingError(
            f"the upstream's XML answer names an unknown character set "
            f"{redact(str(charset))!r}", context=context) from None


# -- CSV --------------------------------------------------------------------------------------


def read_csv(body: bytes, charset: str | None, delimiter: str, context: CallContext) -> Any:
    """A CSV answer as a list of objects keyed by its header row (module docstring)."""
    text = _decode(body, charset).removeprefix("\ufeff")  # a byte order mark (Excel's)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    out: list[dict[str, Any]] = []
    try:
        header: list[str] | None = None
        for row in rows:
            if not row:
                continue  # blank line
            if header is None:
                if len(row) > CSV_MAX_COLUMNS:
                    raise ResponseMappingError(
                        f"the upstream's CSV answer has {len(row)} columns, more than "
                        f"{CSV_MAX_COLUMNS}", context=context)
                header = _header(row)
                continue
            if len(out) >= CSV_MAX_ROWS:
                raise ResponseMappingError(
                    f"the upstream's CSV answer has more than {CSV_MAX_ROWS} rows; ask "
                    f"it for fewer (a page, a filter)", context=context)
            record: dict[str, Any] = dict(zip(header, row, strict=False))
            if len(row) > len(header):
                record["_extra"] = row[len(header):len(header) + CSV_MAX_COLUMNS]
            out.append(record)
    except csv.Error as exc:
        raise ResponseMappingError(
            f"the upstream's CSV answer cannot be read at line {rows.line_num}: {exc}",
            context=context) from None
    return out


def _header(row: list[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(row, 1):
        name = cell.strip() or f"column_{index}"
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        names.append(candidate)
    return names


# -- binary -----------------------------------------------------------------------------------


def _binary(raw: RawResponse, kind: str, context: CallContext,
            max_blob_bytes: int | None) -> Any:
    size = len(raw.body)
    if max_blob_bytes is not None and size > max_blob_bytes:
        raise ResponseMappingError(
            f"the upstream's binary answer ({kind}, {size} bytes) is larger than the "
            f"connector's max_blob_bytes ({max_blob_bytes}); nothing was kept",
            context=context)
    meta = {
        "blob": None if max_blob_bytes is None else secrets.token_hex(16),
        "content_type": _clean_type(kind),
        "size": size,
        "sha256": hashlib.sha256(raw.body).hexdigest(),
        "filename": safe_filename(raw.headers.get("Content-Disposition")),
    }
    if max_blob_bytes is None:
        return meta
    return BinaryAnswer(meta, raw.body)


def _clean_type(kind: str) -> str:
    # kept and served back as this blob's Content-Type: one plain token/token
    return kind if re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9!#$&^_.+-]{1,127}",
                                kind) else "application/octet-stream"


def safe_filename(disposition: str | None) -> str | None:
    """The file name a Content-Disposition header gives (``filename*`` preferred), made
    safe to show and to send back: no directory part, no control or quoting
    characters, no leading dot, at most :data:`MAX_FILENAME` characters; None if none
    is left."""
    if not disposition:
        return None
    message = Message()
    try:
        message["Content-Disposition"] = disposition
        name = message.get_filename()
    except (ValueError, TypeError, LookupError):
        return None
    if not name:
        return None
    name = re.split(r"[/\\]", str(name))[-1]
    name = "".join(c if c.isalnum() or c in " ._-()+,=@[]" else "_"
                   for c in unicodedata.normalize("NFC", name)
                   if unicodedata.category(c)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem if dot else name)[:MAX_FILENAME - len(ext) - 1].rstrip(" .") + (
            "." + ext if ext else "")
    return name or None


# -- writing XML ------------------------------------------------------------------------------

#: an XML name, optionally prefixed (``ns:Name``); ASCII letters are enough for APIs
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*(:[A-Za-z_][A-Za-z0-9_.-]*)?")
#: characters XML 1.0 cannot carry at all, escaped or not
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_body(body: Any, context: CallContext) -> bytes:
    """``body_type: xml``: the rendered body (one key: the root element) as an XML
    document; RequestRenderError naming what cannot be written."""
    if not isinstance(body, Mapping) or len(body) != 1:
        keys = ", ".join(map(str, body)) if isinstance(body, Mapping) else type(body).__name__
        raise RequestRenderError(
            f"an XML body is a mapping with one key, the root element's name (got "
            f"{keys or 'nothing'})", context=context)
    ((root, value),) = body.items()
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>']
    _element(out, str(root), value, context, "$", 0)
    return "".join(out).encode()


def _element(out: list[str], name: str, value: Any, context: CallContext, where: str,
             depth: int) -> None:
    here = f"{where}.{name}"
    if not _XML_NAME.fullmatch(name):
        raise RequestRenderError(f"{name!r} (at {where}) is not an XML element name",
                                 context=context)
    if depth > XML_MAX_DEPTH:
        raise RequestRenderError(f"the XML body nests deeper than {XML_MAX_DEPTH} levels "
                                 f"(at {here})", context=context)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, list):
                raise RequestRenderError(
                    f"a list inside a list has no XML form (at {here}[{index}])",
                    context=context)
            _element(out, name, item, context, where, depth)
        return
    if value is None:
        out.append(f"<{name}/>")
        return
    if not isinstance(value, Mapping):
        out.append(f"<{name}>{_text(value, context, here)}</{name}>")
        return
    out.append(f"<{name}")
    for key, item in value.items():
        key = str(key)
        if not key.startswith("@"):
            continue
        attribute = key[1:]
        if not _XML_NAME.fullmatch(attribute):
            raise RequestRenderError(f"{key!r} (at {here}) is not an XML attribute name",
                                     context=context)
        if item is None:
            continue
        if isinstance(item, Mapping | list):
            raise RequestRenderError(f"attribute {key!r} (at {here}) must be a single value",
                                     context=context)
        out.append(f" {attribute}={quoteattr(_plain(item, context, here))}")
    children = [(str(k), v) for k, v in value.items() if not str(k).startswith("@")]
    if not children:
        out.append("/>")
        return
    out.append(">")
    for key, item in children:
        if key == "#text":
            if item is not None:
                out.append(_text(item, context, here))
        else:
            _element(out, key, item, context, here, depth + 1)
    out.append(f"</{name}>")


def _plain(value: Any, context: CallContext, where: str) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Mapping | list):
        raise RequestRenderError(f"{where} must be a single value here", context=context)
    else:
        text = str(value)
    if _NOT_XML.search(text):
        raise RequestRenderError(
            f"{where} holds a control character that XML cannot carry", context=context)
    return text


def _text(value: Any, context: CallContext, where: str) -> str:
    return escape(_plain(value, context, where))
