"""Tests of the development aids in ``edi_gateway.dev`` (the NHN stand-in)."""
