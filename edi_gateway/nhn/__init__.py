"""Clients for Norsk Helsenett's HTTP services: HelseID tokens and the EDI 2.0 message service.

* ``keys``    — the client's private key (PEM or JWK, from configuration) and its public JWK.
* ``helseid`` — client-credentials tokens with ``private_key_jwt`` and DPoP proofs, cached.
* ``msh``     — the EDI 2.0 message service (MSH API v2): send, poll, fetch, mark read, status, AppRec.

httpx's exceptions stop here: callers see the tree in ``edi_gateway.errors``.
"""
