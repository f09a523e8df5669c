"""The schema registry: the official XSDs, compiled once per process and reused for every message.

Three compiled schemas cover what the gateway validates:

* ``msghead`` — MsgHead v1.2 together with its payloads. MsgHead's ``RefDoc/Content`` is
  ``xs:any processContents="strict"``, so the payload namespace's schema must be loaded with it: an
  in-memory driver schema imports MsgHead (which brings XML-DSig and the Base64Container for Vedlegg),
  Dialogmelding v1.1 and Dialogmelding v1.0 by absolute file URIs of the vendored files.
* ``apprec-1.0`` and ``apprec-1.1`` — standalone AppRec schemas.

The vendored XSDs are never edited. Two of them name *remote* schemaLocations (XML-DSig from w3.org,
``kith.xsd`` from kith.no); a resolver serves those from the local copies and refuses every other
remote URL, and the parser has ``no_network`` set, so compiling never touches the network.
``xmldsig-core-schema.xsd`` declares ``&dsig;`` in an internal DTD subset; schema files are parsed
with internal entities expanded (they are our own trusted files) but no DTD loaded. Instance
documents never get that leniency: they come through :func:`edi_gateway.xml.safe.parse_xml`.

Thread safety: an lxml ``XMLSchema`` keeps its error log on the object, so concurrent ``validate``
calls on one object are not safe. Each compiled schema therefore carries a lock and validation of
one document holds it (validating a message takes well under a millisecond, so contention is low);
the compiled object itself is shared, never copied.

Error messages from libxml2 sometimes quote element or attribute *values*, which may be personal data.
``XmlRejected`` messages keep the line, the element (Clark name), libxml2's error name and the
message text with every quoted value replaced by ``'…'``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast
from urllib.parse import urlsplit

from lxml import etree

from edi_gateway.errors import XmlRejected
from edi_gateway.resources import resource_dir
from edi_gateway.xml import namespaces as ns

MAX_REPORTED_ERRORS: Final = 3

MSGHEAD_XSD: Final = "msghead-v1.2/MsgHead-v1_2.xsd"
DIALOG_1_1_XSD: Final = "dialogmelding-v1.1/dialogmelding/2013-01-23/dialogmelding-v1.1.xsd"
DIALOG_1_0_XSD: Final = "dialogmelding-v1.0/dialogmelding.xsd"
APPREC_1_0_XSD: Final = "apprec-v1.0/AppRec-v1-2004-11-21.xsd"
APPREC_1_1_XSD: Final = "apprec-v1.1/AppRec-v1.1.xsd"

# Remote schemaLocations written inside the official files -> the vendored copy that serves them.
REMOTE_LOCATIONS: Final[dict[str, str]] = {
    "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd": "msghead-v1.2/xmldsig-core-schema.xsd",
    "http://www.kith.no/xmlstds/kith.xsd": "apprec-v1.1/kith.xsd",
}

MSGHEAD_SCHEMA: Final = "msghead"
APPREC_1_0_SCHEMA: Final = "apprec-1.0"
APPREC_1_1_SCHEMA: Final = "apprec-1.1"

# Namespace of a document's root (or of a payload) -> the compiled schema that validates it.
_SCHEMA_BY_NAMESPACE: Final[dict[str, str]] = {
    ns.MSGHEAD: MSGHEAD_SCHEMA,
    ns.DIALOG_1_1: MSGHEAD_SCHEMA,
    ns.DIALOG_1_0: MSGHEAD_SCHEMA,
    ns.BASE64: MSGHEAD_SCHEMA,
    ns.APPREC_1_0: APPREC_1_0_SCHEMA,
    ns.APPREC_1_1: APPREC_1_1_SCHEMA,
}

_APPREC_ROOTS: Final = {ns.ns(ns.APPREC_1_0, "AppRec"), ns.ns(ns.APPREC_1_1, "AppRec")}


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One schema violation, stripped of document values.

    Attributes:
        line: line number in the document (0 when libxml2 does not know it).
        element: the Clark name of the element concerned, when the message names one.
        path: libxml2's XPath of the node, e.g. ``/*/*[1]/*[3]`` (positions only, no values).
        type_name: libxml2's error name, e.g. ``SCHEMAV_ELEMENT_CONTENT``.
        message: libxml2's message with every quoted value replaced by ``'…'``.
    """

    line: int
    element: str | None
    path: str | None
    type_name: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} [{self.type_name}]"


class SchemaInvalid(XmlRejected):
    """A document is well-formed but not valid against its schema (always code ``T02``).

    Attributes:
        errors: every violation found, without document values.
    """

    def __init__(self, schema_name: str, errors: list[SchemaError]) -> None:
        self.errors: tuple[SchemaError, ...] = tuple(errors)
        shown = "; ".join(str(error) for error in errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f" (and {more} more)" if more > 0 else ""
        super().__init__(f"not valid against the {schema_name} schema: {shown}{tail}", code="T02")


@dataclass(eq=False)
class CompiledSchema:
    """A compiled XSD, shared by every thread; ``validate`` serialises calls on its lock.

    Attributes:
        name: registry name (``msghead``, ``apprec-1.0``, ``apprec-1.1``).
        xmlschema: the lxml schema object; do not call it directly from several threads.
    """

    name: str
    xmlschema: etree.XMLSchema
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def errors(self, root: etree._Element) -> list[SchemaError]:
        """Validate ``root`` (a document or an element, as the root of its subtree).

        Returns:
            Every violation found, in document order; empty when the document is valid.
        """
        with self._lock:
            if self.xmlschema.validate(root):
                return []
            # lxml-stubs does not declare _ErrorLog iterable, but it is (one _LogEntry per error).
            entries = cast(Iterable[etree._LogEntry], self.xmlschema.error_log)
            return [_sanitise(entry) for entry in entries]

    def validate(self, root: etree._Element) -> None:
        """Validate ``root`` and raise when it is not valid.

        Raises:
            SchemaInvalid: (an ``XmlRejected``, code ``T02``) naming the first few violations.
        """
        found = self.errors(root)
        if found:
            raise SchemaInvalid(self.name, found)


def validate_msghead(root: etree._Element) -> None:
    """Validate a complete MsgHead v1.2 instance, payload included (Dialogmelding 1.1/1.0, Vedlegg).

    An enveloped ``ds:Signature`` as MsgHead's last child is allowed (the schema has a slot for it).

    Raises:
        XmlRejected: code ``T02`` when the root is not a MsgHead or the document is not schema-valid.
    """
    if root.tag != ns.ns(ns.MSGHEAD, "MsgHead"):
        raise XmlRejected(f"the root element is {_clark(root)}, not a MsgHead v1.2", code="T02")
    _compiled(MSGHEAD_SCHEMA).validate(root)


def validate_apprec(root: etree._Element) -> None:
    """Validate an AppRec, choosing v1.0 or v1.1 by the root's namespace.

    The AppRec schemas have no slot for a signature: validate the verified document with any
    ``ds:Signature`` removed.

    Raises:
        XmlRejected: code ``T02`` when the root is not an AppRec or the document is not schema-valid.
    """
    if root.tag not in _APPREC_ROOTS:
        raise XmlRejected(f"the root element is {_clark(root)}, not an AppRec v1.0 or v1.1", code="T02")
    schema_for(etree.QName(root).namespace or "").validate(root)


def schema_for(namespace: str) -> CompiledSchema:
    """Return the compiled schema for documents (or payloads) in ``namespace``, compiling it once.

    MsgHead, Dialogmelding 1.1/1.0 and Base64Container share the one ``msghead`` driver schema.

    Raises:
        XmlRejected: code ``T02`` when no vendored schema covers the namespace.
    """
    try:
        name = _SCHEMA_BY_NAMESPACE[namespace]
    except KeyError:
        raise XmlRejected("no schema is registered for the document's namespace", code="T02") from None
    return _compiled(name)


def warm_up() -> tuple[str, ...]:
    """Compile every registered schema now (start-up and ``/readyz``) instead of on first use.

    Returns:
        The names of the compiled schemas.

    Raises:
        etree.XMLSchemaParseError: when a vendored schema is missing or broken (an installation fault).
    """
    names = (MSGHEAD_SCHEMA, APPREC_1_0_SCHEMA, APPREC_1_1_SCHEMA)
    for name in names:
        _compiled(name)
    return names


def supported_namespaces() -> frozenset[str]:
    """The namespaces :func:`schema_for` knows."""
    return frozenset(_SCHEMA_BY_NAMESPACE)


# --- compilation (once per process) -------------------------------------------------------------

_registry: dict[str, CompiledSchema] = {}
_registry_lock = threading.Lock()


def _compiled(name: str) -> CompiledSchema:
    schema = _registry.get(name)
    if schema is not None:
        return schema
    with _registry_lock:
        # A second thread may have compiled it while this one waited for the lock.
        schema = _registry.get(name)
        if schema is None:
            schema = CompiledSchema(name, _COMPILERS[name]())
            _registry[name] = schema
    return schema


class _VendoredResolver(etree.Resolver):
    """Serves the official remote schemaLocations from the vendored copies; refuses other remote URLs."""

    def __init__(self, schema_dir: Path) -> None:
        super().__init__()
        self._schema_dir = schema_dir

    # lxml-stubs omit the ``context`` argument and ``resolve_filename``; lxml passes and has both.
    def resolve(  # type: ignore[override]
        self, system_url: str | None, public_id: str | None, context: object
    ) -> object:
        if system_url is None:
            return None
        local = REMOTE_LOCATIONS.get(system_url)
        if local is not None:
            return self.resolve_filename(str(self._schema_dir / local), context)  # type: ignore[attr-defined]
        if urlsplit(system_url).scheme not in ("", "file"):
            raise OSError("a schema refers to a remote location that is not vendored")
        return None


def _schema_parser() -> etree.XMLParser:
    # Trusted vendored files: internal entities (xmldsig's &dsig;) expand, no DTD load, no network.
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=True)
    parser.resolvers.add(_VendoredResolver(resource_dir("schemas")))
    return parser


def _compile_file(relative: str) -> etree.XMLSchema:
    path = resource_dir("schemas") / relative
    return etree.XMLSchema(etree.parse(str(path), _schema_parser()))


def _compile_msghead_driver() -> etree.XMLSchema:
    schema_dir = resource_dir("schemas")
    driver = etree.Element(
        ns.ns(_XS, "schema"),
        nsmap={"xs": _XS},
        targetNamespace="urn:edi-gateway:msghead-driver",
        elementFormDefault="qualified",
    )
    for namespace, relative in (
        (ns.MSGHEAD, MSGHEAD_XSD),
        (ns.DIALOG_1_1, DIALOG_1_1_XSD),
        (ns.DIALOG_1_0, DIALOG_1_0_XSD),
    ):
        location = (schema_dir / relative).as_uri()
        etree.SubElement(driver, ns.ns(_XS, "import"), namespace=namespace, schemaLocation=location)
    # Re-parse through the schema parser: the imported files' own remote imports (XML-DSig) then
    # resolve with our resolver attached to the document.
    document = etree.fromstring(
        etree.tostring(driver), _schema_parser(), base_url=(schema_dir / "driver.xsd").as_uri()
    )
    return etree.XMLSchema(document)


_XS: Final = "http://www.w3.org/2001/XMLSchema"

_COMPILERS: Final[dict[str, Callable[[], etree.XMLSchema]]] = {
    MSGHEAD_SCHEMA: _compile_msghead_driver,
    APPREC_1_0_SCHEMA: lambda: _compile_file(APPREC_1_0_XSD),
    APPREC_1_1_SCHEMA: lambda: _compile_file(APPREC_1_1_XSD),
}


# --- error reporting without personal data ------------------------------------------------------

_ELEMENT_PREFIX = re.compile(r"^Element '(?P<element>[^']*)'(?:, attribute '(?P<attribute>[^']*)')?: ")
_QUOTED = re.compile(r"(?<!\[facet )'[^']*'")  # a facet's name ('pattern', 'enumeration') is kept
# Quoted names libxml2 adds itself (Clark names, built-in types) are kept; all else may be a value.
_SAFE_QUOTED = re.compile(r"'(?:\{[^}']*\}[\w.\-]+|xs:\w+)'")
_MAX_MESSAGE = 300


def _sanitise(entry: etree._LogEntry) -> SchemaError:
    """Keep line, element and error kind; replace every quoted value in libxml2's text by ``'…'``."""
    text = entry.message.strip()
    element: str | None = None
    prefix = ""
    match = _ELEMENT_PREFIX.match(text)
    if match:
        element = match.group("element")
        prefix, text = match.group(0), text[match.end() :]
    text = _QUOTED.sub(lambda m: m.group(0) if _SAFE_QUOTED.fullmatch(m.group(0)) else "'…'", text)
    message = (prefix + text)[:_MAX_MESSAGE]
    return SchemaError(
        line=entry.line, element=element, path=entry.path, type_name=entry.type_name, message=message
    )


def _clark(element: etree._Element) -> str:
    """The element's tag as text (comments and processing instructions have a function as tag)."""
    return element.tag if isinstance(element.tag, str) else type(element).__name__
