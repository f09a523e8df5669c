"""The ``edi.inbound`` event: a received document handed to the organisation's own systems as JSON.

Routing key ``inbound.<message type>`` in lower case (``inbound.dialog_helsefaglig``), so a system
binds to the types it takes. Headers carry ids only (MsgId, message type, HER-ids); the patient and
the content are in the body alone, which only the local systems bound to the exchange read. The
document was verified before it was stored, so reading it again here trusts it as stored.
"""

from __future__ import annotations

import json
from typing import Any, Final

from edi_gateway.errors import XmlRejected
from edi_gateway.store.received import ReceivedRecord
from edi_gateway.transport.names import Names
from edi_gateway.transport.publisher import Outgoing
from edi_gateway.xml.dialogmelding import read_notat, read_patient
from edi_gateway.xml.safe import parse_xml

EVENT_VERSION: Final = 1
JSON: Final = "application/json"


def inbound_event(record: ReceivedRecord) -> dict[str, Any]:
    """The JSON of the event for one stored, accepted document (patient data included: body only)."""
    event: dict[str, Any] = {
        "version": EVENT_VERSION,
        "type": "inbound",
        "msg_id": record.msg_id,
        "msg_type": record.msg_type,
        "sender_her_id": record.sender_her_id,
        "receiver_her_id": record.receiver_her_id,
        "addressed_her_id": record.addressed_her_id,
        "conversation_ref": record.conversation_ref,
        "thread_msg_id": record.thread_msg_id,
        "received_at": record.received_at.isoformat(),
        "apprec": {"id": record.apprec_id, "status": record.apprec_status, "errors": record.apprec_errors},
    }
    try:
        root = parse_xml(record.body)
        patient, notat = read_patient(root), read_notat(root)
    except XmlRejected:
        return event
    if patient is not None:
        event["patient"] = {
            "id": patient.id,
            "id_type": patient.id_type,
            "given_name": patient.given_name,
            "middle_name": patient.middle_name,
            "family_name": patient.family_name,
        }
    if notat is not None:
        event["notat"] = {"tema": notat.tema, "tema_kodet": notat.tema_kodet, "text": notat.text}
    return event


def routing_key(msg_type: str) -> str:
    """``inbound.<type>``: the message type in lower case, anything but letters, digits and _ as _."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in msg_type.lower())
    return f"inbound.{cleaned or 'unknown'}"


def inbound_outgoing(names: Names, record: ReceivedRecord) -> Outgoing:
    """The AMQP message for one received document on the ``edi.inbound`` exchange."""
    return Outgoing(
        exchange=names.inbound_exchange,
        routing_key=routing_key(record.msg_type),
        body=json.dumps(inbound_event(record), ensure_ascii=False).encode(),
        message_id=record.msg_id,
        correlation_id=record.thread_msg_id,
        content_type=JSON,
        mandatory=False,  # a kommune may read documents in the web UI only, with nothing bound
        headers={
            "msg_id": record.msg_id,
            "msg_type": record.msg_type,
            "sender_her_id": record.sender_her_id,
            "receiver_her_id": record.receiver_her_id,
        },
    )
