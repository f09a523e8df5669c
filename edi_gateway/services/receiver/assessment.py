"""The receiver's pure checks: what a verified, schema-valid MsgHead is answered with.

:func:`assess_message` performs steps 4-6 of the receiver's checks (the MsgId is a UUID, the message
is addressed to this virksomhet and to a service or person registered under it, the patient id is a
fødselsnummer or D-nummer) and applies the simulated rejections of :class:`ReceiverBehaviour`. No
I/O: the verdict depends only on the message's facts and the register's entry for the virksomhet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NamedTuple

from edi_gateway.domain.apprec import AppRecError, AppRecStatus
from edi_gateway.domain.identifiers import InvalidIdentifier, PersonIdType, classify_person_id
from edi_gateway.registers.base import Virksomhet
from edi_gateway.xml.apprec import ERROR_TEXTS, apprec_error
from edi_gateway.xml.msghead import MsgHeadSummary

SIMULATED_REJECTION: Final = "E35"
"""The code ``reject_every`` answers with: "Pasienten finnes ikke i mottakersystemet"."""

_UUID: Final = re.compile(r"\{?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?")


# --- behaviour ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiverBehaviour:
    """How the simulated receiving system misbehaves, for demos and tests; the default answers honestly.

    Attributes:
        reject: answer every assessed message Avvist with this kodeverk 8221 code (e.g. ``E35``).
        reject_every: answer every Nth assessed message Avvist with ``E35``; 0 = never.
        silent: consume and answer nothing, so the gateway sees the messages go overdue.
        delay_s: answer this many seconds late (the delivery is acked once the answer is journaled).
        duplicate_apprec: publish every AppRec twice (same Id, same bytes) to exercise duplicate handling.
    """

    reject: str | None = None
    reject_every: int = 0
    silent: bool = False
    delay_s: float = 0.0
    duplicate_apprec: bool = False

    def __post_init__(self) -> None:
        if self.reject is not None and self.reject not in ERROR_TEXTS:
            raise ValueError(f"reject must be a kodeverk 8221 code, one of {', '.join(ERROR_TEXTS)}")
        if self.reject_every < 0:
            raise ValueError("reject_every must be 0 (never) or a positive count")
        if self.delay_s < 0:
            raise ValueError("delay_s must not be negative")

    def simulated_rejection(self, sequence: int) -> str | None:
        """Return the code to reject the ``sequence``-th assessed message (1-based) with, or None."""
        if self.reject is not None:
            return self.reject
        if self.reject_every and sequence % self.reject_every == 0:
            return SIMULATED_REJECTION
        return None


# --- assessment ---------------------------------------------------------------------------------


class Verdict(NamedTuple):
    """The answer to one message: kodeverk 8258 status and the kodeverk 8221 errors behind it."""

    status: AppRecStatus
    errors: tuple[AppRecError, ...]


ACCEPTED: Final = Verdict(AppRecStatus.OK, ())


def rejected(*errors: AppRecError) -> Verdict:
    """Return an Avvist verdict carrying ``errors``."""
    return Verdict(AppRecStatus.AVVIST, errors)


def assess_message(
    summary: MsgHeadSummary,
    virksomhet: Virksomhet,
    *,
    test_mode: bool,
    behaviour: ReceiverBehaviour | None = None,
    sequence: int = 1,
) -> Verdict:
    """Decide the AppRec for a verified, schema-valid MsgHead.

    Every finding is reported (an AppRec may carry several errors). A simulated rejection applies
    only to a message with no real finding.

    Args:
        summary: the facts of the verified MsgHead.
        virksomhet: the receiving virksomhet, as the Adresseregister lists it.
        test_mode: accept the synthetic person-number series.
        behaviour: simulated rejections; None = none.
        sequence: this message's 1-based number among the messages assessed (for ``reject_every``).

    Returns:
        OK, or Avvist with ``E10``, ``E21``, ``E30``/``E31`` or the simulated code.
    """
    errors = [
        *_msg_id_errors(summary.msg_id),
        *_addressing_errors(summary, virksomhet),
        *_patient_errors(summary.patient_id, test_mode=test_mode),
    ]
    if errors:
        return rejected(*errors)
    simulated = behaviour.simulated_rejection(sequence) if behaviour else None
    if simulated is not None:
        return rejected(apprec_error(simulated, detail="rejected by the receiver's simulation settings"))
    return ACCEPTED


def is_uuid_like(value: str | None) -> bool:
    """Return whether ``value`` is a UUID in its usual written form (any case, braces allowed)."""
    return value is not None and _UUID.fullmatch(value.strip()) is not None


def _msg_id_errors(msg_id: str) -> list[AppRecError]:
    if is_uuid_like(msg_id):
        return []
    return [apprec_error("E10", detail="MsgId is not a UUID")]


def _addressing_errors(summary: MsgHeadSummary, virksomhet: Virksomhet) -> list[AppRecError]:
    if summary.receiver_her_id != virksomhet.her_id:
        return [apprec_error("E21", detail="Receiver/Organisation is not this virksomhet")]
    service, person = summary.receiver_service_her_id, summary.receiver_person_her_id
    if service is None and person is None:
        return [apprec_error("E21", detail="no service or person is addressed (tjenestebasert adressering)")]
    if service is not None and service not in own_units(virksomhet):
        return [apprec_error("E21", detail="the addressed service is not registered under this virksomhet")]
    if person is not None and person not in own_persons(virksomhet):
        return [apprec_error("E21", detail="the addressed person is not registered under this virksomhet")]
    return []


def _patient_errors(patient_id: str | None, *, test_mode: bool) -> list[AppRecError]:
    if not patient_id:
        return [apprec_error("E30", detail="Patient/Ident/Id is missing")]
    try:
        kind = classify_person_id(patient_id, test_mode=test_mode)
    except InvalidIdentifier as exc:
        # The code names the check that failed (person_id.checksum ...), never the number.
        return [apprec_error("E31", detail=exc.code)]
    if kind not in (PersonIdType.FNR, PersonIdType.DNR):
        return [apprec_error("E31", detail=f"a {kind.value} is not a fødselsnummer or D-nummer")]
    return []


def own_units(virksomhet: Virksomhet) -> frozenset[int]:
    """Return the HER-ids of the services and units the register lists under ``virksomhet``."""
    return frozenset(s.her_id for s in virksomhet.services) | {u.her_id for u in virksomhet.units}


def own_persons(virksomhet: Virksomhet) -> frozenset[int]:
    """Return the HER-ids of the persons (e.g. fastleger) the register lists under ``virksomhet``."""
    return frozenset(p.her_id for p in virksomhet.persons)
