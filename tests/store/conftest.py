"""The store tests' helpers: a hand-driven clock and record builders.

The ``clock``, ``build`` and ``store`` fixtures built on them live in ``tests/conftest.py``: the
service tests use them too.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from edi_gateway.domain.acks import AckOutcome
from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.states import RequestState
from edi_gateway.errors import Problem
from edi_gateway.store import (
    NewAppRec,
    NewMessage,
    NewParked,
    NewRequest,
    ParkedKind,
    RequestOutcome,
    SignatureCheck,
)

T0 = datetime(2024, 11, 4, 8, 30, tzinfo=UTC)
KOMMUNE_ORG, KOMMUNE_SERVICE = 8200001, 8200011
LEGEKONTOR, FASTLEGE = 8300001, 8300011


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move time forward and return the new now."""
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Builder:
    """Synthetic requests and messages (no personal data in the bodies beyond a marker)."""

    clock: FakeClock
    made: list[str] = field(default_factory=list)

    def request(
        self,
        state: RequestState = RequestState.ROUTED,
        *,
        request_id: str | None = "new",
        problems: tuple[Problem, ...] = (),
        reason: str = "routed",
    ) -> NewRequest:
        """A new request; ``request_id="new"`` mints a fresh UUID."""
        return NewRequest(
            ref=str(uuid.uuid4()),
            request_id=str(uuid.uuid4()) if request_id == "new" else request_id,
            state=state,
            received_at=self.clock.now,
            content_type="application/json",
            body=b'{"request": "synthetic body"}',
            samhandlingspunkt=1,
            consent=True,
            send_to_fastlege=True,
            kommunenummer="4001",
            sender_unit_her_id=8100002,
            problems=problems,
            amqp_message_id=str(uuid.uuid4()),
            amqp_correlation_id=None,
            reason=reason,
        )

    def message(
        self,
        *,
        kind: str = "kommune",
        org: int = KOMMUNE_ORG,
        her_id: int = KOMMUNE_SERVICE,
        conversation_ref: str | None = None,
        size: int = 600,
    ) -> NewMessage:
        """A new signed message (the XML is filler of ``size`` bytes)."""
        return NewMessage(
            msg_id=str(uuid.uuid4()),
            receiver_kind=kind,
            receiver_org_her_id=org,
            receiver_her_id=her_id,
            receiver_name="Porsgrunn kommune / Kreftkoordinator",
            queue=f"{org}_async",
            kommunenummer="4001",
            signed_xml=b"<MsgHead>" + b"x" * size + b"</MsgHead>",
            msg_type="DIALOG_HELSEFAGLIG",
            conversation_ref=conversation_ref,
            deadline_at=self.clock.now + timedelta(hours=96),
        )

    def routed(self, receivers: int = 1) -> RequestOutcome:
        """A routed request with a kommune message and, for 2, a fastlege message."""
        messages = [self.message()]
        if receivers == 2:
            messages.append(self.message(kind="fastlege", org=LEGEKONTOR, her_id=FASTLEGE))
        return RequestOutcome(self.request(), tuple(messages))

    def apprec(
        self,
        msg_id: str,
        *,
        apprec_id: str | None = None,
        status: AppRecStatus = AppRecStatus.OK,
        errors: tuple[Problem, ...] = (),
        outcome: AckOutcome = AckOutcome.TRANSITION,
        sender_her_id: int | None = KOMMUNE_ORG,
    ) -> NewAppRec:
        """A correlated AppRec answering ``msg_id``; a fresh AppRec id unless one is given."""
        apprec_id = apprec_id or str(uuid.uuid4())
        return NewAppRec(
            apprec_id=apprec_id,
            msg_id=msg_id,
            version="1.1",
            status=status,
            errors=errors,
            fingerprint=hashlib.sha256(f"{apprec_id}/{int(status)}".encode()).hexdigest(),
            sender_her_id=sender_her_id,
            outcome=outcome,
            reason=f"AppRec status {int(status)}",
            signature=SignatureCheck.VERIFIED,
            received_at=self.clock.now,
            raw=b"<AppRec>" + apprec_id.encode() + b"</AppRec>",
        )

    def parked(
        self, code: str = "apprec.unknown_message", *, msg_id: str | None = None, apprec_id: str | None = None
    ) -> NewParked:
        """A parked AppRec document with a small JSON detail."""
        return NewParked(
            kind=ParkedKind.APPREC,
            code=code,
            reason="OriginalMsgId is not a message we sent",
            received_at=self.clock.now,
            raw=b"<AppRec>parked</AppRec>",
            amqp_message_id=str(uuid.uuid4()),
            apprec_id=apprec_id,
            msg_id=msg_id,
            details={"sender_her_id": KOMMUNE_ORG},
        )
