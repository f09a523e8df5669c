"""The error tree of edi_gateway.

Every library error (pika, SQLAlchemy, lxml, signxml, pydantic) is mapped into this tree at the
boundary of the layer that raised it, so that callers decide on one question only: whose fault is it,
and will trying again help?

    EdiGatewayError
    ├── PermanentError          the input is wrong: answer with a clear error, never retry
    │   ├── RequestRejected     an EPR request failed validation or routing (carries Problem codes)
    │   ├── XmlRejected         a document is not well-formed, not schema-valid, or hostile
    │   └── SignatureInvalid    a signature is missing, broken, or breaks the signing profile
    ├── TransientError          a dependency is down or busy: retry with backoff
    │   ├── BrokerUnavailable   RabbitMQ connection or channel lost, publish not confirmed
    │   ├── StoreUnavailable    the database cannot be reached or timed out
    │   └── RegisterUnavailable a register did not answer
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


class UnknownError(EdiGatewayError):
    """A fault nobody classified; park the work and alert an operator."""


class Unroutable(UnknownError):
    """The broker returned a mandatory publish: no queue is bound for it (run ``edi-gateway setup``)."""
