"""The AppRec (applikasjonskvittering) as the gateway understands it, independent of XML version.

Status is kodeverk 8258 (1 OK, 2 Avvist, 3 OK feil i delmelding); errors are kodeverk 8221 (or, for
some message types, another error kodeverk named by ``S``). Parsing and building live in
``edi_gateway.xml.apprec``; the correlation rules in ``edi_gateway.domain.acks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

KODEVERK_STATUS = "2.16.578.1.12.4.1.1.8258"
KODEVERK_ERROR = "2.16.578.1.12.4.1.1.8221"

_HER_ID_TEXT: Final = re.compile(r"[0-9]{1,9}")  # ASCII only: "８" or "٨" are digits to str.isdigit


def her_id_of_text(value: str) -> int | None:
    """Read a HER-id written in a document: 1 to 9 ASCII decimal digits, not all zero; else None.

    The one rule for every HER-id the gateway reads from XML (AppRec parties, MsgHead idents). A
    leading zero is tolerated (published samples write ``0123``), so the number, not the text, is
    what is compared. Nothing is trimmed here: the text comes trimmed from the XML reader, and any
    other character makes the value unreadable.
    """
    if _HER_ID_TEXT.fullmatch(value) is None:
        return None
    return int(value) or None


class AppRecStatus(IntEnum):
    """Kodeverk 8258."""

    OK = 1
    AVVIST = 2
    OK_FEIL_I_DELMELDING = 3


@dataclass(frozen=True, slots=True)
class AppRecError:
    """One ``Error`` element: code (V), its text (DN), kodeverk (S) and the part it points at (OT)."""

    code: str
    text: str = ""
    kodeverk: str = KODEVERK_ERROR
    original_text: str | None = None


@dataclass(frozen=True, slots=True)
class PartyId:
    """An identifier with its type (``HER``, ``ENH``, ``HPR`` ...), as AppRec parties carry them."""

    id: str
    type: str | None

    @property
    def her_id(self) -> int | None:
        """The id as a HER-id when it is typed HER and a valid HER-id (ASCII digits), else None.

        The AppRec reader refuses a HER-typed id that is not a valid HER-id, so for a parsed AppRec
        None means "not typed HER".
        """
        return her_id_of_text(self.id) if self.type == "HER" else None


@dataclass(frozen=True, slots=True)
class AppRecParty:
    """``Sender`` or ``Receiver`` of an AppRec: the institution and, optionally, a department or person."""

    inst: PartyId
    inst_name: str = ""
    dept: PartyId | None = None
    person: PartyId | None = None
    role: str | None = None
    additional: tuple[PartyId, ...] = ()  # the institution's AdditionalId elements

    @property
    def her_ids(self) -> frozenset[int]:
        """Every HER-id this party names (institution, its additional ids, department, person).

        Some senders put the organisasjonsnummer in ``Inst/Id`` and the HER-id only in an
        ``AdditionalId``; both count.
        """
        return self.institution_her_ids | self.below_her_ids

    @property
    def institution_her_ids(self) -> frozenset[int]:
        """The HER-ids naming the institution itself: ``Inst/Id`` and its ``AdditionalId`` elements."""
        return _her_ids(self.inst, *self.additional)

    @property
    def below_her_ids(self) -> frozenset[int]:
        """The HER-ids below the institution: the department's and the person's."""
        return _her_ids(self.dept, self.person)


def _her_ids(*ids: PartyId | None) -> frozenset[int]:
    return frozenset(h for h in (i.her_id if i else None for i in ids) if h is not None)


@dataclass(frozen=True, slots=True)
class AppRec:
    """A parsed (and, where the policy requires it, verified) AppRec.

    Attributes:
        version: ``"1.0"`` or ``"1.1"``.
        id: the AppRec's own id (``Id``).
        gen_date: ``GenDate`` as written.
        status: kodeverk 8258.
        errors: the ``Error`` elements, in order.
        original_msg_id: ``OriginalMsgId/Id``: the MsgId the AppRec answers.
        original_msg_type: ``OriginalMsgId/MsgType/@V``.
        original_issue_date: ``OriginalMsgId/IssueDate`` as written.
    """

    version: str
    id: str
    gen_date: str
    status: AppRecStatus
    sender: AppRecParty
    receiver: AppRecParty
    original_msg_id: str
    original_msg_type: str
    original_issue_date: str
    errors: tuple[AppRecError, ...] = ()
