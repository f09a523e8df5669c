"""Stand-in for NHN's Adresseregister (the CommunicationParty REST API), answering from another register.

For tests and the demo: the data come from the register the caller gives (the fixture register, as a
rule), shaped the way NHN answers, so ``NhnAddressRegister`` can be run against it over real HTTP and
must reach the same routing answers as the fixture register does.

``AddressRegisterStandIn`` (``.router``) serves the CommunicationParty API paths below ``/api/v1``:

* every request first goes to the ``authorize(request, "nhn:cp-api/access-v2-dpop")`` callable given
  to it (the HelseID stand-in's check; it raises ``HTTPException`` 401/403), then is validated against
  ``schemas/nhn/adresseregister-spec.json`` (``OpenApiValidator``: an invalid request is answered 400
  and recorded in ``validator.violations``); every answer is checked against the same document and a
  mismatch is recorded in ``validator.response_violations``;
* answers are shaped as the spec's schemas: ``CommunicationParty`` for organisations (their units
  too, as organisations of their own, since the REST model names no parent organisation), services
  (``serviceType``: code list ``S62``, the kodeverk 8663 code) and persons (``hprNumber``,
  ``parentOrganization``); ``Certificate`` for signing certificates, from the PEM certificates given
  (the test PKI generates them); ``amqpAddress`` with NHN's ``<host>/<path>/<herId>_async`` shape;
* implemented: ``GET /communicationparty/{herId}``, ``POST /communicationparty`` (by HER-ids),
  ``POST /communicationparty/search``, ``GET /organization/{organizationNumber}``,
  ``GET /certificate/{herId}``, ``/certificate/{herId}/signing`` and ``/encryption`` (the test PKI gives
  each party one certificate, served for both uses). Not implemented: ``/legacy``, ``/export`` and ``/event``.

It has ``faults`` and ``calls`` (see ``register_faults``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edi_gateway.dev.nhn_standin.openapi import OpenApiValidator, mark_unchecked, unmarshalled
from edi_gateway.dev.nhn_standin.register_faults import Faults, Recorder
from edi_gateway.registers.base import AddressRegister, Virksomhet
from edi_gateway.registers.nhn_ar import AR_SCOPE, DEFAULT_BUSINESS_KINDS
from edi_gateway.resources import resource_dir

__all__ = ["AR_DOCUMENT", "AddressRegisterStandIn", "Authorize"]

AR_DOCUMENT: Final = ("nhn", "adresseregister-spec.json")
"""The Adresseregister's REST description, below the shipped ``schemas`` folder."""

AMQP_PREFIX: Final = "sb.standin.nhn.invalid/DigitalDialog"
"""The host and path the stand-in's ``amqpAddress`` queues are given (NHN: ``sb.test.nhn.no/DigitalDialog``)."""

SERVICE_CODE_LIST: Final = "S62"
BUSINESS_CODE_LIST: Final = "9040"
_BUSINESS_CODES: Final = {kind: code for code, kind in DEFAULT_BUSINESS_KINDS.items()}
_BUSINESS_NAMES: Final = {
    "103": "Privatpraktiserende autorisert helsepersonell",
    "101": "Helseforetak (stand-in)",
    "102": "Kommune (stand-in)",
}
_VALID_FROM: Final = "2020-01-01T00:00:00Z"

Authorize = Callable[[Request, str], str]
"""``(request, scope) -> client_id``; raises ``HTTPException`` (401, 403) to refuse the request."""


class AddressRegisterStandIn:
    """The CommunicationParty REST API over an ``AddressRegister`` (its ``all_virksomheter``).

    Args:
        address: the register whose virksomheter (with their units, services and persons) are served.
        authorize: the access-token check, called with the scope ``nhn:cp-api/access-v2-dpop``.
        certificates: HER-id of a virksomhet → its PEM signing certificate.
        validator: the OpenAPI validator to use (default: one for the vendored AR description).

    Attributes:
        router: the FastAPI router to include in an app.
        faults: faults to play on the next requests.
        validator: the request/answer validator, with the violations it recorded.
    """

    def __init__(
        self,
        address: AddressRegister,
        *,
        authorize: Authorize,
        certificates: Mapping[int, bytes] | None = None,
        validator: OpenApiValidator | None = None,
    ) -> None:
        self._authorize = authorize
        self.faults = Faults()
        self.validator = validator or OpenApiValidator.from_path(
            resource_dir("schemas").joinpath(*AR_DOCUMENT)
        )
        self._recorder = Recorder()
        self._parties: dict[int, dict[str, Any]] = {}
        self._owner: dict[int, int] = {}
        self._by_orgnr: dict[str, int] = {}
        self._certificates = {her_id: _certificate(pem) for her_id, pem in (certificates or {}).items()}
        for virksomhet in address.all_virksomheter():
            self._add(virksomhet)
        self.router = self._routes()

    @property
    def calls(self) -> list[str]:
        """Every request seen so far, as ``"METHOD /path"``."""
        return self._recorder.snapshot()

    def reset_calls(self) -> None:
        """Forget the requests seen."""
        self._recorder.clear()

    # -- data --

    def _add(self, v: Virksomhet) -> None:
        name = v.organisation.name
        code = _BUSINESS_CODES.get(v.kind)
        business = {
            "codeListId": BUSINESS_CODE_LIST,
            "value": code or "0",
            "name": _BUSINESS_NAMES.get(code or ""),
        }
        amqp = _amqp(v.queue)
        parent = {"herId": v.her_id, "name": name, "organizationNumber": v.organisation.org_number}
        organisation = _party(v.her_id, name, "Organization", amqp, "Enabled")
        organisation["organizationDetails"] = {
            "organizationNumber": v.organisation.org_number,
            "businessType": business,
            "persons": [p.her_id for p in v.persons],
            "services": [s.her_id for s in v.services],
        }
        if v.her_id in self._certificates:
            organisation["currentSigningCertificate"] = self._certificates[v.her_id].metadata
        self._parties[v.her_id] = organisation
        self._owner[v.her_id] = v.her_id
        if v.organisation.org_number:
            self._by_orgnr[v.organisation.org_number] = v.her_id
        for unit in v.units:
            party = _party(unit.her_id, unit.name, "Organization", amqp, "Inherited")
            party["organizationDetails"] = {
                "organizationNumber": unit.org_number,
                "businessType": business,
                "persons": [],
                "services": [],
            }
            self._parties[unit.her_id] = party
            self._owner[unit.her_id] = v.her_id
        for service in v.services:
            party = _party(service.her_id, service.name, "Service", amqp, "Inherited")
            party["serviceDetails"] = {
                "serviceType": {"codeListId": SERVICE_CODE_LIST, "value": service.code, "name": service.name},
                "parentOrganization": parent,
            }
            self._parties[service.her_id] = party
            self._owner[service.her_id] = v.her_id
        for person in v.persons:
            party = _party(
                person.her_id, f"{person.given_name} {person.family_name}", "Person", amqp, "Inherited"
            )
            hpr = int(person.hpr) if person.hpr and person.hpr.isdigit() else 0
            party["personDetails"] = {"hprNumber": hpr, "parentOrganization": parent}
            self._parties[person.her_id] = party
            self._owner[person.her_id] = v.her_id

    # -- routes --

    def _routes(self) -> APIRouter:
        router = APIRouter()
        routes: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = [
            ("POST", "/api/v1/communicationparty/search", self._search),
            ("GET", "/api/v1/communicationparty/{herId}", self._party_by_her_id),
            ("POST", "/api/v1/communicationparty", self._parties_by_her_ids),
            ("GET", "/api/v1/organization/{organizationNumber}", self._organisation),
            ("GET", "/api/v1/certificate/{herId}/signing", self._signing),
            ("GET", "/api/v1/certificate/{herId}/encryption", self._encryption),
            ("GET", "/api/v1/certificate/{herId}", self._certificate_pairs),
        ]
        for method, path, endpoint in routes:
            router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
        return router

    async def _guard(self, request: Request) -> Response | None:
        """Faults, then the token, then the document: the answer to send instead, or None to go on."""
        self._recorder.add(request)
        fault = self.faults.take()
        if fault is not None:
            mark_unchecked(request)
            played = await self.faults.play(fault, request, media_type="application/json")
            if played is not None:
                return played
        self._authorize(request, AR_SCOPE)
        return await self.validator.check(request)

    def _answer(self, request: Request, content: Any) -> Response:
        response: Response = Response(status_code=404) if content is None else JSONResponse(content)
        self.validator.record_response(request, response)
        return response

    async def _party_by_her_id(self, request: Request) -> Response:
        if (refusal := await self._guard(request)) is not None:
            return refusal
        her_id = unmarshalled(request).parameters.path["herId"]
        return self._answer(request, self._parties.get(her_id))

    async def _parties_by_her_ids(self, request: Request) -> Response:
        if (refusal := await self._guard(request)) is not None:
            return refusal
        her_ids = list(_as_dict(unmarshalled(request).body).get("herIds") or ())
        return self._answer(request, [self._parties[h] for h in dict.fromkeys(her_ids) if h in self._parties])

    async def _search(self, request: Request) -> Response:
        if (refusal := await self._guard(request)) is not None:
            return refusal
        result = unmarshalled(request)
        query = result.parameters.query
        page, size = int(query.get("Page", 1)), int(query.get("Size", 10))
        found = [p for p in self._parties.values() if _matches(p, _as_dict(result.body))]
        return self._answer(request, {"communicationParties": found[(page - 1) * size : page * size]})

    async def _organisation(self, request: Request) -> Response:
        if (refusal := await self._guard(request)) is not None:
            return refusal
        orgnr = unmarshalled(request).parameters.path["organizationNumber"]
        her_id = self._by_orgnr.get(orgnr)
        return self._answer(request, None if her_id is None else self._parties[her_id])

    async def _signing(self, request: Request) -> Response:
        if (refusal := await self._guard(request)) is not None:
            return refusal
        certificate = self._certificate_of(unmarshalled(request).parameters.path["herId"])
        return self._answer(request, None if certificate is None else certificate.full)

    async def _encryption(self, request: Request) -> Response:
        # The test PKI gives each party one key pair: its certificate stands for both uses here.
        return await self._signing(request)

    async def _certificate_pairs(self, request: Request) -> Response:
        if (refusal := await self._guard(request)) is not None:
            return refusal
        certificate = self._certificate_of(unmarshalled(request).parameters.path["herId"])
        pairs = (
            [] if certificate is None else [{"isCurrent": True, "signingCertificate": certificate.metadata}]
        )
        return self._answer(request, pairs)

    def _certificate_of(self, her_id: int) -> _StandInCertificate | None:
        """A party's signing certificate: its own, or (a service, person or unit) its virksomhet's."""
        owner = self._owner.get(her_id)
        return None if owner is None else self._certificates.get(owner)


@dataclass(frozen=True, slots=True)
class _StandInCertificate:
    metadata: dict[str, Any]
    full: dict[str, Any]


def _certificate(pem: bytes) -> _StandInCertificate:
    certificate = x509.load_pem_x509_certificate(pem)
    der = certificate.public_bytes(serialization.Encoding.DER)
    metadata = {
        "thumbprint": hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        "validFrom": _iso(certificate.not_valid_before_utc),
        "validTo": _iso(certificate.not_valid_after_utc),
    }
    return _StandInCertificate(metadata, {**metadata, "certificateValue": base64.b64encode(der).decode()})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amqp(queue: str) -> dict[str, str]:
    base = queue.removesuffix("_async")
    return {
        "amqpAsyncQueue": f"{AMQP_PREFIX}/{base}_async",
        "amqpSyncQueue": f"{AMQP_PREFIX}/{base}_sync",
        "amqpSyncReplyQueue": f"{AMQP_PREFIX}/{base}_syncreply",
        "amqpErrorQueue": f"{AMQP_PREFIX}/{base}_error",
    }


def _party(her_id: int, name: str, kind: str, amqp: dict[str, str], status: str) -> dict[str, Any]:
    return {
        "herId": her_id,
        "name": name,
        "displayName": name,
        "type": kind,
        "amqpTransportStatus": status,
        "amqpAddress": amqp,
        "validFrom": _VALID_FROM,
    }


def _as_dict(value: Any) -> dict[str, Any]:
    """An unmarshalled JSON body (openapi-core gives objects as dicts), or {} when there is none."""
    return value if isinstance(value, dict) else {}


def _matches(party: Mapping[str, Any], search: Mapping[str, Any]) -> bool:
    """Whether a party fits every part of a ``SearchParameters`` body that is set."""
    name = search.get("name")
    if name and str(name).lower() not in str(party.get("name") or "").lower():
        return False
    service = search.get("serviceSearchParameters") or {}
    if service.get("serviceTypeCodeValue") or service.get("serviceTypeCodeListId"):
        kind = (party.get("serviceDetails") or {}).get("serviceType") or {}
        if party["type"] != "Service":
            return False
        for key, field in (("serviceTypeCodeValue", "value"), ("serviceTypeCodeListId", "codeListId")):
            if service.get(key) and service[key] != kind.get(field):
                return False
    organisation = search.get("organizationSearchParameters") or {}
    if organisation.get("businessTypeCodeValue") or organisation.get("businessTypeCodeListId"):
        business = (party.get("organizationDetails") or {}).get("businessType") or {}
        if party["type"] != "Organization":
            return False
        for key, field in (("businessTypeCodeValue", "value"), ("businessTypeCodeListId", "codeListId")):
            if organisation.get(key) and organisation[key] != business.get(field):
                return False
    person = search.get("personSearchParameters") or {}
    if person.get("hprNumber") is not None:
        details = party.get("personDetails") or {}
        if party["type"] != "Person" or details.get("hprNumber") != person["hprNumber"]:
            return False
    return True
