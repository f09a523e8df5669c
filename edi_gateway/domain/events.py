"""Status events for ``edi.events``: what the EPR shows the nurse about a request and its messages.

One JSON object per transition, published with routing key ``status.<state>``. Events carry ids,
HER-ids, states and error codes only: never a person number, a name or a payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edi_gateway.errors import Problem

EVENT_VERSION = 1


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One status event.

    Attributes:
        state: the request or message state reached (``rejected``, ``routed``, ``sent`` ...).
        request_id: the EPR's request id, when the request had a usable one.
        msg_id: the MsgId when the event is about one message; None for request-level events.
        receiver_her_id: the addressed HER-id of that message.
        errors: problems (codes and plain-language text) explaining the state.
    """

    state: str
    at: datetime
    request_id: str | None
    msg_id: str | None = None
    receiver_her_id: int | None = None
    receiver_kind: str | None = None
    errors: Sequence[Problem] = field(default_factory=tuple)

    @property
    def routing_key(self) -> str:
        """The topic routing key on ``edi.events``."""
        return f"status.{self.state}"

    def as_json(self) -> dict[str, Any]:
        """Return the JSON body published on ``edi.events``."""
        return {
            "version": EVENT_VERSION,
            "type": "message" if self.msg_id else "request",
            "request_id": self.request_id,
            "msg_id": self.msg_id,
            "receiver_her_id": self.receiver_her_id,
            "receiver_kind": self.receiver_kind,
            "state": self.state,
            "at": self.at.isoformat(),
            "errors": [p.as_dict() for p in self.errors],
        }


def alert_json(kind: str, reason: str, at: datetime, **ids: str | int | None) -> dict[str, Any]:
    """An operator alert for ``edi.events`` (routing key ``alert.<kind>``): a kind, a reason and ids only."""
    return {
        "version": EVENT_VERSION,
        "type": "alert",
        "kind": kind,
        "reason": reason,
        "at": at.isoformat(),
        **ids,
    }
