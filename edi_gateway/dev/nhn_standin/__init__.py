"""A local stand-in for NHN: the EDI 2.0 message service, a HelseID-like token endpoint, AR and FLR.

Built from the published interface descriptions (``schemas/nhn/``) for tests and the demo; every
request it receives is checked against the OpenAPI document, so a request the real API would refuse
fails here too. Not for production: it keeps everything in memory.
"""
