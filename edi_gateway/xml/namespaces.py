"""XML namespace URIs of the standards edi_gateway reads and writes.

One name per namespace, used by the builders, parsers and the schema registry, so that a typo in a URI
cannot make an element silently unmatched. ``ns(NAMESPACE, "Local")`` builds a Clark-notation tag.
"""

from __future__ import annotations

from typing import Final

MSGHEAD: Final = "http://www.kith.no/xmlstds/msghead/2006-05-24"
"""Hodemelding (MsgHead) v1.2, the envelope of every message."""

DIALOG_1_1: Final = "http://www.kith.no/xmlstds/dialog/2013-01-23"
"""Dialogmelding v1.1 (HIS 80603:2017), the payload we send."""

DIALOG_1_0: Final = "http://www.kith.no/xmlstds/dialog/2006-10-11"
"""Dialogmelding v1.0 (HIS 80603:2006), still received from older systems."""

FK1: Final = "http://www.kith.no/xmlstds/felleskomponent1"
"""Felleskomponent1: Ident, TeleCom, Address ... as used inside Dialogmelding."""

KITH: Final = "http://www.kith.no/xmlstds"
"""KITH common datatypes (CS, CV, TS, URL)."""

APPREC_1_0: Final = "http://www.kith.no/xmlstds/apprec/2004-11-21"
"""Applikasjonskvittering (AppRec) v1.0."""

APPREC_1_1: Final = "http://www.kith.no/xmlstds/apprec/2012-02-15"
"""Applikasjonskvittering (AppRec) v1.1."""

XMLDSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
"""W3C XML-DSig, the enveloped ``ds:Signature``."""

BASE64: Final = "http://www.kith.no/xmlstds/base64container"
"""Base64Container, an attachment (Vedlegg) inside ``RefDoc/Content``."""

XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
"""XML Schema instance attributes (``xsi:schemaLocation``)."""


def ns(namespace: str, local: str) -> str:
    """Return the Clark-notation tag ``{namespace}local`` that lxml uses."""
    return f"{{{namespace}}}{local}"
