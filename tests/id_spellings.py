"""Ways of writing an identifier's text, shared by the tests that read ids from AppRecs and MsgHeads.

``SAME_VALUE`` holds spellings XML defines as the very same text (comments, processing instructions,
CDATA, character references, surrounding whitespace); every reader must see the plain id.
``NOT_AN_ID`` and ``NOT_A_HER_ID`` hold texts that are no clean identifier or no HER-id at all; every
reader must refuse them rather than read some other value.
"""

from __future__ import annotations

from collections.abc import Callable

Spelling = Callable[[str], str]

SAME_VALUE: dict[str, Spelling] = {
    "empty comment first": lambda v: f"<!---->{v}",
    "comment inside": lambda v: f"{v[:3]}<!-- x -->{v[3:]}",
    "comment last": lambda v: f"{v}<!--y-->",
    "processing instruction inside": lambda v: f"{v[:3]}<?pi data?>{v[3:]}",
    "cdata": lambda v: f"<![CDATA[{v}]]>",
    "cdata part": lambda v: f"{v[:2]}<![CDATA[{v[2:]}]]>",
    "decimal character reference": lambda v: f"&#{ord(v[0])};{v[1:]}",
    "hex character reference": lambda v: f"{v[:-1]}&#x{ord(v[-1]):x};",
    "surrounding whitespace": lambda v: f"\n    {v}\t ",
}

# Exclusive C14N keeps processing instructions while the hardened parser drops them, so a PI signed
# into a document breaks its digest (refused, never misread). Every other spelling may be signed.
SIGNABLE: dict[str, Spelling] = {k: v for k, v in SAME_VALUE.items() if "processing" not in k}

NOT_AN_ID: dict[str, Spelling] = {
    "inner space": lambda v: f"{v[:3]} {v[3:]}",
    "inner newline": lambda v: f"{v[:3]}\n{v[3:]}",
    "no-break space": lambda v: f"{v[:3]}\u00a0{v[3:]}",
    "zero-width space": lambda v: f"{v}\u200b",
    "character reference to a tab": lambda v: f"{v[:3]}&#9;{v[3:]}",
}

NOT_A_HER_ID: dict[str, Spelling] = {
    **NOT_AN_ID,
    "digits appended after a comment": lambda v: f"{v}<!---->999",
    "fullwidth digits": lambda v: v.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"}),
    "letter": lambda v: f"{v}x",
    "sign": lambda v: f"+{v}",
}


def respelled(data: bytes, value: int | str, spelling: Spelling) -> bytes:
    """``data`` with its one ``<Id>value</Id>`` written as ``spelling`` says (fails if not exactly one)."""
    plain = f"<Id>{value}</Id>".encode()
    assert data.count(plain) == 1
    return data.replace(plain, f"<Id>{spelling(str(value))}</Id>".encode())
