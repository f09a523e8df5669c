"""Register look-ups for operators (CLI, API, pages); a look-up of a person is personal data, so it is audited.

Looking up a kommunenummer or a HER-id is open to every operator account. Looking up a person
number tells where a patient lives and who their fastlege is: that needs the OPERATOR role and a
reason, and writes an audit entry, like revealing the person number of a message.
"""

from __future__ import annotations

from typing import Any

from edi_gateway.errors import PermanentError
from edi_gateway.services import queries
from edi_gateway.services.access import Operator, audit, check_reason
from edi_gateway.services.context import Gateway

PERSON_DIGITS = 11


class BadLookup(PermanentError):
    """The query is neither a person number, a kommunenummer nor a HER-id."""


def is_person_query(query: str) -> bool:
    """Whether ``query`` is a person number (11 digits, spaces allowed)."""
    text = "".join(query.split())
    return len(text) == PERSON_DIGITS and text.isdigit()


def registry_lookup(gateway: Gateway, operator: Operator, query: str, reason: str | None) -> dict[str, Any]:
    """Look ``query`` up in the registers; a person number needs OPERATOR and a reason, and is audited.

    Raises:
        AccessDenied: a person number was asked for by a viewer.
        ReasonRequired: a person number was asked for without a reason.
        BadLookup: the query is none of the forms the registers know.
    """
    person = is_person_query(query)
    if person:
        operator, reason = check_reason(operator, reason or "")
    try:
        found = queries.registry_lookup(gateway.registers, gateway.rules, query)
    except ValueError as exc:
        raise BadLookup(str(exc)) from None
    if person:
        person_id = "".join(query.split())
        audit(
            gateway.store,
            operator,
            action="registry_lookup_person",
            reason=reason or "",
            patient_ref=person_id,
        )
    return found
