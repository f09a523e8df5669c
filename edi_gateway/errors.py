"""The error tree of edi_gateway.

Every library error (pika, SQLAlchemy, lxml, cryptography, pydantic) is mapped into this tree at the
boundary of the layer that raised it, so that callers decide on one question only: whose fault is it,
and will trying again help?

    EdiGatewayError
    ├── PermanentError          the input is wrong: answer with a clear error, never retry
    │   ├── RequestRejected     an EPR request failed validation or routing (carries Problem codes)
    │   ├── XmlRejected         a document is not well-formed, not schema-valid, or hostile
    │   ├── SignatureInvalid    a signature is missing, broken, or breaks the signing profile
    │   ├── TransportRefused    NHN's message service refused a document for good (4xx validation,
    │   │                       unknown receiver): carries its error body for operators
    │   └── RegisterRefused     a register answered that the question itself is wrong
    ├── TransientError          a dependency is down or busy: retry with backoff
    │   ├── BrokerUnavailable   RabbitMQ connection or channel lost, publish not confirmed
    │   ├── StoreUnavailable    the database cannot be reached or timed out
    │   ├── RegisterUnavailable a register did not answer
    │   ├── TransportUnavailable NHN's message service timed out, was busy (429), failed (5xx),
    │   │                       refused our token, or answered with something unreadable
    │   └── TokenUnavailable    HelseID gave no access token (down, busy, or refused our client)
    ├── UnknownError            anything else: park the work for an operator
    │   └── Unroutable          the broker has no queue for a mandatory publish (set-up is missing)
    ├── ConfigurationError      the settings cannot run (settings.py): refuse to start, exit 2
    └── PrivateFileError        a key or secret file under HOME is missing, empty or unreadable
                                (private_files.py): an error, never a usable key

``Problem`` is the machine-readable unit of an error report: a stable code, a plain-language reason
for the people who read it, and optionally the field or receiver it concerns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One machine-readable finding about a request or a message.

    Attributes:
        code: stable dotted code, e.g. ``person_id.checksum`` (listed in docs/request-format.md).
        reason: plain-language explanation for the nurse or operator; never contains a person number.
        field: JSON path of the offending request field, when there is one.
    """

    code: str
    reason: str
    field: str | None = None

    def as_dict(self) -> dict[str, str]:
        """Return the JSON form used in status events and the store."""
        out = {"code": self.code, "reason": self.reason}
        if self.field is not None:
            out["field"] = self.field
        return out


class EdiGatewayError(Exception):
    """Base of every error edi_gateway raises on purpose."""


class PermanentError(EdiGatewayError):
    """The input itself is wrong; retrying cannot help."""


class RequestRejected(PermanentError):
    """A request failed intake validation or routing; ``problems`` says why."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__("; ".join(f"{p.code}: {p.reason}" for p in self.problems))

    @property
    def codes(self) -> list[str]:
        """The problem codes, in order."""
        return [p.code for p in self.problems]


class XmlRejected(PermanentError):
    """A document is not well-formed, not schema-valid, or uses a forbidden XML feature.

    Attributes:
        code: the kodeverk 8221 code an AppRec would carry (``T01`` not well-formed, ``T02`` invalid).
    """

    def __init__(self, message: str, *, code: str = "T01") -> None:
        self.code = code
        super().__init__(message)


class SignatureInvalid(PermanentError):
    """A signature is missing, does not verify, or breaks the signing profile."""


class TransientError(EdiGatewayError):
    """A dependency failed in a way that may pass; retry with backoff."""


class BrokerUnavailable(TransientError):
    """RabbitMQ could not be reached, or a publish was not confirmed."""


class StoreUnavailable(TransientError):
    """The database could not be reached or timed out."""


class RegisterUnavailable(TransientError):
    """A register did not answer."""


class TransportRefused(PermanentError):
    """NHN's message service refused a request for good; retrying the same request cannot help.

    Attributes:
        status: the HTTP status code.
        kind: a short label for metrics and the timeline (``validation``, ``unknown_receiver``,
            ``not_found``, ``too_large``, ``refused``).
        details: the service's error body (``error``, ``errorCode``, ``validationErrors``,
            ``requestId``), as far as it was readable; shown to operators, never logged whole.
    """

    def __init__(
        self, message: str, *, status: int, kind: str, details: dict[str, object] | None = None
    ) -> None:
        self.status = status
        self.kind = kind
        self.details: dict[str, object] = dict(details or {})
        super().__init__(message)


class RegisterRefused(PermanentError):
    """A register answered that the question is wrong (an unknown or invalid identifier, say)."""


class TransportUnavailable(TransientError):
    """NHN's message service could not take or answer a request now.

    Attributes:
        kind: a short label for metrics (``timeout``, ``connect``, ``rate_limited``, ``server_error``,
            ``auth``, ``malformed``, ``too_large``).
        retry_after_s: how long the service asked us to wait (``Retry-After``), when it said.
    """

    def __init__(self, message: str, *, kind: str, retry_after_s: float | None = None) -> None:
        self.kind = kind
        self.retry_after_s = retry_after_s
        super().__init__(message)


class TokenUnavailable(TransientError):
    """HelseID gave no access token: unreachable, busy, or it refused our client (``kind`` says which)."""

    def __init__(self, message: str, *, kind: str) -> None:
        self.kind = kind
        super().__init__(message)


class UnknownError(EdiGatewayError):
    """A fault nobody classified; park the work and alert an operator."""


class Unroutable(UnknownError):
    """The broker returned a mandatory publish: no queue is bound for it (run ``edi-gateway setup``)."""
