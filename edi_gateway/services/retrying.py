"""Apply the pure retry policy to an operation that may fail transiently (store, register down)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from edi_gateway.domain.retry import RetryPolicy
from edi_gateway.errors import TransientError
from edi_gateway.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


def with_retry(
    operation: Callable[[], T], policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run ``operation``; on a transient fault wait as the policy says and try again.

    Permanent and unknown faults pass straight through: trying again cannot help them.

    Raises:
        TransientError: the last transient fault, once the policy has no attempt left.
    """
    attempt = 0
    while True:
        try:
            return operation()
        except TransientError as exc:
            attempt += 1
            delay = policy.delay(attempt, random.random())  # noqa: S311 - jitter, not cryptography
            if delay is None:
                raise
            log.warning(
                "transient fault, retrying",
                error=type(exc).__name__,
                attempt=attempt,
                delay_s=round(delay, 3),
            )
            sleep(delay)
