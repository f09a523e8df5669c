"""edi_gateway: routes, signs, delivers and tracks Norwegian health EDI messages."""

__version__ = "0.1.0"
