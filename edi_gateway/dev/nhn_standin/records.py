"""What the message service stand-in keeps of each message it takes, and what tests see of it.

A :class:`Party` is a sender or receiver as the stand-in routes it; :class:`Facts` is what routing
needs from a business document. The service keeps a :class:`Stored` message per document taken, with
one :class:`Receipt` per receiver (read or not, and its AppRec once given). Tests read
:class:`SentDocument`, :class:`InboxEntry` and :class:`PostedAppRec` through the accessors of
:class:`edi_gateway.dev.nhn_standin.msh.MessageServiceStandIn`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edi_gateway.domain.apprec import AppRecError, AppRecStatus

__all__ = ["Facts", "InboxEntry", "Party", "PostedAppRec", "Receipt", "SentDocument", "Stored"]


# --- what the tests see -------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """A sender or receiver as the stand-in routes it.

    Attributes:
        org_her_id: the virksomhet's HER-id.
        her_id: the lowest level's HER-id (the inbox a message to it lands in).
        level: ``org``, ``dept`` (a nested Organisation) or ``person`` (a HealthcareProfessional).
    """

    org_her_id: int
    her_id: int
    level: str = "org"


@dataclass(frozen=True)
class SentDocument:
    """One document the service took: sent with ``POST /Messages`` or built for ``PostAppRec``.

    Attributes:
        message_id: the service's id for it.
        client_id: the client that sent it.
        document: the document's bytes, as decoded from base64.
        sender_her_id: the sender's lowest-level HER-id.
        receiver_her_ids: the receivers it was delivered to.
        business_document_id: its MsgId (an AppRec's Id).
        is_apprec: whether it is an AppRec.
    """

    message_id: str
    client_id: str
    document: bytes
    sender_her_id: int
    receiver_her_ids: tuple[int, ...]
    business_document_id: str
    is_apprec: bool


@dataclass(frozen=True)
class InboxEntry:
    """One message in one receiver's inbox.

    Attributes:
        message_id: the service's id of the message.
        receiver_her_id: whose inbox.
        sender_her_id: the sender's lowest-level HER-id.
        business_document_id: the MsgId.
        is_apprec: whether it is an AppRec.
        read: whether the receiver has marked it read.
        apprec_status: the receiver's AppRec for it, once given.
    """

    message_id: str
    receiver_her_id: int
    sender_her_id: int
    business_document_id: str
    is_apprec: bool
    read: bool
    apprec_status: str | None


@dataclass(frozen=True)
class PostedAppRec:
    """An AppRec a receiver posted with ``PostAppRec``.

    Attributes:
        message_id: the message answered.
        sender_her_id: the ``appRecSenderHerId``.
        status: ``Ok``, ``Rejected`` or ``OkErrorInMessagePart``.
        errors: the ``appRecErrorList`` as posted.
        apprec_message_id: the service's id of the AppRec message delivered to the original sender.
        document: the AppRec built.
    """

    message_id: str
    sender_her_id: int
    status: str
    errors: tuple[Mapping[str, object], ...]
    apprec_message_id: str
    document: bytes


# --- internal state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What routing needs from a business document."""

    sender: Party
    receivers: tuple[Party, ...]
    msg_id: str
    gen_date: str
    msg_type: str
    msg_type_text: str | None
    is_apprec: bool
    original_msg_id: str | None = None
    apprec_status: AppRecStatus | None = None
    apprec_errors: tuple[AppRecError, ...] = ()


@dataclass
class Receipt:
    """One receiver's copy of a stored message: read or not, and the receiver's AppRec once given."""

    party: Party
    read: bool = False
    apprec_status: str | None = None
    apprec_errors: tuple[Mapping[str, object], ...] = ()


@dataclass
class Stored:
    """A message the service took: its document, its routing facts and a receipt per receiver HER-id."""

    id: str
    client_id: str
    document: bytes
    facts: Facts
    receipts: dict[int, Receipt]
