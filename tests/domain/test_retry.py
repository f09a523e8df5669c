"""The retry policy is a pure function: exponential, capped, jittered, and finite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.retry import RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [(1, 1.0, 0.2), (2, 1.0, 0.4), (3, 0.0, 0.4), (4, 1.0, 1.6), (5, 1.0, None)],
)
def test_delay_table(attempt: int, jitter: float, expected: float | None) -> None:
    """Delays double per attempt, jitter scales them between half and full, and attempts run out."""
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.2, max_delay_s=10)
    delay = policy.delay(attempt, jitter)
    assert delay == (None if expected is None else pytest.approx(expected))


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_delay_is_capped(attempt: int, jitter: float) -> None:
    """No delay ever exceeds the cap, and every delay is positive."""
    policy = RetryPolicy(max_attempts=1000, base_delay_s=0.5, max_delay_s=7)
    delay = policy.delay(attempt, jitter)
    assert delay is not None and 0 < delay <= 7


def test_attempt_counts_from_one() -> None:
    """Asking before any attempt is a programming error."""
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay(0, 0.5)
