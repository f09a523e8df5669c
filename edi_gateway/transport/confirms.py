"""Bookkeeping of publisher confirms on one channel: which future each delivery tag settles.

Kept apart from the I/O code so the rules can be tested without a broker:

* the n-th publish on a channel in confirm mode has delivery tag n (counting from 1);
* ``basic.ack``/``basic.nack`` with ``multiple`` settles every outstanding tag up to the given one;
* a ``basic.return`` for a mandatory publish arrives *before* that publish's ack and carries no
  delivery tag, so it is matched on message_id, exchange and routing key, oldest first (twins with the
  same three route alike, so the oldest is always a right choice), and turns the later ack into
  ``Unroutable``.

Only the publisher's I/O thread uses a tracker; it is not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import pika.exceptions

from edi_gateway.errors import BrokerUnavailable, Unroutable

NOT_FOUND = 404


@dataclass
class InFlight:
    """A publish written to the channel and not yet confirmed.

    Attributes:
        message_id: the ``message_id`` property of the publish.
        exchange: the exchange it went to.
        routing_key: its routing key.
        future: settled by the confirm.
        returned: the broker's reply code and text when a ``basic.return`` came for it.
    """

    message_id: str | None
    exchange: str
    routing_key: str
    future: Future[None]
    returned: str | None = None


class ConfirmTracker:
    """Delivery tags of one confirming channel and the futures they settle."""

    def __init__(self) -> None:
        """Start empty, as a channel fresh from ``confirm.select``."""
        self._unconfirmed: dict[int, InFlight] = {}
        self._last_tag = 0

    def __len__(self) -> int:
        """Return how many publishes wait for their confirm."""
        return len(self._unconfirmed)

    def add(self, item: InFlight) -> int:
        """Record a publish just written to the channel and return its delivery tag."""
        self._last_tag += 1
        self._unconfirmed[self._last_tag] = item
        return self._last_tag

    def on_return(self, message_id: str | None, exchange: str, routing_key: str, reason: str) -> bool:
        """Mark the oldest matching unconfirmed publish as returned.

        Args:
            message_id: ``message_id`` of the returned message.
            exchange: exchange of the returned message.
            routing_key: routing key of the returned message.
            reason: the broker's reply code and text, e.g. ``312 NO_ROUTE``.

        Returns:
            False when no outstanding publish matches (the return is ignored).
        """
        for item in self._unconfirmed.values():
            if (
                item.returned is None
                and item.message_id == message_id
                and item.exchange == exchange
                and item.routing_key == routing_key
            ):
                item.returned = reason
                return True
        return False

    def on_confirm(self, delivery_tag: int, *, multiple: bool, nacked: bool) -> int:
        """Settle the futures a ``basic.ack`` or ``basic.nack`` covers.

        Args:
            delivery_tag: the tag in the confirm.
            multiple: the confirm covers every outstanding tag up to ``delivery_tag``.
            nacked: the broker refused the message(s).

        Returns:
            How many publishes were settled.
        """
        if not multiple:
            item = self._unconfirmed.pop(delivery_tag, None)
            if item is None:
                return 0
            settle(item.future, _confirm_outcome(item, nacked=nacked))
            return 1
        settled = 0
        # The dict keeps publish order, so the covered tags are at its front.
        while self._unconfirmed:
            first = next(iter(self._unconfirmed))
            if first > delivery_tag:
                break
            item = self._unconfirmed.pop(first)
            settle(item.future, _confirm_outcome(item, nacked=nacked))
            settled += 1
        return settled

    def fail_all(self, error_for: Callable[[InFlight], BaseException]) -> None:
        """Fail every outstanding publish (channel or connection gone) and start counting afresh.

        Args:
            error_for: the exception for one publish.
        """
        items = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        self._last_tag = 0
        for item in items:
            settle(item.future, error_for(item))


def channel_loss_error(reason: Exception) -> Callable[[InFlight], BaseException]:
    """Say why each publish in flight on a closed channel failed.

    Publishing to a missing exchange makes the broker close the channel with 404 naming the
    exchange: that is a set-up fault (``Unroutable``) for the publishes to it, and a plain loss
    (``BrokerUnavailable``, retry) for the others caught in the same channel.

    Args:
        reason: the exception pika gave for the channel's closing.

    Returns:
        A function from an unconfirmed publish to the exception that fails it.
    """
    lost = BrokerUnavailable(f"the channel closed before the broker confirmed ({reason})")
    if not (isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == NOT_FOUND):
        return lambda _item: lost
    missing = reason.reply_text

    def error_for(item: InFlight) -> BaseException:
        if f"exchange '{item.exchange}'" in missing:
            return Unroutable(f"exchange {item.exchange!r} does not exist; run edi-gateway setup")
        return lost

    return error_for


def _confirm_outcome(item: InFlight, *, nacked: bool) -> BaseException | None:
    if nacked:
        return BrokerUnavailable("the broker refused the message (basic.nack)")
    if item.returned is not None:
        return Unroutable(
            f"no queue took the message for routing key {item.routing_key!r} on exchange "
            f"{item.exchange!r} ({item.returned}); run edi-gateway setup"
        )
    return None


def settle(future: Future[None], error: BaseException | None) -> None:
    """Resolve ``future`` once; a second outcome for the same publish is ignored.

    Args:
        future: the publish's future.
        error: None for success, else the exception to set.
    """
    if future.done():
        return
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:
        # Settled by another path in the meantime; the first outcome stands.
        pass
