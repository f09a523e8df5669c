"""Receiver resolution: from a request's patient to the kommune service (and the fastlege) to address.

Asks the registers, then lets the pure routing rules choose: the kommune's tjenestekontor by default,
and the receiver carries the choice and its reason. A kommune that cannot be routed to rejects the
request; a missing fastlege is a per-receiver problem and the kommune message still goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edi_gateway.domain.model import Receiver, ReceiverKind
from edi_gateway.domain.routing import RoutingRules
from edi_gateway.errors import Problem, RequestRejected
from edi_gateway.registers.base import Registers


@dataclass(frozen=True, slots=True)
class Resolution:
    """Who gets the message.

    Attributes:
        kommunenummer: the patient's bosted kommune used for routing.
        receivers: one entry per message to build (kommune first).
        problems: receivers that were asked for but cannot be reached (the rest still go).
    """

    kommunenummer: str
    receivers: tuple[Receiver, ...]
    problems: tuple[Problem, ...] = ()


def resolve_receivers(
    *,
    person_id: str,
    kommunenummer: str | None,
    send_to_fastlege: bool,
    registers: Registers,
    rules: RoutingRules,
) -> Resolution:
    """Resolve the receivers for one patient.

    Args:
        person_id: the patient's fødselsnummer or D-nummer (already validated).
        kommunenummer: the kommune named in the request; when None, the population register decides.
        send_to_fastlege: also address the patient's fastlege.
        registers: the registers to ask.
        rules: the routing rules in force.

    Raises:
        RequestRejected: the bosted kommune is unknown, not in the Adresseregister, or has no service
            that the routing rules accept.
    """
    kommunenummer = kommunenummer or registers.population.bosted_kommune(person_id)
    if kommunenummer is None:
        raise RequestRejected(
            [
                Problem(
                    "routing.bosted_unknown",
                    "The population register has no bosted kommune for the patient; "
                    "give patient.kommunenummer.",
                    "patient.kommunenummer",
                )
            ]
        )
    kommune = registers.address.kommune(kommunenummer)
    if kommune is None:
        raise RequestRejected(
            [
                Problem(
                    "routing.kommune_unknown",
                    f"Kommune {kommunenummer} is not in the Adresseregister this gateway routes to.",
                    "patient.kommunenummer",
                )
            ]
        )
    choice = rules.choose(kommunenummer, kommune.services)
    if choice is None:
        preference = rules.service_preference(kommunenummer)
        raise RequestRejected(
            [
                Problem(
                    "routing.no_service",
                    f"{kommune.organisation.name} has no service with kodeverk 8663 code "
                    f"{' / '.join(preference)} to receive the message.",
                )
            ]
        )
    receivers = [
        Receiver(
            ReceiverKind.KOMMUNE, kommune.organisation, kommune.queue, service=choice.service, choice=choice
        )
    ]
    problems: list[Problem] = []
    if send_to_fastlege:
        gp = registers.fastlege.fastlege_for(person_id)
        if gp is None:
            problems.append(
                Problem(
                    "routing.fastlege_missing",
                    "The Fastlegeregister has no fastlege for the patient; "
                    "only the kommune gets the message.",
                    "send_to_fastlege",
                )
            )
        else:
            receivers.append(
                Receiver(
                    ReceiverKind.FASTLEGE,
                    gp.legekontor.organisation,
                    gp.legekontor.queue,
                    practitioner=gp.practitioner,
                )
            )
    return Resolution(kommunenummer, tuple(receivers), tuple(problems))
