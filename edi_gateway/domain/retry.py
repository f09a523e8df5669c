"""Retry policy for transient faults: a pure function, applied by the services.

Exponential backoff with full jitter, capped; the caller passes the random number so tests are exact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before trying a transient operation again.

    Attributes:
        max_attempts: total attempts including the first; the operation is given up after this many.
        base_delay_s: the delay before the second attempt, before jitter.
        max_delay_s: the largest delay between two attempts.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delay(self, attempt: int, jitter: float) -> float | None:
        """Return the wait before attempt ``attempt + 1``, or None when no attempt is left.

        Args:
            attempt: how many attempts have been made so far (1 after the first failure).
            jitter: a number in [0, 1); full jitter multiplies the capped exponential delay by it,
                but never waits less than half of it, so a crowd of workers spreads without spinning.
        """
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        if attempt >= self.max_attempts:
            return None
        capped: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return capped * (0.5 + jitter / 2)
