"""Connecting to RabbitMQ: the parameters every gateway connection uses, and the error mapping.

Every connection names itself (``connection_name`` shows in the management UI and ``rabbitmqctl``),
sends heartbeats so a dead peer is noticed within a minute, and gives up when the broker blocks it
for too long (a resource alarm) instead of hanging. pika's errors stop here: callers see
``BrokerUnavailable`` with a message that names host, port and vhost but never the credentials.
"""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qs, quote, urlsplit

import pika
import pika.exceptions

from edi_gateway.errors import BrokerUnavailable

HEARTBEAT_S = 30
"""Heartbeat interval offered to the broker; a silent peer is declared dead after two of them."""

BLOCKED_CONNECTION_TIMEOUT_S = 30.0
"""How long a connection may stay blocked by a resource alarm before pika closes it."""

CONNECTION_ATTEMPTS = 3
"""Attempts a blocking ``connect`` makes before it gives up (the retry delay is ``RETRY_DELAY_S``)."""

RETRY_DELAY_S = 1.0
SOCKET_TIMEOUT_S = 5.0
STACK_TIMEOUT_S = 10.0
"""Longest time one attempt may take from TCP connect to an open AMQP connection."""

PIKA_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)
"""Everything pika raises when the broker, the network or a channel fails."""


def connection_parameters(
    url: str, *, name: str, connection_attempts: int = CONNECTION_ATTEMPTS
) -> pika.URLParameters:
    """Build the connection parameters for ``url``.

    Settings given in the URL's query string (``?heartbeat=60``) win over the gateway's defaults.

    Args:
        url: AMQP URL, ``amqp://user:password@host:port/vhost``.
        name: connection name shown by the broker, e.g. ``edi_gateway.worker``.
        connection_attempts: TCP/AMQP attempts before giving up; the async publisher uses 1 and
            does its own backoff.

    Returns:
        The parameters, ready for ``BlockingConnection`` or ``SelectConnection``.

    Raises:
        ValueError: the URL cannot be parsed.
    """
    params = pika.URLParameters(url)
    given = parse_qs(urlsplit(url).query)
    if "heartbeat" not in given:
        params.heartbeat = HEARTBEAT_S
    if "blocked_connection_timeout" not in given:
        params.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT_S
    if "connection_attempts" not in given:
        params.connection_attempts = connection_attempts
    if "retry_delay" not in given:
        params.retry_delay = RETRY_DELAY_S
    if "socket_timeout" not in given:
        params.socket_timeout = SOCKET_TIMEOUT_S
    if "stack_timeout" not in given:
        params.stack_timeout = STACK_TIMEOUT_S
    params.client_properties = {"connection_name": name}
    return params


def broker_location(url: str) -> str:
    """Return ``host:port/vhost`` for ``url``: safe for logs and error messages (no credentials)."""
    try:
        params = pika.URLParameters(url)
    except ValueError:
        return "<unparsable AMQP URL>"
    return f"{params.host}:{params.port}/{quote(params.virtual_host, safe='')}"


def connect(url: str, *, name: str) -> pika.BlockingConnection:
    """Open a blocking connection to the broker.

    Args:
        url: AMQP URL.
        name: connection name shown by the broker.

    Returns:
        An open connection; the caller closes it.

    Raises:
        BrokerUnavailable: the broker could not be reached or refused the login.
    """
    params = connection_parameters(url, name=name)
    try:
        return pika.BlockingConnection(params)
    except PIKA_ERRORS as exc:
        raise BrokerUnavailable(
            f"cannot connect to RabbitMQ at {broker_location(url)} ({type(exc).__name__})"
        ) from exc


def close_quietly(connection: pika.BlockingConnection | None) -> None:
    """Close ``connection`` if it is open, ignoring errors: it is being abandoned anyway."""
    if connection is None or not connection.is_open:
        return
    # A connection that fails while closing is gone all the same; nothing is left to clean up.
    with contextlib.suppress(*PIKA_ERRORS):
        connection.close()


def backoff_delay(attempt: int, *, base: float = 0.2, cap: float = 5.0) -> float:
    """Seconds to wait before reconnect attempt number ``attempt`` (1 = the first retry).

    Doubles from ``base`` and never exceeds ``cap``, so a broker outage costs at most ``cap``
    seconds of extra latency once it is over.

    Args:
        attempt: how many attempts in a row have failed; 0 or less means "do not wait".
        base: the first delay.
        cap: the longest delay.

    Returns:
        The delay in seconds, between 0 and ``cap``.
    """
    if attempt <= 0:
        return 0.0
    # The exponent is clamped so that a very long outage cannot overflow the float.
    return min(cap, base * 2.0 ** min(attempt - 1, 32))
