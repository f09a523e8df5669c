"""Transport faults that need an operator rather than a retry.

Both are set-up problems (``edi-gateway setup`` not run, or run with other settings), so they sit
under ``UnknownError`` in the project's error tree: retrying cannot fix them, a person can.
"""

from __future__ import annotations

from edi_gateway.errors import UnknownError


class TopologyMismatch(UnknownError):
    """A queue or exchange exists with other arguments than the gateway declares (PRECONDITION_FAILED).

    Attributes:
        name: the queue or exchange that differs.
    """

    def __init__(self, kind: str, name: str, broker_reason: str) -> None:
        self.name = name
        super().__init__(
            f"{kind} {name!r} already exists with other arguments than edi_gateway declares "
            f"({broker_reason}); delete it or align the settings, then run setup again"
        )


class QueueNotFound(UnknownError):
    """A queue the gateway needs does not exist on the broker.

    Attributes:
        queue: the missing queue.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"queue {queue!r} does not exist on the broker (run edi-gateway setup)")
