"""Measure XML-DSig signing and verification throughput on a MsgHead-sized document.

Run: ``python bench/bench_signing.py [--seconds 2]``. A throwaway key and certificate are generated in
a temporary folder; the document is a MsgHead + Dialogmelding of about 5 KB built by
``edi_gateway.xml.msghead.build_msghead`` from synthetic data only. Prints signs/s and verifies/s,
and the raw RSA cost for comparison.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from edi_gateway.domain.model import (
    Coded,
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Receiver,
    ReceiverKind,
    Sender,
    Service,
)
from edi_gateway.pki import ensure_test_pki
from edi_gateway.xml.msghead import build_msghead
from edi_gateway.xml.signing import Signer, verify_signed

HER_ID = 8100001
_KODEVERK = "2.16.578.1.12.4.1.1."


def build_document() -> etree._Element:
    """Return a MsgHead + Dialogmelding built by the project's builder, about 5 KB, synthetic data only."""
    assessment = "\n".join(
        f"Problemområde {i}: praktisk/fysisk - oppfølging avtalt med kommunen." for i in range(40)
    )
    notat = Notat(
        tema_kodet=Coded("6", "Henvendelse om pasient", _KODEVERK + "7322"),
        tema="Pakkeforløp hjem for pasienter med kreft - samhandlingspunkt 1",
        text=assessment,
        contact=Contact("Nina Kreftsykepleier", "Forløpskoordinator kreft", "+4735000000"),
        contact_role=Coded("17", "Forløpskoordinator kreft", _KODEVERK + "9034"),
    )
    message = OutboundMessage(
        msg_id="6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e",
        gen_date=datetime(2026, 1, 15, 10, 30),
        msg_type=Coded("DIALOG_HELSEFAGLIG", "Helsefaglig dialog", _KODEVERK + "8279"),
        sender=Sender(Organisation(HER_ID, "Sykehus Test HF"), Organisation(8100002, "Kreftavdelingen")),
        receiver=Receiver(
            ReceiverKind.KOMMUNE,
            Organisation(8200001, "Testkommune"),
            "8200001_async",
            service=Service(8200002, "Kreftkoordinator", "KX06"),
        ),
        patient=Patient("01818012345", "FNR", "Test", "Testesen"),
        notat=notat,
    )
    return build_msghead(message)


def _rate(action: Callable[[], object], seconds: float) -> float:
    action()  # warm caches (schemas, parsers) outside the measurement
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        action()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    """Generate a key, sign and verify for a while, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        pki = ensure_test_pki(Path(folder), [(HER_ID, "Sykehus Test HF")])
        signer = Signer.from_files(pki.key_path(HER_ID), pki.cert_path(HER_ID))
        cert_pem = pki.cert_pem(HER_ID)
        key = serialization.load_pem_private_key(pki.key_path(HER_ID).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    document = build_document()
    signed = signer.sign(document)
    unsigned_size = len(etree.tostring(document))
    print(f"document: {unsigned_size} bytes unsigned, {len(signed)} bytes signed")

    signs = _rate(lambda: signer.sign(document), args.seconds)
    verifies = _rate(lambda: verify_signed(signed, cert_pem=cert_pem), args.seconds)
    raw = _rate(lambda: key.sign(signed[:200], padding.PKCS1v15(), hashes.SHA256()), args.seconds)
    print(f"sign:    {signs:8.0f} /s  ({1000 / signs:.2f} ms each)")
    print(f"verify:  {verifies:8.0f} /s  ({1000 / verifies:.2f} ms each)")
    print(f"raw RSA-2048 sign: {raw:8.0f} /s  ({1000 / raw:.2f} ms each)")


if __name__ == "__main__":
    main()
