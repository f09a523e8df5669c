"""Faults the store reports in the project's error tree (connection faults are ``StoreUnavailable``)."""

from __future__ import annotations

from collections.abc import Iterable

from edi_gateway.errors import PermanentError, TransientError, UnknownError


class DuplicateRequest(PermanentError):
    """A batch named a request_id the store already holds; nothing of the batch was written.

    Attributes:
        request_ids: the request ids that already exist (or occur twice in the batch), sorted.
    """

    def __init__(self, request_ids: Iterable[str]) -> None:
        self.request_ids: tuple[str, ...] = tuple(sorted(set(request_ids)))
        super().__init__(f"request id(s) already stored: {', '.join(self.request_ids)}")


class MessageNotFound(PermanentError):
    """No stored message has this msg_id."""

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id
        super().__init__(f"no stored message with msg_id {msg_id}")


class StoreDefect(UnknownError):
    """The database refused a statement for another reason than being unreachable (a constraint other
    than the request_id one, a value too long ...): a defect in the gateway, for an operator."""


class DuplicateAppRec(TransientError):
    """An AppRec of the batch is stored already, most likely by a worker racing on another copy of it.

    Nothing of the batch was written. Retry it: look the AppRecs up again and decide again, and the
    stored copy makes this one a duplicate or a conflict.

    Attributes:
        apprec_ids: the AppRec ids found stored, sorted.
    """

    def __init__(self, apprec_ids: Iterable[str]) -> None:
        self.apprec_ids: tuple[str, ...] = tuple(sorted(set(apprec_ids)))
        super().__init__(f"AppRec id(s) already stored: {', '.join(self.apprec_ids)}")
