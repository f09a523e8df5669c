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
schema does not allow it. Processing instructions (``<?xml-stylesheet?>``) stay inert nodes.
No network access ever (``no_network``), no file access beyond the bytes given.

Declared encodings other than UTF-8 (ISO-8859-1 occurs in this field) are decoded by libxml2.

lxml parser objects are not safe to share between threads, so each thread gets its own, created once
on first use and reused for every later document.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final, cast

from lxml import etree

from edi_gateway.errors import XmlRejected

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 256

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
