"""Queue and exchange names of the gateway, all behind one optional prefix.

The prefix lets several tests, demos or environments share one broker without seeing each other's
messages: every name the gateway declares, publishes to or consumes from goes through ``Names``.
Receiver queues follow NHN's naming, ``<herId>_async``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    """The broker names in force for one prefix.

    Attributes:
        prefix: put in front of every queue and exchange name; empty in production.
    """

    prefix: str = ""

    @property
    def requests(self) -> str:
        """The quorum queue EPRs write requests to."""
        return f"{self.prefix}edi.requests"

    @property
    def requests_dlq(self) -> str:
        """Where ``edi.requests`` dead-letters rejected and poison requests."""
        return f"{self.prefix}edi.requests.dlq"

    @property
    def events_exchange(self) -> str:
        """The topic exchange for status events (routing key ``status.<state>``)."""
        return f"{self.prefix}edi.events"

    @property
    def inbound_exchange(self) -> str:
        """The topic exchange that hands received documents to local systems (``inbound.<type>``)."""
        return f"{self.prefix}edi.inbound"

    def receiver_queue(self, her_id: int) -> str:
        """Return the queue of the receiver with this HER-id (NHN naming, ``<herId>_async``)."""
        return f"{self.prefix}{her_id}_async"

    def inbox(self, our_her_id: int) -> str:
        """Return the gateway's own inbox, where AppRecs arrive (same pattern as a receiver queue)."""
        return self.receiver_queue(our_her_id)

    def prefixed(self, queue_name: str) -> str:
        """Return a queue name the register gives, with the prefix in front."""
        return f"{self.prefix}{queue_name}"
