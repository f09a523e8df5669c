"""Documents received on our inbox, for operators: lists, one document, and an audited reveal of its content.

On a kommune gateway these are the hospital's behovskartlegginger; on the hospital the kommune's and
the fastlege's replies. Local systems get them as JSON on ``edi.inbound``; an operator reads them
here, through the CLI (``received``), the web page **Mottatt** and the REST API (``/api/received``):

* lists and one document's view need no more than a viewer: ids, HER-ids, the sender's name from the
  Adresseregister, the message type, the first Notat's ``Tema``, the patient *masked*, our AppRec's
  status and codes, whether local systems were told, the pathway state and the thread;
* the content (the patient's name and person number, ``Tema`` and the whole ``TekstNotatInnhold``)
  needs the operator role and a reason, as revealing a sent message's payload does, and writes an
  audit entry (``received_reveal``) keyed by the patient ref the row holds.

Nothing here logs: the audit entry is the record of a reveal, and it holds ids only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.errors import PermanentError, RegisterUnavailable, XmlRejected
from edi_gateway.registers.base import AddressRegister
from edi_gateway.services.access import Operator, check_reason
from edi_gateway.store import Store
from edi_gateway.store.operators import NewAuditEntry
from edi_gateway.store.received import ReceivedRecord
from edi_gateway.xml.apprec import STATUS_TEXTS
from edi_gateway.xml.dialogmelding import NotatContent, read_notat, read_patient
from edi_gateway.xml.safe import parse_xml

MAX_PAGE: Final = 500
"""The largest page ``list_received`` returns; a bigger ``limit`` is cut to this."""
PATHWAY_STATES: Final = ("pending", "applied", "conflict", "ignored")
"""The values ``received_messages.pathway_state`` takes (NULL for a document outside the worklist)."""
REVEAL_ACTION: Final = "received_reveal"


class ReceivedNotFound(PermanentError):
    """No received document has this id."""

    def __init__(self, received_id: int) -> None:
        self.received_id = received_id
        super().__init__(f"no received document has id {received_id}")


@dataclass(frozen=True)
class ReceivedFilter:
    """Which received documents to list; every field left None matches everything.

    Attributes:
        since: received at or after this instant (timezone-aware).
        until: received before this instant (timezone-aware).
        sender_her_id: the sending virksomhet's HER-id.
        pathway_state: ``pending``, ``applied``, ``conflict`` or ``ignored``.
        apprec_status: our AppRec's status, kodeverk 8258 (1 OK, 2 Avvist, 3 OK feil i delmelding).
        limit: page size (at most ``MAX_PAGE``).
        offset: how many matching documents to skip (newest first).
    """

    since: datetime | None = None
    until: datetime | None = None
    sender_her_id: int | None = None
    pathway_state: str | None = None
    apprec_status: int | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ReceivedRow:
    """One received document as a list shows it: ids and codes, the patient masked, never a name.

    Attributes:
        id: the handle to show or reveal it by.
        sender_name: the sender as the Adresseregister names it (None when it cannot say).
        receiver_her_id: our virksomhet the document was addressed to.
        addressed_her_id: the service or person within it, if any.
        tema: ``Tema`` of the first Notat (None when the document has none).
        patient_masked: the patient's birth-date digits, e.g. ``070162*****``.
        apprec_status: the status of the AppRec we answered with (kodeverk 8258).
        apprec_codes: its error codes (kodeverk 8221).
        announced: whether local systems were told on ``edi.inbound`` (confirmed by the broker).
        pathway_state: ``pending``/``applied``/``conflict``/``ignored`` for a behovskartlegging, else None.
        thread_msg_id: the message of ours it answers, if we sent that message.
    """

    id: int
    received_at: datetime
    msg_id: str
    sender_her_id: int
    sender_name: str | None
    receiver_her_id: int
    addressed_her_id: int | None
    msg_type: str
    tema: str | None
    patient_masked: str | None
    apprec_status: int
    apprec_status_text: str
    apprec_codes: tuple[str, ...]
    announced: bool
    pathway_state: str | None
    thread_msg_id: str | None


@dataclass(frozen=True)
class ReceivedPage:
    """A page of received documents, newest first, and how many match in all."""

    rows: tuple[ReceivedRow, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class ReceivedApprecError:
    """One error of the AppRec we answered with: kodeverk 8221 code and its text."""

    code: str
    text: str


@dataclass(frozen=True)
class ReceivedDetail:
    """One received document without its content, and the AppRec we sent for it.

    Attributes:
        row: what the list shows.
        conversation_ref: the sender's ConversationRef, if any.
        transport_id: the transport's id of the delivery (NHN's message id), if any.
        apprec_id: the id of our AppRec.
        apprec_errors: its errors with their texts.
        apprec_sent_at: when the transport accepted our AppRec (None: not yet).
        announced_at: when the ``edi.inbound`` event was confirmed (None: not yet, or refused).
        pathway_id: the patient's pathway in the worklist, when this document is for it and one exists.
    """

    row: ReceivedRow
    conversation_ref: str | None
    transport_id: str | None
    apprec_id: str
    apprec_errors: tuple[ReceivedApprecError, ...]
    apprec_sent_at: datetime | None
    announced_at: datetime | None
    pathway_id: int | None


@dataclass(frozen=True)
class ReceivedContent:
    """A received document's content, revealed for a reason (the audit log has the entry).

    Attributes:
        detail: the document's view.
        patient_id: the person number (or D-nummer) the MsgHead names, if any.
        patient_name: the patient's names as written, if any.
        tema: ``Tema`` of the first Notat.
        tema_kodet: its ``TemaKodet`` (kodeverk 7322), if given.
        text: the whole ``TekstNotatInnhold`` of the first Notat.
    """

    detail: ReceivedDetail
    patient_id: str | None
    patient_name: str | None
    tema: str | None
    tema_kodet: str | None
    text: str | None


def list_received(store: Store, address: AddressRegister, f: ReceivedFilter) -> ReceivedPage:
    """Return the page of received documents ``f`` asks for, newest first, without their content.

    Args:
        store: the store.
        address: the Adresseregister, for the senders' names.
        f: filters and paging.

    Raises:
        ValueError: a limit below 1, a negative offset or an unknown pathway state.
        StoreUnavailable: the database cannot be reached.
    """
    if f.limit < 1 or f.offset < 0:
        raise ValueError("limit must be at least 1 and offset not negative")
    if f.pathway_state is not None and f.pathway_state not in PATHWAY_STATES:
        raise ValueError(f"pathway_state must be one of {', '.join(PATHWAY_STATES)}")
    limit = min(f.limit, MAX_PAGE)
    found, total = store.received_page(
        since=f.since,
        until=f.until,
        sender_her_id=f.sender_her_id,
        pathway_state=f.pathway_state,
        apprec_status=f.apprec_status,
        limit=limit,
        offset=f.offset,
    )
    names = _Names(address)
    return ReceivedPage(tuple(_row(r, names) for r in found), total, limit, f.offset)


def show_received(store: Store, address: AddressRegister, received_id: int) -> ReceivedDetail:
    """Return one received document without its content.

    Raises:
        ReceivedNotFound: no received document has this id.
    """
    return _detail(store, _Names(address), _record(store, received_id))


def reveal_received(
    store: Store, address: AddressRegister, operator: Operator | None, received_id: int, *, reason: str
) -> ReceivedContent:
    """Return a received document's content (patient, Tema, text), and audit who asked and why.

    Raises:
        AccessDenied: the operator lacks the operator role.
        ReasonRequired: no reason was given.
        ReceivedNotFound: no received document has this id.
    """
    who, reason = check_reason(operator, reason)
    record = _record(store, received_id)
    detail = _detail(store, _Names(address), record)
    store.append_audit(
        NewAuditEntry(
            username=who.username,
            action=REVEAL_ACTION,
            reason=reason,
            msg_id=record.thread_msg_id,  # the audit log's MsgId names our messages only
            patient_ref=record.patient_ref,  # the keyed hash the row holds, never the number
            details=_audit_details(record),
        )
    )
    return _content(detail, record.body)


# -- views -----------------------------------------------------------------------------------------


class _Names:
    """The senders' names from the Adresseregister, each looked up once per answer."""

    def __init__(self, address: AddressRegister) -> None:
        self._address = address
        self._known: dict[int, str | None] = {}

    def __call__(self, her_id: int) -> str | None:
        if her_id not in self._known:
            self._known[her_id] = self._look_up(her_id)
        return self._known[her_id]

    def _look_up(self, her_id: int) -> str | None:
        try:
            found = self._address.virksomhet(her_id)
        except RegisterUnavailable:
            return None  # the register being down must not hide what was received
        return found.organisation.name if found is not None else None


def _record(store: Store, received_id: int) -> ReceivedRecord:
    record = store.received(received_id)
    if record is None:
        raise ReceivedNotFound(received_id)
    return record


def _row(r: ReceivedRecord, names: _Names) -> ReceivedRow:
    notat = _notat(r.body)
    return ReceivedRow(
        id=r.id,
        received_at=r.received_at,
        msg_id=r.msg_id,
        sender_her_id=r.sender_her_id,
        sender_name=names(r.sender_her_id),
        receiver_her_id=r.receiver_her_id,
        addressed_her_id=r.addressed_her_id,
        msg_type=r.msg_type,
        tema=notat.tema if notat is not None else None,
        patient_masked=r.patient_masked,
        apprec_status=r.apprec_status,
        apprec_status_text=status_text(r.apprec_status),
        apprec_codes=tuple(e.get("code", "") for e in r.apprec_errors),
        announced=r.announced_at is not None,
        pathway_state=r.pathway_state,
        thread_msg_id=r.thread_msg_id,
    )


def _detail(store: Store, names: _Names, r: ReceivedRecord) -> ReceivedDetail:
    return ReceivedDetail(
        row=_row(r, names),
        conversation_ref=r.conversation_ref,
        transport_id=r.transport_id,
        apprec_id=r.apprec_id,
        apprec_errors=tuple(
            ReceivedApprecError(e.get("code", ""), e.get("text", "")) for e in r.apprec_errors
        ),
        apprec_sent_at=r.apprec_sent_at,
        announced_at=r.announced_at,
        pathway_id=_pathway_id(store, r),
    )


def _pathway_id(store: Store, r: ReceivedRecord) -> int | None:
    """The patient's pathway, for a document the worklist took in (or is about to)."""
    if r.pathway_state is None or r.patient_ref is None:
        return None
    pathway = store.pathway_for_patient(r.patient_ref)
    return pathway.id if pathway is not None else None


def _content(detail: ReceivedDetail, body: bytes) -> ReceivedContent:
    try:
        root = parse_xml(body)
        patient, notat = read_patient(root), read_notat(root)
    except XmlRejected:  # an unreadable patient id (UnreadableIdentifier) included
        # Stored only after it verified and validated; a view must not crash on it all the same.
        patient, notat = None, None
    name = None
    if patient is not None:
        name = " ".join(n for n in (patient.given_name, patient.middle_name, patient.family_name) if n)
    return ReceivedContent(
        detail=detail,
        patient_id=patient.id if patient is not None else None,
        patient_name=name or None,
        tema=notat.tema if notat is not None else None,
        tema_kodet=notat.tema_kodet if notat is not None else None,
        text=notat.text if notat is not None else None,
    )


def _notat(body: bytes) -> NotatContent | None:
    try:
        return read_notat(parse_xml(body))
    except XmlRejected:
        return None


def _audit_details(r: ReceivedRecord) -> dict[str, Any]:
    return {
        "received_id": r.id,
        "received_msg_id": r.msg_id,
        "sender_her_id": r.sender_her_id,
        "msg_type": r.msg_type,
    }


def status_text(status: int) -> str:
    """The words of an AppRec status (kodeverk 8258), or ``ukjent status``."""
    try:
        return STATUS_TEXTS[AppRecStatus(status)]
    except ValueError:
        return "ukjent status"
