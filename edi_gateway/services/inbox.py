"""Our inbox carries two kinds of document: AppRecs answering our messages, and business documents.

:func:`inbox_handler` splits each batch by the document's root element: a ``MsgHead`` goes to the
receiving path (``services.receiver``: store, answer once, announce), everything else to the
acknowledgement service, which reads AppRecs and parks what it cannot read. The split looks at the
first element name only (after the XML declaration, comments, processing instructions and a DOCTYPE, which the
hardened parser then refuses); each
side then reads the document with the hardened parser, so a document that lies about its root gains
nothing but a refusal on the other side. An AppRec is never answered with an AppRec.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from edi_gateway.messaging.base import Delivery, Disposition, Handler

SNIFF_BYTES: Final = 4096
"""How far into a document the root element is looked for."""

_ROOT: Final = re.compile(rb"\s*<(?![?!])(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)")
_SKIPPED: Final = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>)", re.DOTALL)


def root_name(body: bytes) -> str | None:
    """The local name of a document's first element, or None when none shows in its first bytes."""
    head = body[:SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf")
    position = 0
    while (skipped := _SKIPPED.match(head, position)) is not None:
        position = skipped.end()
    found = _ROOT.match(head, position)
    return found.group(1).decode("ascii") if found is not None else None


def is_business_document(delivery: Delivery, *, unreadable_is_document: bool) -> bool:
    """Whether a delivery goes to the receiving path rather than the acknowledgement service.

    A ``MsgHead`` root does, an ``AppRec`` root or an ``msg_type: APPREC`` header does not. A
    document whose root cannot be seen (not XML at all) goes where ``unreadable_is_document`` says:
    on a kommune the receiving path, which parks it and answers Avvist (T01) to the sender the
    transport envelope names; on a hospital the acknowledgement service, which parks it.
    """
    if str(delivery.headers.get("msg_type", "")).upper() == "APPREC":
        return False
    root = root_name(delivery.body)
    if root is None:
        return unreadable_is_document
    return root == "MsgHead"


def inbox_handler(apprecs: Handler, documents: Handler, *, unreadable_is_document: bool = False) -> Handler:
    """One handler for the inbox: business documents to ``documents``, AppRecs and the rest to ``apprecs``.

    The dispositions come back in the batch's order.
    """

    def handle(batch: Sequence[Delivery]) -> list[Disposition]:
        kinds = [is_business_document(d, unreadable_is_document=unreadable_is_document) for d in batch]
        dispositions: list[Disposition] = [Disposition.ACK] * len(batch)
        for wanted, handler in ((True, documents), (False, apprecs)):
            positions = [i for i, kind in enumerate(kinds) if kind is wanted]
            if positions:
                results = handler([batch[i] for i in positions])
                for i, disposition in zip(positions, results, strict=True):
                    dispositions[i] = disposition
        return dispositions

    return handle
