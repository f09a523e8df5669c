"""Stand-ins for NHN's Adresseregister (REST) and Fastlegeregister (SOAP), answering from other registers.

For tests and the demo: the data come from registers the caller gives (the fixture registers, as a
rule), shaped the way NHN answers, so ``NhnAddressRegister`` and ``NhnFastlegeRegister`` can be run
against them over real HTTP and must reach the same routing answers as the fixture registers do.

This module gathers them; they live in:

* ``ar``: ``AddressRegisterStandIn``, the CommunicationParty REST API (``AR_DOCUMENT``);
* ``flr``: ``FastlegeRegisterStandIn``, ``GetPatientGPDetails`` over SOAP 1.1 at ``FLR_PATH``;
* ``register_faults``: ``Faults`` (with ``Fault`` and ``FaultKind``), the faults both play on request,
  and the recorder behind their ``calls``.
"""

from __future__ import annotations

from edi_gateway.dev.nhn_standin.ar import AR_DOCUMENT, AddressRegisterStandIn
from edi_gateway.dev.nhn_standin.flr import FLR_PATH, FastlegeRegisterStandIn
from edi_gateway.dev.nhn_standin.register_faults import Fault, FaultKind, Faults

__all__ = [
    "AR_DOCUMENT",
    "FLR_PATH",
    "AddressRegisterStandIn",
    "FastlegeRegisterStandIn",
    "Fault",
    "FaultKind",
    "Faults",
]
