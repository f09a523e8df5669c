"""Tests for edi_gateway.transport.connection: parameters, safe error messages, backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.errors import BrokerUnavailable
from edi_gateway.transport.connection import (
    HEARTBEAT_S,
    backoff_delay,
    broker_location,
    connect,
    connection_parameters,
)

URL = "amqp://edi:s3cret-pw@127.0.0.1:5672/%2F"


def test_parameters_carry_name_heartbeat_and_blocked_timeout() -> None:
    """Every connection names itself and sets heartbeat and blocked-connection timeout."""
    params = connection_parameters(URL, name="edi_gateway.worker")
    assert params.client_properties == {"connection_name": "edi_gateway.worker"}
    assert params.heartbeat == HEARTBEAT_S
    assert params.blocked_connection_timeout is not None and params.blocked_connection_timeout > 0
    assert params.connection_attempts == 3


def test_settings_in_the_url_win_over_defaults() -> None:
    """A heartbeat given in the URL's query string is kept."""
    params = connection_parameters(URL + "?heartbeat=7&connection_attempts=9", name="x")
    assert (params.heartbeat, params.connection_attempts) == (7, 9)


def test_broker_location_never_shows_credentials() -> None:
    """The location used in logs and errors names host, port and vhost only."""
    location = broker_location(URL)
    assert location == "127.0.0.1:5672/%2F"
    assert "s3cret" not in location and "edi" not in location


def test_connect_failure_is_broker_unavailable_without_password() -> None:
    """A refused connection becomes BrokerUnavailable whose message holds no password."""
    url = "amqp://edi:s3cret-pw@127.0.0.1:1/%2F?connection_attempts=1"
    with pytest.raises(BrokerUnavailable) as caught:
        connect(url, name="test")
    assert "127.0.0.1:1" in str(caught.value)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 0.0), (-3, 0.0), (1, 0.2), (2, 0.4), (3, 0.8), (5, 3.2), (6, 5.0), (1000, 5.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    """The reconnect delay doubles from the base and stops at the cap."""
    assert backoff_delay(attempt) == pytest.approx(expected)


@given(attempt=st.integers(min_value=-5, max_value=10_000), cap=st.floats(min_value=0.01, max_value=60))
def test_backoff_is_bounded_and_never_shrinks(attempt: int, cap: float) -> None:
    """However long an outage lasts, the delay stays within [0, cap] and never gets shorter."""
    delay = backoff_delay(attempt, base=0.1, cap=cap)
    assert 0.0 <= delay <= cap
    assert backoff_delay(attempt + 1, base=0.1, cap=cap) >= delay
