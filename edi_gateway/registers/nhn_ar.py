"""NHN Adresseregisteret over its REST API ("CommunicationParty Api", ``schemas/nhn/adresseregister-spec.json``).

``NhnAddressRegister`` answers the ``AddressRegister`` questions from the REST API, authorised with a
HelseID DPoP token (scope ``nhn:cp-api/access-v2-dpop``). The token and its per-request DPoP proof come
from the caller: ``auth(method, url)`` returns the headers for one request; ``on_unauthorized()`` is
called when the API answers 401, and the request is then repeated once.

How each question maps onto the API:

* ``kommune(kommunenummer)``: AR has no look-up by kommunenummer. A configured mapping (``ArConfig.
  kommune_orgnr``, shipped as ``routing_rules/kommune-organisations.yaml``) gives the kommune's
  organisasjonsnummer; ``GET /api/v1/organization/{orgnr}`` gives the kommune's party, and one
  ``POST /api/v1/communicationparty`` fetches the services and persons it lists.
* ``virksomhet(her_id)``: ``GET /api/v1/communicationparty/{herId}``; only an ``Organization`` party is
  a virksomhet (a service's or a person's HER-id answers None, as the fixture register does).
* ``parent_of(her_id)``: an organisation is its own owner; a service or a person names its
  ``parentOrganization``.
* ``certificate_pem(her_id)``: ``GET /api/v1/certificate/{herId}/signing`` of the owning virksomhet;
  the DER in ``certificateValue`` becomes PEM. ``certificate_not_after`` reads the certificate's expiry.
* ``all_virksomheter()``: the API cannot list "every virksomhet we route to" either; the answer is the
  kommuner of the configured mapping plus our own virksomhet (``own_her_id``), in that order. Legekontor
  are found when the Fastlegeregister names them, so their queues are not declared up front.

The answers' models, and how AR's representation becomes a ``Virksomhet`` (and where it says less than
the fixture register), are in ``nhn_ar_models``; how an HTTP answer becomes an error, in ``nhn_ar_faults``.

Errors, per ``edi_gateway.errors``: timeout, connection failure, 5xx, 408 and 429 → ``RegisterUnavailable``;
404 → None; 400 and other 4xx, or an identifier that cannot be valid (checked before asking) →
``RegisterRefused``; 401 → ``on_unauthorized()`` and one retry, then ``RegisterUnavailable``; 403 →
``RegisterUnavailable`` (our client lacks the access; an operator must fix it, the question is fine);
an answer that is not the JSON the spec describes, or larger than ``max_response_bytes`` →
``RegisterUnavailable`` saying "malformed". httpx's exceptions never leave this module. Nothing from a
response body is put into a message or a log line: the answers carry names.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel
from stdnum.no import orgnr as _orgnr

from edi_gateway.errors import RegisterRefused, RegisterUnavailable, TokenUnavailable
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import Virksomhet
from edi_gateway.registers.nhn_ar_faults import (
    check_status,
    malformed,
    path_template,
    read_limited,
    validated,
)
from edi_gateway.registers.nhn_ar_models import (
    DEFAULT_BUSINESS_KINDS,
    SERVICE_CODE_LISTS,
    Certificate,
    OrganizationDetails,
    Party,
    PartyList,
    virksomhet_from,
)
from edi_gateway.settings import ConfigurationError

__all__ = [
    "AR_SCOPE",
    "DEFAULT_BUSINESS_KINDS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "MAX_HER_ID",
    "SERVICE_CODE_LISTS",
    "ArConfig",
    "AuthHeaders",
    "NhnAddressRegister",
    "check_kommune_orgnr",
    "check_service_url",
    "load_kommune_orgnr",
    "pem_not_after",
]

log = get_logger(__name__)

AR_SCOPE: Final = "nhn:cp-api/access-v2-dpop"
"""The HelseID scope the CommunicationParty API requires (audience ``nhn:cp-api``)."""

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
MAX_HER_ID: Final = 2**31 - 1
"""The API types HER-ids as int32."""

_BATCH: Final = 100
_KOMMUNENUMMER = re.compile(r"[0-9]{4}")
_ORGNR = re.compile(r"[0-9]{9}")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

AuthHeaders = Callable[[str, str], Mapping[str, str]]
"""``(method, url) -> headers``: the Authorization and DPoP headers for one request."""

_M = TypeVar("_M", bound=BaseModel)


def check_service_url(url: str, *, what: str) -> str:
    """Return ``url`` without a trailing slash, refusing anything but HTTPS (plain HTTP on loopback only).

    Args:
        url: the configured URL.
        what: the setting's name, for the message.

    Raises:
        ConfigurationError: the URL is not absolute HTTPS (or HTTP to 127.0.0.1/localhost/::1).
    """
    parts = urlsplit(url)
    loopback = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS
    if not parts.hostname or (parts.scheme != "https" and not loopback):
        raise ConfigurationError(f"{what} must be an https:// URL (plain http only to a loopback address)")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{what} must not have a query or a fragment")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class ArConfig:
    """How to reach the Adresseregister's REST API.

    Attributes:
        base_url: the API root, e.g. ``https://cpapi.test.grunndata.nhn.no`` (paths start ``/api/v1``).
        timeout_s: connect/read/write/pool timeout of every request, in seconds.
        kommune_orgnr: kommunenummer (4 digits) → the kommune's organisasjonsnummer (9 digits, valid
            checksum); see :func:`load_kommune_orgnr`.
        max_response_bytes: the largest answer body accepted; a larger one is a malformed answer.

    Raises:
        ConfigurationError: on construction, when a value cannot work.
    """

    base_url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    kommune_orgnr: Mapping[str, str] = field(default_factory=dict, hash=False)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", check_service_url(self.base_url, what="the AR base URL"))
        if not self.timeout_s > 0:
            raise ConfigurationError("the AR timeout must be positive")
        if self.max_response_bytes <= 0:
            raise ConfigurationError("the AR response size limit must be positive")
        object.__setattr__(self, "kommune_orgnr", MappingProxyType(check_kommune_orgnr(self.kommune_orgnr)))


def check_kommune_orgnr(mapping: Mapping[Any, Any]) -> dict[str, str]:
    """Check a kommunenummer → organisasjonsnummer mapping; return it as a plain dict.

    Raises:
        ConfigurationError: a key is not four digits, a value is not a valid organisasjonsnummer, or
            two kommuner share one.
    """
    checked: dict[str, str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not _KOMMUNENUMMER.fullmatch(key):
            raise ConfigurationError(f"kommunenummer {key!r} must be four digits in quotes")
        if not isinstance(value, str) or not _ORGNR.fullmatch(value) or not _orgnr.is_valid(value):
            raise ConfigurationError(f"kommune {key}: {value!r} is not a valid organisasjonsnummer")
        checked[key] = value
    if len(set(checked.values())) != len(checked):
        raise ConfigurationError("two kommuner have the same organisasjonsnummer")
    return checked


def load_kommune_orgnr(path: Path) -> dict[str, str]:
    """Read the kommunenummer → organisasjonsnummer file (``routing_rules/kommune-organisations.yaml``).

    Raises:
        ConfigurationError: the file cannot be read, is not a YAML mapping, or holds a bad entry.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path.name} cannot be read: {type(exc).__name__}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path.name} must be a mapping of kommunenummer to organisasjonsnummer")
    return check_kommune_orgnr(data)


def pem_not_after(pem: bytes) -> datetime:
    """Return the expiry (``notAfter``, timezone-aware UTC) of a PEM certificate.

    Raises:
        ValueError: the bytes are not a PEM certificate.
    """
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


class NhnAddressRegister:
    """``AddressRegister`` over NHN's CommunicationParty REST API.

    Thread-safe: one ``httpx.Client`` (a connection pool) serves every thread. Close it with
    :meth:`close` or use the register as a context manager.

    Args:
        config: where the API is and the kommune mapping.
        auth: ``(method, url) -> headers`` for each request (HelseID DPoP: ``Authorization`` and ``DPoP``).
            A ``TokenUnavailable`` it raises becomes ``RegisterUnavailable``.
        on_unauthorized: called when the API answers 401 (drop the cached token), before the one retry.
        own_her_id: our own virksomhet, listed by :meth:`all_virksomheter`.
        own_unit_her_ids: our organisational units; they are attached to our virksomhet and
            :meth:`parent_of` answers our virksomhet for them.
        business_kinds: business type code → ``Virksomhet.kind`` (see :data:`DEFAULT_BUSINESS_KINDS`).
        client: an httpx client to use instead of a new one (tests); the register does not close it.
    """

    def __init__(
        self,
        config: ArConfig,
        *,
        auth: AuthHeaders,
        on_unauthorized: Callable[[], None] | None = None,
        own_her_id: int | None = None,
        own_unit_her_ids: Iterable[int] = (),
        business_kinds: Mapping[str, str] = DEFAULT_BUSINESS_KINDS,
        client: httpx.Client | None = None,
    ) -> None:
        self._config = config
        self._auth = auth
        self._on_unauthorized = on_unauthorized
        self._own_her_id = own_her_id
        self._own_units = tuple(dict.fromkeys(own_unit_her_ids))
        self._business_kinds = dict(business_kinds)
        self._kommune_by_orgnr = {orgnr: nr for nr, orgnr in config.kommune_orgnr.items()}
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=config.timeout_s, follow_redirects=False)

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP connection pool (when the register created it)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> NhnAddressRegister:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- AddressRegister -------------------------------------------------------------------------------

    def kommune(self, kommunenummer: str) -> Virksomhet | None:
        """Return the kommune with this kommunenummer, or None when it is not in the configured mapping or AR.

        Raises:
            RegisterRefused: ``kommunenummer`` is not four digits, or AR refused the question.
            RegisterUnavailable: AR did not answer, or answered something unreadable.
        """
        if not isinstance(kommunenummer, str) or not _KOMMUNENUMMER.fullmatch(kommunenummer):
            raise RegisterRefused("a kommunenummer is four digits")
        orgnr = self._config.kommune_orgnr.get(kommunenummer)
        if orgnr is None:
            return None
        party = self._get_model(f"/api/v1/organization/{orgnr}", Party)
        if party is None:
            return None
        details = party.organizationDetails
        if party.type != "Organization" or (
            details is not None and details.organizationNumber not in (None, orgnr)
        ):
            raise malformed(f"organisation {orgnr} answered with another party")
        return self._build(party, kommunenummer=kommunenummer)

    def virksomhet(self, her_id: int) -> Virksomhet | None:
        """Return the organisation with this HER-id, or None (also for a service's or a person's HER-id).

        Raises:
            RegisterRefused: ``her_id`` cannot be a HER-id, or AR refused the question.
            RegisterUnavailable: AR did not answer, or answered something unreadable.
        """
        _check_her_id(her_id)
        if her_id in self._own_units:
            return None
        party = self._party(her_id)
        if party is None or party.type != "Organization":
            return None
        return self._build(party)

    def parent_of(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet owning ``her_id``: itself, or the parent of a service, person or own unit.

        Raises:
            RegisterRefused: ``her_id`` cannot be a HER-id, or AR refused the question.
            RegisterUnavailable: AR did not answer, or answered something unreadable.
        """
        found = self._owner(her_id)
        if found is None:
            return None
        owner, party = found
        if party is None:
            party = self._party(owner)
            if party is None or party.type != "Organization":
                return None
        return self._build(party)

    def certificate_pem(self, her_id: int) -> bytes | None:
        """Return the current signing certificate (PEM) of the virksomhet owning ``her_id``, or None.

        Raises:
            RegisterRefused: ``her_id`` cannot be a HER-id, or AR refused the question.
            RegisterUnavailable: AR did not answer, or the certificate is unreadable.
        """
        return self._certificate(her_id, "signing")

    def encryption_certificate_pem(self, her_id: int) -> bytes | None:
        """Return the current encryption certificate (PEM) of the virksomhet owning ``her_id``, or None.

        The message service encrypts in transport itself; this is for a channel that must encrypt
        to the receiver (an AMQP bridge to NHN's queues, say).

        Raises:
            RegisterRefused, RegisterUnavailable: as :meth:`certificate_pem`.
        """
        return self._certificate(her_id, "encryption")

    def _certificate(self, her_id: int, usage: str) -> bytes | None:
        found = self._owner(her_id)
        if found is None:
            return None
        owner = found[0]
        answer = self._get_model(f"/api/v1/certificate/{owner}/{usage}", Certificate)
        if answer is None:
            return None
        if not answer.certificateValue:
            raise malformed(f"the {usage} certificate of {owner} has no certificateValue")
        try:
            der = base64.b64decode(answer.certificateValue, validate=True)
            certificate = x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError) as exc:
            raise malformed(f"the {usage} certificate of {owner} is not a DER certificate") from exc
        return certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_not_after(self, her_id: int) -> datetime | None:
        """Return when the signing certificate of the virksomhet owning ``her_id`` expires, or None.

        For warning operators about a certificate close to expiry. Read from the certificate itself.

        Raises:
            RegisterRefused, RegisterUnavailable: as :meth:`certificate_pem`.
        """
        pem = self.certificate_pem(her_id)
        return None if pem is None else pem_not_after(pem)

    def all_virksomheter(self) -> tuple[Virksomhet, ...]:
        """The kommuner of the configured mapping (those AR knows), then our own virksomhet when configured.

        Raises:
            RegisterUnavailable: AR did not answer.
        """
        found: list[Virksomhet] = []
        for kommunenummer in self._config.kommune_orgnr:
            kommune = self.kommune(kommunenummer)
            if kommune is not None:
                found.append(kommune)
        if self._own_her_id is not None and all(v.her_id != self._own_her_id for v in found):
            own = self.virksomhet(self._own_her_id)
            if own is not None:
                found.append(own)
        return tuple(found)

    # -- building a Virksomhet ---------------------------------------------------------------------

    def _owner(self, her_id: int) -> tuple[int, Party | None] | None:
        """The HER-id of the organisation owning ``her_id`` (one request), and its party when that is ``her_id``.

        None when AR has no such party.
        """
        _check_her_id(her_id)
        own = self._own_her_id
        if own is not None and her_id in self._own_units:
            return own, None
        party = self._party(her_id)
        if party is None:
            return None
        if party.type == "Organization":
            return her_id, party
        details = party.serviceDetails if party.type == "Service" else party.personDetails
        if details is None:
            raise malformed(f"{party.type} {her_id} has no parent organisation")
        parent = details.parentOrganization.herId
        return (own if own is not None and parent in self._own_units else parent), None

    def _party(self, her_id: int) -> Party | None:
        party = self._get_model(f"/api/v1/communicationparty/{her_id}", Party)
        if party is not None and party.herId != her_id:
            raise malformed(f"asked for HER-id {her_id}, got {party.herId}")
        return party

    def _build(self, party: Party, *, kommunenummer: str | None = None) -> Virksomhet:
        details = party.organizationDetails or OrganizationDetails()
        service_ids = list(details.services or ())
        person_ids = list(details.persons or ())
        unit_ids = list(self._own_units) if party.herId == self._own_her_id else []
        children = self._parties([*service_ids, *person_ids, *unit_ids])
        orgnr = details.organizationNumber or None
        if kommunenummer is None and orgnr is not None:
            kommunenummer = self._kommune_by_orgnr.get(orgnr)
        return virksomhet_from(
            party,
            children,
            unit_ids=unit_ids,
            kommunenummer=kommunenummer,
            business_kinds=self._business_kinds,
        )

    def _parties(self, her_ids: Sequence[int]) -> dict[int, Party]:
        """Fetch parties by HER-id (``POST /api/v1/communicationparty``, in batches); unknown ones are absent."""
        found: dict[int, Party] = {}
        unique = list(dict.fromkeys(her_ids))
        for start in range(0, len(unique), _BATCH):
            batch = unique[start : start + _BATCH]
            data = self._request("POST", "/api/v1/communicationparty", json_body={"herIds": batch})
            if data is None:
                continue
            answer = validated(PartyList, {"parties": data}, "/api/v1/communicationparty")
            found.update((p.herId, p) for p in answer.parties if p.herId in batch)
        return found

    # -- HTTP ----------------------------------------------------------------------------------------

    def _get_model(self, path: str, model: type[_M]) -> _M | None:
        data = self._request("GET", path)
        return None if data is None else validated(model, data, path)

    def _request(self, method: str, path: str, *, json_body: object = None) -> Any:
        """Send one request (retrying once after a 401) and return its JSON, or None on 404.

        Raises:
            RegisterRefused, RegisterUnavailable: as the module docstring maps them.
        """
        url = self._config.base_url + path
        content = None if json_body is None else json.dumps(json_body).encode()
        for attempt in (1, 2):
            headers = {"Accept": "application/json", **self._auth_headers(method, url)}
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                with self._client.stream(method, url, headers=headers, content=content) as response:
                    status = response.status_code
                    if status == 401:
                        if attempt == 1:
                            log.info("AR refused the access token; retrying once", status=status)
                            if self._on_unauthorized is not None:
                                self._on_unauthorized()
                            continue
                        raise RegisterUnavailable("AR refused the access token twice (401)")
                    check_status(status, method, path)
                    if status == 404:
                        return None
                    body = read_limited(response, self._config.max_response_bytes, path)
            except httpx.TimeoutException as exc:
                raise RegisterUnavailable(
                    f"AR did not answer {method} {path_template(path)} in time"
                ) from exc
            except httpx.HTTPError as exc:
                raise RegisterUnavailable(
                    f"AR cannot be reached for {method} {path_template(path)} ({type(exc).__name__})"
                ) from exc
            try:
                return json.loads(body)
            except ValueError as exc:
                raise malformed(f"{path_template(path)} did not answer JSON") from exc
        raise RegisterUnavailable("AR refused the access token (401)")  # pragma: no cover - loop returns

    def _auth_headers(self, method: str, url: str) -> Mapping[str, str]:
        try:
            return self._auth(method, url)
        except TokenUnavailable as exc:
            raise RegisterUnavailable(f"no HelseID access token for AR ({exc.kind})") from exc


def _check_her_id(her_id: int) -> None:
    if isinstance(her_id, bool) or not isinstance(her_id, int) or not 0 < her_id <= MAX_HER_ID:
        raise RegisterRefused("a HER-id is a positive 32-bit number")
