"""The receiving path: business documents on our inbox, verified, stored, answered once, announced.

A kommune's gateway (``EDI_GATEWAY_ROLE=kommune``) receives the hospital's behovskartlegging here; a
hospital's receives the kommune's and fastlege's replies. ``edi-gateway receiver --her HERID`` runs a
kommune worker for that HER-id (``services.kommune``), for demos and tests. The checks, in order,
each with its kodeverk 8221 code:

1. the hardened parser reads the bytes (``T01``);
2. the signature verifies against the certificate the Adresseregister holds for the *claimed*
   sender (``S01``); from here on only the verified document is read;
3. the verified document (signature removed) is a valid MsgHead + Dialogmelding (``T02``);
4. the MsgId is a UUID (``E10``); a MsgId this sender sent before is a duplicate: no second AppRec;
5. the message is addressed to this virksomhet and to a service or person the register lists under
   it (``E21``);
6. the patient id is a valid fødselsnummer or D-nummer (``E30`` missing, ``E31`` invalid).

Steps 4-6 (all but the duplicate check) and the simulated rejections of :class:`ReceiverBehaviour`
are the pure function :func:`assess_message`; steps 1-3 are :func:`read_message`. A message that
cannot be read or trusted is parked and still answered Avvist: to the claimed sender, or, when not
even that can be read, to the sender the AMQP envelope names (``sender_her_id`` header,
``message_id``), as NHN answers from its transport envelope. Without either, there is nobody to
answer and the message is only parked.

The package: :mod:`.assessment` holds the pure checks, :mod:`.reading` reads the message and
composes the AppRec, :mod:`.system` is the receiving path (stored in ``received_messages`` with the
AppRec before it is sent), :mod:`.events` the ``edi.inbound`` event.
"""

from edi_gateway.services.receiver.assessment import (
    ACCEPTED,
    SIMULATED_REJECTION,
    ReceiverBehaviour,
    Verdict,
    assess_message,
    is_uuid_like,
    rejected,
)
from edi_gateway.services.receiver.reading import (
    Envelope,
    Reading,
    compose_apprec,
    read_envelope,
    read_message,
    with_transport,
)
from edi_gateway.services.receiver.system import ReceivingParty, ReceivingSystem

__all__ = [
    "ACCEPTED",
    "SIMULATED_REJECTION",
    "Envelope",
    "Reading",
    "ReceiverBehaviour",
    "ReceivingParty",
    "ReceivingSystem",
    "Verdict",
    "assess_message",
    "compose_apprec",
    "is_uuid_like",
    "read_envelope",
    "read_message",
    "rejected",
    "with_transport",
]
