"""Clients for Norsk Helsenett's HTTP services: HelseID tokens and the EDI 2.0 message service.

* ``keys``        — the client's private key (PEM or JWK, from configuration) and its public JWK.
* ``helseid``     — client-credentials tokens with ``private_key_jwt`` and DPoP proofs, cached.
* ``msh``         — the EDI 2.0 message service (MSH API v2): send, poll, fetch, mark read, status, AppRec.
* ``msh_answers`` — the message service's results, and the strict reading of its JSON answers.
* ``msh_errors``  — the message service's HTTP failures as ``edi_gateway.errors`` (unknown receiver,
  ``Retry-After``, the size limit on answers).
* ``metrics``     — API latency, faults by kind and token refreshes, for Prometheus.

Adresseregisteret and Fastlegeregisteret are ``edi_gateway.registers`` (``nhn_ar``, ``nhn_flr``), which
use the HelseID client from here.

httpx's exceptions stop here: callers see the tree in ``edi_gateway.errors``.
"""
