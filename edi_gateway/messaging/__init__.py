"""The transport adapter: business documents to receivers and from our inbox, over AMQP or NHN.

* ``base``       — the interface (``EdiTransport``, ``Inbox``), envelopes and send results.
* ``amqp``       — receivers' ``<herId>_async`` queues on our RabbitMQ.
* ``nhn``        — NHN's EDI 2.0 message service (send, inbox poller, AppRec operation, status poll).
* ``delivering`` — envelopes from stored messages, and the state change a send result asks for.
* ``factory``    — the transport and inbox the settings choose.
"""
