"""Hardened parsing of XML from outside: the only way untrusted bytes become an lxml tree.

What is refused, always with ``XmlRejected(code="T01")`` (kodeverk 8221: not well-formed / unreadable):

* documents larger than ``max_bytes``, before the parser sees a byte;
* any DOCTYPE, with or without an internal subset: no DTD is ever loaded or applied, so no entity
  declaration can take effect (billion laughs, external entities to ``file://`` or ``http://``);
* references to entities other than the five predefined ones and character references (libxml2
  reports them as undeclared, since no DTD is accepted);
* element nesting deeper than ``max_depth``. libxml2 itself stops at 256 levels (``huge_tree`` stays
  off), so the effective limit is ``min(max_depth, 256)``; either way a 100 000-deep document fails
  in microseconds, while the parser is still reading it;
* anything libxml2 finds not well-formed (including entity amplification it detects on its own).

What is *not* done: XInclude is never processed. An ``xi:include`` element is kept as an ordinary
element, its ``href`` is not read, and the schema validation that follows rejects it wherever the
schema does not allow it. No network access ever (``no_network``), no file access beyond the bytes given.

One reading of the text. Comments and processing instructions are dropped while parsing, CDATA
sections become ordinary text, and character references are resolved, so
``<Id>81<!---->0&#48;<![CDATA[5]]></Id>`` has exactly one text, ``81005``: every later reader (the
schema, the signature check, the AppRec and MsgHead readers) sees the same value. This leaves signatures intact:
exclusive C14N without comments, the only canonicalization accepted, ignores comments anyway. It does
keep processing instructions, so a document *signed* with one inside its element no longer verifies
(refused, never accepted); none of the messages the gateway speaks carries one.

Identifiers are read by :func:`identifier_text` and :func:`read_her_id` alone: the full string value,
trimmed, then checked strictly; a value that is not a clean identifier is refused with
:class:`UnreadableIdentifier`, never truncated or repaired.

Declared encodings other than UTF-8 (ISO-8859-1 occurs in this field) are decoded by libxml2.

lxml parser objects are not safe to share between threads, so each thread gets its own, created once
on first use and reused for every later document.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable
from typing import Final, cast

from lxml import etree

from edi_gateway.domain.apprec import her_id_of_text
from edi_gateway.errors import XmlRejected

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 256
MAX_IDENTIFIER_LENGTH: Final = 128
"""Longest identifier accepted (a UUID MsgId has 36 characters, a HER-id at most 9 digits)."""

_XML_WHITESPACE: Final = " \t\r\n"

_local = threading.local()


def parse_xml(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> etree._Element:
    """Parse untrusted bytes into an element tree, refusing every hostile or malformed input.

    Args:
        data: the raw document, as received (any declared encoding libxml2 can decode).
        max_bytes: largest accepted document size in bytes.
        max_depth: deepest accepted element nesting (the root element is depth 1).

    Returns:
        The root element of the parsed document.

    Raises:
        XmlRejected: with code ``T01`` when the document is too large, too deep, not well-formed,
            or uses a DOCTYPE/entities. The message never quotes document content.
    """
    if len(data) > max_bytes:
        raise XmlRejected(f"the document is {len(data)} bytes, over the limit of {max_bytes}", code="T01")
    root = _parse(data)
    _refuse_doctype(root)
    _refuse_deep_nesting(root, max_depth)
    return root


def _parser() -> etree.XMLParser:
    """Return this thread's hardened parser, creating it on the thread's first call."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
            remove_comments=True,
            remove_pis=True,
            strip_cdata=True,
        )
        _local.parser = parser
    return parser


def _parse(data: bytes) -> etree._Element:
    try:
        return etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"the document is not well-formed XML ({_describe(exc)})", code="T01") from exc
    except (ValueError, LookupError) as exc:
        # lxml raises these for input it cannot even start on (an unknown encoding, for one).
        raise XmlRejected(f"the document cannot be read as XML ({type(exc).__name__})", code="T01") from exc


def _describe(exc: etree.XMLSyntaxError) -> str:
    """Where and what went wrong, by libxml2's error name only: its text may quote document content."""
    # lxml-stubs does not declare _ErrorLog iterable, but it is (one _LogEntry per error).
    entries = list(cast(Iterable[etree._LogEntry], exc.error_log))
    if not entries:
        return f"line {exc.lineno}"
    entry = entries[-1]
    return f"line {entry.line}, column {entry.column}: {entry.type_name}"


def _refuse_doctype(root: etree._Element) -> None:
    docinfo = root.getroottree().docinfo
    doctype: str = docinfo.doctype  # type: ignore[attr-defined]  # missing from lxml-stubs
    if doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlRejected("the document has a DOCTYPE; DTDs and entity declarations are refused", code="T01")


def _refuse_deep_nesting(root: etree._Element, max_depth: int) -> None:
    depth = 0
    for event, _element in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > max_depth:
            raise XmlRejected(f"the document nests elements deeper than {max_depth} levels", code="T01")


# --- identifiers --------------------------------------------------------------------------------


class UnreadableIdentifier(XmlRejected):
    """An identifier element whose value is not a clean identifier (``T99``, "Annen feil på format").

    The message names the element only, never the value: ids may be person numbers.
    """

    def __init__(self, message: str, *, code: str = "T99") -> None:
        super().__init__(message, code=code)


def full_text(element: etree._Element) -> str:
    """The element's full string value (all its text, in document order), XML whitespace trimmed."""
    # lxml-stubs allow bytes from itertext; a parsed tree only ever yields str.
    return "".join(cast(Iterable[str], element.itertext())).strip(_XML_WHITESPACE)


def identifier_text(element: etree._Element) -> str:
    """Read an identifier element (``Id``, ``MsgId`` ...): its full string value, trimmed, checked.

    Leading and trailing XML whitespace is trimmed. Empty is returned as ``""`` (absence is the
    caller's rule). Anything else must be one clean token.

    Raises:
        UnreadableIdentifier: the element has child elements, or its value holds whitespace,
            control or format characters (zero-width space and the like) or is longer than
            :data:`MAX_IDENTIFIER_LENGTH`.
    """
    name = etree.QName(element).localname
    if any(isinstance(child.tag, str) for child in element):
        raise UnreadableIdentifier(f"the identifier {name} contains elements")
    value = full_text(element)
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise UnreadableIdentifier(f"the identifier {name} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    if any(unicodedata.category(char)[0] in "ZC" for char in value):
        raise UnreadableIdentifier(f"the identifier {name} contains whitespace or control characters")
    return value


def her_id_value(value: str, *, where: str) -> int:
    """Read a HER-id from an identifier's text by :func:`edi_gateway.domain.apprec.her_id_of_text`.

    Args:
        value: the text as :func:`identifier_text` returned it.
        where: the element, for the message (never the value).

    Raises:
        UnreadableIdentifier: the text is not 1 to 9 ASCII digits (``８``, ``8100 005``, ``0``,
            ``8100010999`` are all refused rather than read as some other number).
    """
    her_id = her_id_of_text(value)
    if her_id is None:
        raise UnreadableIdentifier(f"the HER-id in {where} is not a number of 1 to 9 digits")
    return her_id


def read_her_id(element: etree._Element) -> int:
    """Read an element holding a HER-id: :func:`identifier_text` then :func:`her_id_value`.

    Raises:
        UnreadableIdentifier: as for those two functions.
    """
    return her_id_value(identifier_text(element), where=etree.QName(element).localname)
