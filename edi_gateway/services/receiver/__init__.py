"""``edi-gateway receiver --her HERID``: a kommune's or legekontor's receiving system, for demos and tests.

It consumes the virksomhet's queue (``<herId>_async``, the name the Adresseregister gives, behind the
configured prefix) and answers every MsgHead with an AppRec v1.1, signed with the virksomhet's own
test-PKI key, on the original sender's inbox. On the ``nhn`` transport it polls the message service's
inbox of every HER-id of the virksomhet instead, and answers with the service's AppRec operation
(NHN builds and delivers the AppRec document). The checks, in order, each with its kodeverk 8221 code:

1. the hardened parser reads the bytes (``T01``);
2. the signature verifies against the certificate the Adresseregister holds for the *claimed* sender
   (``S01``); from here on only the verified document is read;
3. the verified document (signature removed) is a valid MsgHead + Dialogmelding (``T02``);
4. the MsgId is a UUID (``E10``); a MsgId this sender has had answered before is ignored;
5. the message is addressed to this virksomhet and to a service or person the register lists under it
   (``E21``);
6. the patient id is a valid fødselsnummer or D-nummer (``E30`` missing, ``E31`` invalid).

Steps 4-6 (all but the duplicate check) and the simulated rejections of :class:`ReceiverBehaviour`
are the pure function :func:`assess_message`; steps 1-3 are :func:`read_message`. A message that
cannot be read or trusted is still answered: the AppRec goes to the claimed sender, or, when not even
that can be read, to the sender the AMQP envelope names (``sender_her_id`` header, ``message_id``), as
NHN answers from its transport envelope. Without either, there is nobody to answer and the message is
only logged.

Durable state lives in a small SQLite journal under ``HOME/receivers/<herId>/`` (kept apart from the
gateway's store: this process plays another organisation). It holds the MsgIds already answered (per
sender, so a forged message can never pre-empt a genuine one: only verified messages are recorded) and
the AppRecs waiting to be sent late.

Acknowledgement: an incoming delivery is acked only once its AppRec is confirmed by the broker (or,
with a delay, once the AppRec is committed to the journal). A publish that is not confirmed requeues
the delivery; an unroutable AppRec (the sender has no inbox) is logged and the delivery acked.

Late answers (``delay_s``) do not hold the delivery: the consumer thread also answers the broker's
heartbeats, and a held delivery would need it to sleep. The AppRec is built, signed and written to the
journal with its due time, the delivery is acked, and a dispatcher thread publishes it once due. The
journal survives a restart, so a late answer still goes out after one.

The package: :mod:`.assessment` holds the pure checks (:class:`ReceiverBehaviour`, :class:`Verdict`,
:func:`assess_message`), :mod:`.reading` reads the message and composes the AppRec, :mod:`.system`
is the receiving system and its entry point (:func:`run_receiver`); the journal is
:mod:`edi_gateway.store.receiver_journal`.
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
from edi_gateway.services.receiver.system import (
    JOURNAL_NAME,
    ReceivingParty,
    ReceivingSystem,
    load_receiving_party,
    receiver_state_dir,
    run_receiver,
)
from edi_gateway.store.receiver_journal import PendingAppRec, ReceiverJournal

__all__ = [
    "ACCEPTED",
    "JOURNAL_NAME",
    "SIMULATED_REJECTION",
    "Envelope",
    "PendingAppRec",
    "Reading",
    "ReceiverBehaviour",
    "ReceiverJournal",
    "ReceivingParty",
    "ReceivingSystem",
    "Verdict",
    "assess_message",
    "compose_apprec",
    "is_uuid_like",
    "load_receiving_party",
    "read_envelope",
    "read_message",
    "receiver_state_dir",
    "rejected",
    "run_receiver",
    "with_transport",
]
