"""RabbitMQ transport: topology, confirming publisher, batch consumer. The only package that imports pika.

* ``names``      — every queue and exchange name, behind an optional prefix (tests, demos).
* ``connection`` — connection parameters (name, heartbeat, blocked timeout), ``connect``, backoff.
* ``topology``   — ``declare_topology`` / ``delete_topology``: quorum queues, DLQ, events exchange.
* ``outgoing``   — ``Outgoing``, a message to publish, and the properties it always carries.
* ``publisher``  — ``ConfirmingPublisher``: pipelined publisher confirms in a background I/O thread.
* ``confirms``   — the delivery-tag bookkeeping behind it (pure, tested without a broker).
* ``consumer``   — ``BatchConsumer``: batches, dispositions, graceful stop, reconnects; ``drain``.
* ``errors``     — set-up faults found on the broker (``TopologyMismatch``, ``QueueNotFound``).

pika's exceptions stop here: callers see ``BrokerUnavailable`` (retry), ``Unroutable`` or the
set-up faults above (operator), as ``edi_gateway.errors`` describes.
"""
