"""Tests for edi_gateway.xml.safe: hostile, oversized and malformed XML is refused with T01."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.errors import XmlRejected
from edi_gateway.xml import safe
from edi_gateway.xml.safe import (
    UnreadableIdentifier,
    full_text,
    identifier_text,
    parse_xml,
    read_her_id,
)

SECRET = "SECRET-MARKER-4f1d"


class ConnectionRecorder:
    """A local TCP listener that counts every connection attempt (to prove no network access)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    """A listener on 127.0.0.1 that records any connection the parser might make."""
    listener = ConnectionRecorder()
    try:
        yield listener
    finally:
        listener.close()


def _rejected(data: bytes, **limits: int) -> XmlRejected:
    with pytest.raises(XmlRejected) as caught:
        parse_xml(data, **limits)
    assert caught.value.code == "T01"
    return caught.value


def _nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_a_normal_document_parses() -> None:
    """A plain namespaced document comes back as its root element with text intact."""
    root = parse_xml(b'<?xml version="1.0" encoding="UTF-8"?><m:r xmlns:m="urn:x"><m:c>tekst</m:c></m:r>')
    assert root.tag == "{urn:x}r"
    assert root[0].text == "tekst"


def test_iso_8859_1_declared_encoding_is_decoded() -> None:
    """A document declared ISO-8859-1 (common in this field) is decoded, Norwegian letters included."""
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><r>blåbær og ørret</r>'.encode("iso-8859-1")
    assert parse_xml(data).text == "blåbær og ørret"


def test_predefined_and_character_references_are_resolved() -> None:
    """The five predefined entities and numeric character references still work without any DTD."""
    root = parse_xml(b"<r>&lt;&amp;&gt;&quot;&apos;&#229;&#xF8;</r>")
    assert root.text == "<&>\"'åø"


def test_billion_laughs_is_refused_quickly() -> None:
    """An exponential entity expansion is refused in well under a second, without expanding it."""
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    data = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "ha">{entities}]><r>&l9;</r>'.encode()
    started = time.perf_counter()
    _rejected(data)
    assert time.perf_counter() - started < 1.0


def test_external_file_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    """An external entity pointing at a local file is refused, and the file's content never enters a tree."""
    target = tmp_path / "passwd"
    target.write_text(SECRET)
    data = f'<!DOCTYPE r [<!ENTITY x SYSTEM "{target.as_uri()}">]><r>&x;</r>'.encode()
    error = _rejected(data)
    assert SECRET not in str(error)
    # Underneath the DOCTYPE refusal, the parser itself leaves the reference unexpanded.
    root = etree.fromstring(data, parser=safe._parser())
    assert SECRET not in etree.tostring(root).decode()
    assert isinstance(root[0], etree._Entity)


def test_etc_passwd_entity_is_refused() -> None:
    """The classic XXE payload naming file:///etc/passwd is refused with T01."""
    data = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    error = _rejected(data)
    assert "root:" not in str(error)


def test_http_entity_and_external_dtd_make_no_connection(recorder: ConnectionRecorder) -> None:
    """External entities, external DTDs and stylesheet PIs naming an http URL never open a connection."""
    url = f"http://127.0.0.1:{recorder.port}/evil"
    _rejected(f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]><r>&x;</r>'.encode())
    _rejected(f'<!DOCTYPE r SYSTEM "{url}"><r/>'.encode())
    _rejected(f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><r/>'.encode())
    root = parse_xml(f'<?xml-stylesheet type="text/xsl" href="{url}"?><r/>'.encode())
    assert root.tag == "r"
    time.sleep(0.2)  # give a (wrongly) started connection time to arrive
    assert recorder.connections == 0


def test_any_doctype_is_refused() -> None:
    """A DOCTYPE is refused whether it is bare, external or has an internal subset."""
    _rejected(b"<!DOCTYPE r><r/>")
    _rejected(b'<!DOCTYPE r PUBLIC "-//X//DTD X//EN" "x.dtd"><r/>')
    _rejected(b"<!DOCTYPE r [<!ELEMENT r (#PCDATA)>]><r/>")


def test_internal_entity_is_refused() -> None:
    """Even a harmless internal entity declaration is refused (no DTD is accepted at all)."""
    error = _rejected(b'<!DOCTYPE r [<!ENTITY name "Ola Nordmann">]><r>&name;</r>')
    assert "Nordmann" not in str(error)


def test_undeclared_entity_reference_is_refused() -> None:
    """A reference to an entity nobody declared is not well-formed."""
    _rejected(b"<r>&undeclared;</r>")


def test_xinclude_is_left_unprocessed(tmp_path: Path) -> None:
    """An xi:include element stays an ordinary element; the file it names is not read."""
    target = tmp_path / "inc.xml"
    target.write_text(f"<secret>{SECRET}</secret>")
    data = (
        f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{target.as_uri()}"/></r>'
    ).encode()
    root = parse_xml(data)
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include"
    assert SECRET not in etree.tostring(root).decode()


def test_too_large_is_refused_before_parsing() -> None:
    """A document over max_bytes is refused by size, even when it is not XML at all."""
    error = _rejected(b"x" * 101, max_bytes=100)
    assert "over the limit of 100" in str(error)
    assert parse_xml(b"<r>" + b"x" * 90 + b"</r>", max_bytes=100).tag == "r"


def test_default_size_limit_is_ten_mebibytes() -> None:
    """Without max_bytes, 10 MiB is the limit."""
    error = _rejected(b" " * (10 * 1024 * 1024 + 1))
    assert "over the limit" in str(error)


def test_a_hundred_thousand_deep_document_is_refused_quickly() -> None:
    """A 100 000-level nesting is refused in well under a second."""
    data = _nested(100_000)
    started = time.perf_counter()
    _rejected(data)
    assert time.perf_counter() - started < 1.0


def test_max_depth_is_enforced_exactly() -> None:
    """A document exactly max_depth deep parses; one level more is refused."""
    assert parse_xml(_nested(5), max_depth=5).tag == "a"
    error = _rejected(_nested(6), max_depth=5)
    assert "deeper than 5" in str(error)


def test_default_depth_accepts_realistic_nesting() -> None:
    """Nesting of 200 levels (far beyond any MsgHead) parses with the default limit."""
    assert parse_xml(_nested(200)).tag == "a"


def test_malformed_is_refused_without_quoting_content() -> None:
    """Malformed XML gives T01 with line and libxml2 error name, but none of the document's text."""
    error = _rejected(b"<r>\n<Id>13116900216</Id>\n<oops></r>")
    message = str(error)
    assert "13116900216" not in message
    assert "line 3" in message


def test_empty_and_non_xml_input_is_refused() -> None:
    """Empty bytes and arbitrary binary are not well-formed."""
    _rejected(b"")
    _rejected(b"\x00\x01\x02 not xml")


def test_unknown_declared_encoding_is_refused() -> None:
    """An encoding libxml2 cannot decode is refused with T01, not a crash."""
    _rejected(b'<?xml version="1.0" encoding="x-no-such-charset"?><r/>')


def test_each_thread_reuses_its_own_parser() -> None:
    """The hardened parser is created once per thread and reused for later documents."""
    parse_xml(b"<r/>")
    first = safe._parser()
    parse_xml(b"<r/>")
    assert safe._parser() is first
    with ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(safe._parser).result()
    assert other is not first


def test_parallel_parsing_from_many_threads_is_consistent() -> None:
    """Parsing from many threads at once gives each caller its own correct tree."""

    def work(i: int) -> str:
        return str(parse_xml(f"<r><n>{i}</n></r>".encode())[0].text)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(400)))
    assert results == [str(i) for i in range(400)]


# --- one reading of the text --------------------------------------------------------------------

# Every way of writing the HER-id 8100005 that XML allows for the same text, and none other.
SAME_TEXT = {
    "plain": b"8100005",
    "empty comment": b"<!---->8100005",
    "comment inside": b"8100<!-- x -->005",
    "trailing comment": b"8100005<!--y-->",
    "processing instruction": b"81<?pi data?>00005",
    "cdata": b"<![CDATA[8100005]]>",
    "cdata part": b"8100<![CDATA[005]]>",
    "decimal character reference": b"&#56;100005",
    "hex character reference": b"810000&#x35;",
    "everything": b"<!--a-->&#56;1<?p?>0<![CDATA[0]]>0<!--b-->05",
    "surrounding whitespace": b" \n\t8100005\r\n ",
}


@pytest.mark.parametrize("written", sorted(SAME_TEXT))
def test_comments_pis_cdata_and_references_give_one_text(written: str) -> None:
    """However the id is written, the parsed element has exactly one text node: the whole value."""
    root = parse_xml(b"<r><Id>" + SAME_TEXT[written] + b"</Id></r>")
    element = root[0]
    assert len(element) == 0  # no comment or PI node is left to split the text
    assert element.text is not None and element.text.strip() == "8100005"
    assert identifier_text(element) == "8100005"
    assert read_her_id(element) == 8100005


def test_comments_and_pis_outside_the_document_element_are_dropped() -> None:
    """Comments and processing instructions before and after the root are not kept either."""
    root = parse_xml(b"<?xml-stylesheet href='x'?><!--c--><r/><!--d--><?e?>")
    assert root.getprevious() is None and root.getnext() is None


def test_full_text_joins_all_text_and_trims_xml_whitespace_only() -> None:
    """full_text is the element's whole string value, trimmed of XML whitespace but not of other spaces."""
    root = parse_xml("<r> a<b>b</b>c\u00a0 </r>".encode())
    assert full_text(root) == "abc\u00a0"


UNREADABLE_IDS = {
    "inner space": b"8100 005",
    "inner tab": b"8100\t005",
    "inner newline": b"8100\n005",
    "no-break space": "8100\u00a0005".encode(),
    "zero-width space": "8100005\u200b".encode(),
    "zero-width joiner": "81\u200d00005".encode(),
    "character reference to a space": b"8100&#32;005",
    "element inside": b"8100<x>005</x>",
    "too long": b"9" * 129,
}


@pytest.mark.parametrize("written", sorted(UNREADABLE_IDS))
def test_an_id_that_is_not_one_clean_token_is_unreadable(written: str) -> None:
    """Whitespace, invisible characters or elements inside an id make it unreadable, never shortened."""
    root = parse_xml(b"<r><Id>" + UNREADABLE_IDS[written] + b"</Id></r>")
    with pytest.raises(UnreadableIdentifier) as caught:
        identifier_text(root[0])
    assert caught.value.code == "T99"
    assert "8100" not in str(caught.value)  # the message names the element, never the value


@pytest.mark.parametrize(
    ("written", "her_id"),
    [
        (b"1", 1),
        (b"8100005", 8100005),
        (b"999999999", 999_999_999),
        (b"0123", 123),  # a published sample writes this; the number is what counts
    ],
)
def test_a_her_id_is_one_to_nine_ascii_digits(written: bytes, her_id: int) -> None:
    """read_her_id reads 1 to 9 ASCII digits as their number."""
    assert read_her_id(parse_xml(b"<r><Id>" + written + b"</Id></r>")[0]) == her_id


@pytest.mark.parametrize(
    "written",
    [
        b"",
        b"0",
        b"1000000000",
        b"8100010999",
        b"-8100005",
        b"+8100005",
        b"8100005.0",
        b"0x7b",
        "８１００００５".encode(),  # fullwidth digits pass str.isdigit
        "٨١٠٠٠٠٥".encode(),  # Arabic-Indic digits too
        "8100005²".encode(),
    ],
)
def test_any_other_her_id_text_is_unreadable(written: bytes) -> None:
    """read_her_id refuses everything but 1 to 9 ASCII digits, rather than reading some other number."""
    with pytest.raises(UnreadableIdentifier):
        read_her_id(parse_xml(b"<r><Id>" + written + b"</Id></r>")[0])
