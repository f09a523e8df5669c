"""Stand-in for NHN's Fastlegeregister (SOAP), answering from another register.

For tests and the demo: the data come from the register the caller gives (the fixture register, as a
rule), shaped the way NHN answers, so ``NhnFastlegeRegister`` can be run against it over real HTTP and
must reach the same routing answers as the fixture register does.

``FastlegeRegisterStandIn`` (``.router``) serves ``POST /v2/flr/Basic`` (SOAP 1.1, the BasicHttp
binding): HTTP Basic against the configured user and password (401 otherwise), ``SOAPAction`` of
``GetPatientGPDetails`` (an ``ActionNotSupported`` fault otherwise), the body read by the hardened
parser. The answer has the shape of NHN's sample (``GPHerId``, ``PatientNIN``) plus the ``GPContract``
with the office (``GPOffice``, ``GPOfficeOrganizationNumber``, ``Municipality``, ``Name``) in WSDL
order; a person without a fastlege gets NHN's not-found fault ("Personen er ikke tilknyttet
fastlegekontrakt"), a person number of the wrong shape a ``Client`` fault. Faults are HTTP 500, as WCF
answers them.

It has ``faults`` and ``calls`` (see ``register_faults``).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any, Final

from fastapi import APIRouter
from lxml import etree
from starlette.requests import Request
from starlette.responses import Response

from edi_gateway.dev.nhn_standin.register_faults import Faults, Recorder
from edi_gateway.errors import XmlRejected
from edi_gateway.registers.base import FastlegeRegister, GpAssignment
from edi_gateway.registers.nhn_flr import (
    COMMON_NS,
    FLR_NS,
    SOAP11_NS,
    SOAP_ACTION_GET_PATIENT_GP,
    XSI_NS,
)
from edi_gateway.xml.safe import full_text, parse_xml

__all__ = ["FLR_PATH", "FastlegeRegisterStandIn"]

FLR_PATH: Final = "/v2/flr/Basic"
"""Where the Fastlegeregister stand-in listens (the BasicHttp binding's path)."""

_NOT_FOUND_TEXT: Final = "ArgumentException: Personen er ikke tilknyttet fastlegekontrakt"


class FastlegeRegisterStandIn:
    """``GetPatientGPDetails`` over SOAP 1.1 with HTTP Basic, answering from a ``FastlegeRegister``.

    Args:
        fastlege: the register that knows each person's fastlege (and legekontor).
        username: the HTTP Basic user accepted.
        password: its password.
        path: where to listen (default ``/v2/flr/Basic``).

    Attributes:
        router: the FastAPI router to include in an app.
        faults: faults to play on the next requests.
    """

    def __init__(
        self, fastlege: FastlegeRegister, *, username: str, password: str, path: str = FLR_PATH
    ) -> None:
        self._fastlege = fastlege
        self._expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self.faults = Faults()
        self._recorder = Recorder()
        self.router = APIRouter()
        self.router.add_api_route(path, self._endpoint, methods=["POST"], include_in_schema=False)

    @property
    def calls(self) -> list[str]:
        """Every request seen so far, as ``"METHOD /path"``."""
        return self._recorder.snapshot()

    async def _endpoint(self, request: Request) -> Response:
        self._recorder.add(request)
        fault = self.faults.take()
        if fault is not None:
            played = await self.faults.play(fault, request, media_type="text/xml; charset=utf-8")
            if played is not None:
                return played
        if not secrets.compare_digest(
            request.headers.get("authorization", "").encode(), self._expected.encode()
        ):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="FLR"'})
        if not request.headers.get("content-type", "").lower().startswith("text/xml"):
            return Response(status_code=415)
        if request.headers.get("soapaction", "").strip().strip('"') != SOAP_ACTION_GET_PATIENT_GP:
            return _soap_fault("a:ActionNotSupported", "The message's action is not supported here.", None)
        try:
            root = parse_xml(await request.body(), max_bytes=1024 * 1024)
        except XmlRejected:
            return Response(status_code=400)
        nin_element = root.find(f"{{{SOAP11_NS}}}Body/{{{FLR_NS}}}GetPatientGPDetails/{{{FLR_NS}}}patientNin")
        if etree.QName(root).namespace != SOAP11_NS or nin_element is None:
            return Response(status_code=400)
        nin = full_text(nin_element)
        if len(nin) != 11 or not nin.isdigit():
            return _soap_fault("s:Client", "ArgumentException: Ugyldig fødselsnummer", "Feil")
        assignment = self._fastlege.fastlege_for(nin)
        if assignment is None:
            return _soap_fault("s:Client", _NOT_FOUND_TEXT, "Feil")
        return Response(_gp_details(nin, assignment), media_type="text/xml; charset=utf-8")


def _default_ns(uri: str) -> dict[Any, str]:
    """An nsmap making ``uri`` the default namespace (lxml-stubs type the prefix as str only)."""
    return {None: uri}


def _soap_fault(code: str, text: str, error_code: str | None) -> Response:
    """A SOAP 1.1 fault (HTTP 500), with NHN's ``GenericFault`` detail when ``error_code`` is given."""
    soap = f"{{{SOAP11_NS}}}"
    envelope = etree.Element(f"{soap}Envelope", nsmap={"s": SOAP11_NS})
    fault = etree.SubElement(etree.SubElement(envelope, f"{soap}Body"), f"{soap}Fault")
    etree.SubElement(fault, "faultcode").text = code
    reason = etree.SubElement(fault, "faultstring")
    reason.text = text
    reason.set("{http://www.w3.org/XML/1998/namespace}lang", "nb-NO")
    if error_code is not None:
        generic = etree.SubElement(
            etree.SubElement(fault, "detail"), f"{{{COMMON_NS}}}GenericFault", nsmap=_default_ns(COMMON_NS)
        )
        etree.SubElement(generic, f"{{{COMMON_NS}}}ErrorCode").text = error_code
        etree.SubElement(generic, f"{{{COMMON_NS}}}Message").text = text
    return Response(
        etree.tostring(envelope, xml_declaration=True, encoding="utf-8"),
        status_code=500,
        media_type="text/xml; charset=utf-8",
    )


def _gp_details(nin: str, assignment: GpAssignment) -> bytes:
    """The ``GetPatientGPDetailsResponse`` envelope, elements in the WSDL's sequence order."""
    soap, flr, common = f"{{{SOAP11_NS}}}", f"{{{FLR_NS}}}", f"{{{COMMON_NS}}}"
    corporate = "{http://register.nhn.no/Corporate}"
    office = assignment.legekontor
    envelope = etree.Element(f"{soap}Envelope", nsmap={"s": SOAP11_NS})
    response = etree.SubElement(
        etree.SubElement(envelope, f"{soap}Body"), f"{flr}GetPatientGPDetailsResponse"
    )
    result = etree.SubElement(
        response,
        f"{flr}GetPatientGPDetailsResult",
        nsmap={**_default_ns(FLR_NS), "i": XSI_NS, "b": COMMON_NS},
    )
    contract = etree.SubElement(result, f"{flr}GPContract")
    gp_office = etree.SubElement(contract, f"{flr}GPOffice", nsmap={"c": corporate[1:-1]})
    etree.SubElement(gp_office, f"{corporate}DisplayName").text = office.organisation.name
    etree.SubElement(gp_office, f"{corporate}Name").text = office.organisation.name
    if office.organisation.org_number:
        etree.SubElement(gp_office, f"{corporate}OrganizationNumber").text = office.organisation.org_number
        etree.SubElement(contract, f"{flr}GPOfficeOrganizationNumber").text = office.organisation.org_number
    etree.SubElement(contract, f"{flr}Id").text = str(office.her_id)
    if office.kommunenummer:
        municipality = etree.SubElement(contract, f"{flr}Municipality")
        etree.SubElement(municipality, f"{common}Active").text = "true"
        etree.SubElement(municipality, f"{common}CodeValue").text = office.kommunenummer
        etree.SubElement(municipality, f"{common}OID").text = "3402"
        etree.SubElement(municipality, f"{common}SimpleType").text = "kommunenummer"
    etree.SubElement(contract, f"{flr}Name").text = office.organisation.name
    etree.SubElement(result, f"{flr}GPHerId").text = str(assignment.practitioner.her_id)
    etree.SubElement(result, f"{flr}PatientNIN").text = nin
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
