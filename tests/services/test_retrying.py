"""The retry helper applies the pure policy: transient faults wait and retry, others pass through."""

from __future__ import annotations

import pytest

from edi_gateway.domain.retry import RetryPolicy
from edi_gateway.errors import RegisterUnavailable, RequestRejected, StoreUnavailable
from edi_gateway.services.retrying import with_retry


def test_transient_faults_are_retried_until_success() -> None:
    """Two store outages then success: the operation's result comes back after two waits."""
    calls, waits = [], []

    def operation() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable("down")
        return "ok"

    assert with_retry(operation, RetryPolicy(max_attempts=5, base_delay_s=0.1), sleep=waits.append) == "ok"
    assert len(calls) == 3 and len(waits) == 2 and waits[0] <= waits[1] * 2


def test_gives_up_after_the_policy_runs_out() -> None:
    """When every attempt fails the last transient fault is raised, after max_attempts tries."""
    calls = []

    def operation() -> None:
        calls.append(1)
        raise RegisterUnavailable("register down")

    with pytest.raises(RegisterUnavailable):
        with_retry(operation, RetryPolicy(max_attempts=3), sleep=lambda _: None)
    assert len(calls) == 3


def test_permanent_faults_are_not_retried() -> None:
    """A permanent fault (the sender's) is raised at once: trying again cannot help."""
    calls = []

    def operation() -> None:
        calls.append(1)
        raise RequestRejected([])

    with pytest.raises(RequestRejected):
        with_retry(operation, RetryPolicy(), sleep=lambda _: pytest.fail("must not wait"))
    assert len(calls) == 1
