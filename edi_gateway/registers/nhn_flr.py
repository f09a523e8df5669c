"""NHN Fastlegeregisteret over SOAP (``schemas/nhn/nhn-fastlegeregisteret-read.wsdl``), and no population register.

``NhnFastlegeRegister`` answers ``fastlege_for(person)`` with one ``GetPatientGPDetails`` call on the
BasicHttp binding (SOAP 1.1, ``…/v2/flr/Basic``), HTTP Basic over HTTPS, ``SOAPAction`` exactly as the
WSDL names it. The answer's ``GPHerId`` is the fastlege's person HER-id; the Adresseregister turns it
into the legekontor (``parent_of``) and the practitioner (the legekontor's ``persons``). When AR has no
municipality for the legekontor, the FLR contract's ``Municipality`` fills ``kommunenummer``.

The request is built with lxml; the answer is read with the hardened parser (``edi_gateway.xml.safe``:
no DTD, no entities, a size limit). SOAP 1.1 and SOAP 1.2 envelopes are both read (NHN's published
samples are SOAP 1.2, the BasicHttp binding answers SOAP 1.1).

Errors, per ``edi_gateway.errors``:

* the fault NHN answers for a person without a fastlege ("Personen er ikke tilknyttet
  fastlegekontrakt") → None;
* any other ``Client``/``Sender`` fault, HTTP 400 and other 4xx but those below, or a person number of the
  wrong shape (checked before asking) → ``RegisterRefused``;
* ``Server``/``Receiver`` faults, timeouts, connection failures, 5xx without a fault, 408, 429, 401/403
  (our credentials refused) → ``RegisterUnavailable``;
* HTTP 404 → ``RegisterUnavailable`` too: a SOAP endpoint answers 404 only when its URL is wrong, and
  reading that as "no fastlege" would quietly drop every fastlege message;
* an answer that is not a SOAP envelope with the expected body, or is over ``max_response_bytes`` →
  ``RegisterUnavailable`` saying "malformed".

Nothing identifying a person is logged or put into an exception: not the person number, not the fault
text (it may quote the question), only the fault's code. The password is never logged or shown.

``NoPopulationRegister`` stands in for Folkeregisteret, which has no NHN interface here: it knows no one,
so a request must name the patient's kommunenummer (routing answers ``routing.bosted_unknown`` otherwise).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

import httpx
from lxml import etree

from edi_gateway.errors import RegisterRefused, RegisterUnavailable, XmlRejected
from edi_gateway.logging import get_logger
from edi_gateway.nhn.capped import read_capped
from edi_gateway.registers.base import AddressRegister, GpAssignment
from edi_gateway.registers.nhn_ar import check_service_url
from edi_gateway.settings import ConfigurationError
from edi_gateway.xml.safe import full_text, her_id_value, identifier_text, parse_xml

log = get_logger(__name__)

FLR_NS: Final = "http://schemas.nhn.no/reg/flr"
COMMON_NS: Final = "http://register.nhn.no/Common"
SOAP11_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS: Final = "http://www.w3.org/2003/05/soap-envelope"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_ACTION_GET_PATIENT_GP: Final = "http://schemas.nhn.no/reg/flr/IFlrReadOperations/GetPatientGPDetails"
"""The ``soapAction`` of ``GetPatientGPDetails`` in the BasicHttp binding of the WSDL."""

NOT_FOUND_PHRASES: Final = ("ikke tilknyttet fastlegekontrakt",)
"""Text of the fault FLR answers for a person without a fastlege (compared in lower case)."""

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024

_PERSON_NUMBER = re.compile(r"[0-9]{11}")
_FAULT_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_KOMMUNENUMMER = re.compile(r"[0-9]{4}")


@dataclass(frozen=True, slots=True)
class FlrConfig:
    """How to reach Fastlegeregisteret.

    Attributes:
        endpoint: the BasicHttp endpoint, e.g. ``https://ws-web.test.nhn.no/v2/flr/Basic``.
        username: the HTTP Basic user NHN gave us.
        password: its password; never shown in ``repr`` or logs.
        timeout_s: connect/read/write/pool timeout of a request, in seconds.
        max_response_bytes: the largest answer accepted; a larger one is a malformed answer.

    Raises:
        ConfigurationError: on construction, when a value cannot work.
    """

    endpoint: str
    username: str
    password: str = field(repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", check_service_url(self.endpoint, what="the FLR endpoint"))
        if not self.username or not self.password:
            raise ConfigurationError("the FLR username and password must both be set")
        if not self.timeout_s > 0:
            raise ConfigurationError("the FLR timeout must be positive")
        if self.max_response_bytes <= 0:
            raise ConfigurationError("the FLR response size limit must be positive")


@dataclass(frozen=True, slots=True)
class FlrAnswer:
    """What the gateway reads from a ``GetPatientGPDetails`` answer (nothing about the patient).

    Attributes:
        gp_her_id: the fastlege's person HER-id (``GPHerId``), when given.
        office_org_number: the GP office's organisasjonsnummer (``GPContract/GPOfficeOrganizationNumber``).
        municipality: the contract's kommunenummer (``GPContract/Municipality/CodeValue``).
    """

    gp_her_id: int | None
    office_org_number: str | None = None
    municipality: str | None = None


@dataclass(frozen=True, slots=True)
class SoapFault:
    """A SOAP 1.1 or 1.2 fault, as far as it is classified.

    Attributes:
        code: the fault code's local name (``Client``/``Sender``, ``Server``/``Receiver`` ...).
        error_code: ``GenericFault/ErrorCode`` from the detail, when it is a clean token.
        not_found: the fault says the person has no fastlege.
    """

    code: str
    error_code: str | None
    not_found: bool

    @property
    def senders_fault(self) -> bool:
        """Whether the fault blames the question (SOAP 1.1 ``Client``, SOAP 1.2 ``Sender``)."""
        return self.code in ("Client", "Sender") or self.code.startswith("Client.")


def build_get_patient_gp_request(person_id: str) -> bytes:
    """Return the SOAP 1.1 envelope asking ``GetPatientGPDetails(patientNin)``."""
    soap = f"{{{SOAP11_NS}}}"
    envelope = etree.Element(f"{soap}Envelope", nsmap={"s": SOAP11_NS, "flr": FLR_NS})
    body = etree.SubElement(envelope, f"{soap}Body")
    operation = etree.SubElement(body, f"{{{FLR_NS}}}GetPatientGPDetails")
    etree.SubElement(operation, f"{{{FLR_NS}}}patientNin").text = person_id
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def parse_patient_gp_response(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
) -> FlrAnswer | None:
    """Read a ``GetPatientGPDetails`` answer or fault.

    Returns:
        The answer, or None when FLR says the person has no fastlege (the not-found fault, or an empty
        ``GetPatientGPDetailsResult``).

    Raises:
        RegisterRefused: a fault blaming the question.
        RegisterUnavailable: a server fault, or a document that is not the expected answer ("malformed").
    """
    body = _soap_body(data, max_bytes)
    fault = _fault(body)
    if fault is not None:
        raise_for_fault(fault)
        return None
    response = body.find(f"{{{FLR_NS}}}GetPatientGPDetailsResponse")
    if response is None:
        raise _malformed("the body holds no GetPatientGPDetailsResponse")
    result = response.find(f"{{{FLR_NS}}}GetPatientGPDetailsResult")
    if result is None or _is_nil(result):
        return None
    try:
        gp = _child(result, FLR_NS, "GPHerId")
        gp_her_id = her_id_value(identifier_text(gp), where="GPHerId") if gp is not None else None
        contract = _child(result, FLR_NS, "GPContract")
        office, municipality = None, None
        if contract is not None:
            office_element = _child(contract, FLR_NS, "GPOfficeOrganizationNumber")
            office = identifier_text(office_element) if office_element is not None else None
            code = _child(contract, FLR_NS, "Municipality")
            value = _child(code, COMMON_NS, "CodeValue") if code is not None else None
            municipality = identifier_text(value) if value is not None else None
    except XmlRejected as exc:
        raise _malformed(f"an identifier is unreadable ({exc})") from exc
    return FlrAnswer(
        gp_her_id=gp_her_id,
        office_org_number=_org_number(office),
        municipality=municipality if municipality and _KOMMUNENUMMER.fullmatch(municipality) else None,
    )


def read_fault(data: bytes, *, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> SoapFault | None:
    """Return the fault in a SOAP envelope, or None when its body holds none.

    Raises:
        RegisterUnavailable: the bytes are not a SOAP envelope ("malformed").
    """
    return _fault(_soap_body(data, max_bytes))


def raise_for_fault(fault: SoapFault) -> None:
    """Raise the error a fault maps to; return only for the not-found fault (the caller answers None).

    Raises:
        RegisterRefused: the fault blames the question.
        RegisterUnavailable: any other fault.
    """
    if fault.not_found:
        return
    label = f"fault {fault.code}" + (f", {fault.error_code}" if fault.error_code else "")
    if fault.senders_fault:
        raise RegisterRefused(f"FLR refused the question ({label})")
    raise RegisterUnavailable(f"FLR failed to answer ({label})")


def _soap_body(data: bytes, max_bytes: int) -> etree._Element:
    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except XmlRejected as exc:
        raise _malformed(f"the answer is not readable XML ({exc})") from exc
    ns = etree.QName(root).namespace
    if etree.QName(root).localname != "Envelope" or ns not in (SOAP11_NS, SOAP12_NS):
        raise _malformed("the answer is not a SOAP envelope")
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        raise _malformed("the SOAP envelope has no Body")
    return body


def _fault(body: etree._Element) -> SoapFault | None:
    ns = etree.QName(body).namespace
    fault = body.find(f"{{{ns}}}Fault")
    if fault is None:
        return None
    if ns == SOAP12_NS:
        code_element = fault.find(f"{{{ns}}}Code/{{{ns}}}Value")
        reason = " ".join(full_text(t) for t in fault.iterfind(f"{{{ns}}}Reason/{{{ns}}}Text"))
        detail = fault.find(f"{{{ns}}}Detail")
    else:
        code_element = fault.find("faultcode")
        reason_element = fault.find("faultstring")
        reason = full_text(reason_element) if reason_element is not None else ""
        detail = fault.find("detail")
    code = full_text(code_element).rpartition(":")[2] if code_element is not None else ""
    error_code, message = None, ""
    generic = detail.find(f"{{{COMMON_NS}}}GenericFault") if detail is not None else None
    if generic is not None:
        error_element = generic.find(f"{{{COMMON_NS}}}ErrorCode")
        message_element = generic.find(f"{{{COMMON_NS}}}Message")
        error_text = full_text(error_element) if error_element is not None else ""
        error_code = error_text if _FAULT_CODE.fullmatch(error_text) else None
        message = full_text(message_element) if message_element is not None else ""
    said = f"{reason} {message}".lower()
    return SoapFault(
        code=code if _FAULT_CODE.fullmatch(code) else "?",
        error_code=error_code,
        not_found=any(phrase in said for phrase in NOT_FOUND_PHRASES),
    )


def _org_number(text: str | None) -> str | None:
    """An ``xs:int`` organisasjonsnummer as nine digits (leading zeros restored), or None."""
    if not text or not text.isdigit() or len(text) > 9 or int(text) == 0:
        return None
    return text.zfill(9)


def _child(parent: etree._Element, ns: str, name: str) -> etree._Element | None:
    found = parent.find(f"{{{ns}}}{name}")
    return None if found is None or _is_nil(found) else found


def _is_nil(element: etree._Element) -> bool:
    return element.get(f"{{{XSI_NS}}}nil") in ("true", "1")


def _malformed(detail: str) -> RegisterUnavailable:
    return RegisterUnavailable(f"FLR answered something malformed: {detail}")


class NhnFastlegeRegister:
    """``FastlegeRegister`` over FLR's ``GetPatientGPDetails``, resolved through an ``AddressRegister``.

    Thread-safe: one ``httpx.Client`` serves every thread. Close it with :meth:`close` or use the
    register as a context manager.

    Args:
        config: the endpoint and credentials.
        address: the Adresseregister that knows the fastlege and the legekontor (a cached one, typically).
        client: an httpx client to use instead of a new one (tests); the register does not close it.
    """

    def __init__(
        self, config: FlrConfig, address: AddressRegister, *, client: httpx.Client | None = None
    ) -> None:
        self._config = config
        self._address = address
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=config.timeout_s, follow_redirects=False)
        self._auth = httpx.BasicAuth(config.username, config.password)

    def close(self) -> None:
        """Close the HTTP connection pool (when the register created it)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> NhnFastlegeRegister:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fastlege_for(self, person_id: str) -> GpAssignment | None:
        """Return the person's fastlege and legekontor, or None when FLR or AR knows none.

        Raises:
            RegisterRefused: ``person_id`` is not 11 digits, or FLR refused the question.
            RegisterUnavailable: FLR or AR did not answer, or answered something unreadable.
        """
        answer = self.patient_gp(person_id)
        if answer is None:
            return None
        if answer.gp_her_id is None:
            log.warning("FLR named a fastlege contract without a GP HER-id; no fastlege to address")
            return None
        legekontor = self._address.parent_of(answer.gp_her_id)
        practitioner = None
        if legekontor is not None:
            practitioner = next((p for p in legekontor.persons if p.her_id == answer.gp_her_id), None)
        if legekontor is None or practitioner is None:
            log.warning("the fastlege FLR names is not a person in AR", gp_her_id=answer.gp_her_id)
            return None
        if answer.office_org_number is not None and legekontor.organisation.org_number not in (
            None,
            answer.office_org_number,
        ):
            log.warning(
                "FLR and AR disagree on the fastlege's office; AR's is used",
                gp_her_id=answer.gp_her_id,
                legekontor_her_id=legekontor.her_id,
            )
        if not legekontor.kommunenummer and answer.municipality is not None:
            legekontor = dataclasses.replace(legekontor, kommunenummer=answer.municipality)
        return GpAssignment(practitioner=practitioner, legekontor=legekontor)

    def patient_gp(self, person_id: str) -> FlrAnswer | None:
        """Ask FLR ``GetPatientGPDetails`` for one person; None when the person has no fastlege.

        Raises:
            RegisterRefused, RegisterUnavailable: as :meth:`fastlege_for`.
        """
        if not isinstance(person_id, str) or not _PERSON_NUMBER.fullmatch(person_id):
            raise RegisterRefused("a person number is 11 digits")
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{SOAP_ACTION_GET_PATIENT_GP}"',
            "Accept": "text/xml",
        }
        envelope = build_get_patient_gp_request(person_id)
        try:
            with self._client.stream(
                "POST", self._config.endpoint, headers=headers, content=envelope, auth=self._auth
            ) as response:
                status = response.status_code
                body = self._read_limited(response) if status in (200, 500) else b""
        except httpx.TimeoutException as exc:
            raise RegisterUnavailable("FLR did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise RegisterUnavailable(f"FLR cannot be reached ({type(exc).__name__})") from exc
        if status == 200:
            return parse_patient_gp_response(body, max_bytes=self._config.max_response_bytes)
        if status == 500:
            fault = _fault_or_none(body, self._config.max_response_bytes)
            if fault is None:
                raise RegisterUnavailable("FLR is unavailable (HTTP 500)")
            raise_for_fault(fault)
            return None
        raise _for_status(status)

    def _read_limited(self, response: httpx.Response) -> bytes:
        limit = self._config.max_response_bytes
        body = read_capped(response, limit)
        if body is None:
            raise _malformed(f"the answer is more than the limit of {limit} bytes")
        return body


def _fault_or_none(body: bytes, max_bytes: int) -> SoapFault | None:
    """The fault in an HTTP 500 answer, or None when the answer is no SOAP fault at all."""
    try:
        return read_fault(body, max_bytes=max_bytes)
    except RegisterUnavailable:
        return None


def _for_status(status: int) -> Exception:
    if status in (401, 403):
        return RegisterUnavailable(f"FLR refused our credentials (HTTP {status})")
    if status == 404:
        return RegisterUnavailable("FLR answered 404: the endpoint URL is wrong")
    if status in (408, 429) or status >= 500:
        return RegisterUnavailable(f"FLR is unavailable (HTTP {status})")
    if 400 <= status < 500:
        return RegisterRefused(f"FLR refused the request (HTTP {status})")
    return _malformed(f"unexpected HTTP {status}")


class NoPopulationRegister:
    """Folkeregisteret stand-in for the ``nhn`` registers: it knows no one.

    There is no NHN interface to the population register here, so every request must carry the
    patient's kommunenummer; without one, routing rejects it with ``routing.bosted_unknown``.
    """

    def bosted_kommune(self, person_id: str) -> str | None:
        """Return None: the bosted kommune is never known here."""
        return None
