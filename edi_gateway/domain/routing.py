"""Routing rules and receiver choice: which kommune service gets the message, and what it says.

The rules come from ``routing_rules/*.yaml`` (parsed elsewhere; this module only validates the data
and decides). Every decision here is a pure function with a table-driven test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edi_gateway.domain.model import Coded, ReceiverContact, Service, ServiceChoice


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
    """The whole rule set: defaults plus per-kommune overrides.

    Attributes:
        service_names: a plain word per kodeverk 8663 code, for the recorded reason of a choice.
    """

    message: MessageRule
    routing: RoutingRule
    service_names: dict[str, str] = Field(default_factory=dict)
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

    def rule_name(self, kommunenummer: str) -> str:
        """Return where the preference for ``kommunenummer`` comes from: ``default`` or ``kommune <nr>``."""
        return f"kommune {kommunenummer}" if kommunenummer in self.kommuner else "default"

    def choose(self, kommunenummer: str, services: Sequence[Service]) -> ServiceChoice | None:
        """Choose among a kommune's services by the preference in force there (see ``choose_service``)."""
        return choose_service(
            services,
            self.service_preference(kommunenummer),
            names=self.service_names,
            rule=self.rule_name(kommunenummer),
        )

    def tema(self, samhandlingspunkt: int) -> str:
        """Return the Tema wording for a samhandlingspunkt."""
        return self.message.tema[samhandlingspunkt]

    def contact_for_service(self, service_code: str) -> ReceiverContact | None:
        """Return the ``Kontakt hos mottaker`` configured for a service code, if any."""
        rule = self.receiver_contact.get(service_code)
        return None if rule is None else ReceiverContact(profession=rule.profession.to_coded())


def choose_service(
    services: Sequence[Service],
    preference: Sequence[str],
    *,
    names: Mapping[str, str] | None = None,
    rule: str = "default",
) -> ServiceChoice | None:
    """Return the kommune's service with the most preferred 8663 code and why, or None when none matches.

    Among several services with the same code, the first registered wins (registers list the main
    one first). The reason names the more preferred codes the kommune has no service for.

    Args:
        services: the kommune's services as the Adresseregister lists them.
        preference: kodeverk 8663 codes, most preferred first.
        names: a plain word per code for the reason (``KD0501`` → ``tjenestekontor``).
        rule: where ``preference`` comes from, recorded with the choice.
    """
    by_code: dict[str, Service] = {}
    for service in services:
        by_code.setdefault(service.code, service)
    for rank, code in enumerate(preference):
        if code in by_code:
            reason = _reason(preference[:rank], code, names or {}, rule)
            return ServiceChoice(by_code[code], reason, tuple(preference), rule)
    return None


def _reason(missing: Sequence[str], chosen: str, names: Mapping[str, str], rule: str) -> str:
    def label(code: str) -> str:
        return f"{names[code]} ({code})" if code in names else code

    source = "the routing rules" if rule == "default" else f"the routing rule for {rule}"
    if not missing:
        return f"{label(chosen)} registered: the first preference of {source}"
    absent = " or ".join(label(code) for code in missing)
    return f"no {absent} registered; falls back to {label(chosen)}, the next preference of {source}"
