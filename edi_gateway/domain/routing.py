"""Routing rules and receiver choice: which kommune service gets the message, and what it says.

The rules come from ``routing_rules/*.yaml`` (parsed elsewhere; this module only validates the data
and decides). Every decision here is a pure function with a table-driven test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edi_gateway.domain.model import Coded, ReceiverContact, Service


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CodedRule(_Rule):
    """A coded value as written in YAML."""

    v: str
    dn: str
    s: str = ""

    def to_coded(self) -> Coded:
        """Return the domain value."""
        return Coded(self.v, self.dn, self.s)


class MessageRule(_Rule):
    """What the outgoing message says about itself."""

    type: CodedRule
    tema_kodet: CodedRule
    tema: dict[int, str]
    contact_role: CodedRule


class RoutingRule(_Rule):
    """How the kommune receiver is chosen."""

    service_preference: tuple[str, ...] = Field(min_length=1)


class ReceiverContactRule(_Rule):
    """``Kontakt hos mottaker`` for a service code."""

    profession: CodedRule


class RoutingRules(_Rule):
    """The whole rule set: defaults plus per-kommune overrides."""

    message: MessageRule
    routing: RoutingRule
    receiver_contact: dict[str, ReceiverContactRule] = Field(default_factory=dict)
    kommuner: dict[str, RoutingRule] = Field(default_factory=dict)

    @classmethod
    def from_documents(cls, default: Mapping[str, Any], kommuner: Mapping[str, Any] | None) -> RoutingRules:
        """Build the rules from the parsed ``default.yaml`` and ``kommuner.yaml`` documents.

        Raises:
            pydantic.ValidationError: the documents do not follow the rule format.
        """
        return cls.model_validate({**default, "kommuner": dict(kommuner or {})})

    def service_preference(self, kommunenummer: str) -> tuple[str, ...]:
        """Return the 8663 preference in force for ``kommunenummer``."""
        override = self.kommuner.get(kommunenummer)
        return (override or self.routing).service_preference

    def tema(self, samhandlingspunkt: int) -> str:
        """Return the Tema wording for a samhandlingspunkt."""
        return self.message.tema[samhandlingspunkt]

    def contact_for_service(self, service_code: str) -> ReceiverContact | None:
        """Return the ``Kontakt hos mottaker`` configured for a service code, if any."""
        rule = self.receiver_contact.get(service_code)
        return None if rule is None else ReceiverContact(profession=rule.profession.to_coded())


def choose_service(services: Sequence[Service], preference: Sequence[str]) -> Service | None:
    """Return the kommune's service with the most preferred 8663 code, or None when none matches.

    Among several services with the same code, the first registered wins (registers list the main
    one first).
    """
    by_code: dict[str, Service] = {}
    for service in services:
        by_code.setdefault(service.code, service)
    for code in preference:
        if code in by_code:
            return by_code[code]
    return None
