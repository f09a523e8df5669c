"""The vendored NHN interface descriptions are the published bytes, as schemas/nhn/SOURCES.md lists them."""

from __future__ import annotations

import hashlib
import re

from edi_gateway.resources import resource_dir

NHN = resource_dir("schemas") / "nhn"


def _listed() -> dict[str, str]:
    text = (NHN / "SOURCES.md").read_text(encoding="utf-8")
    return dict(
        re.findall(r"^\| `([^`]+)` \| `[^`]+` \| `[0-9a-f]{40}` \| `([0-9a-f]{64})` \|", text, re.MULTILINE)
    )


def test_every_vendored_description_matches_its_listed_sha256() -> None:
    """Each description file hashes to the sha256 SOURCES.md gives it, and every file is listed."""
    listed = _listed()
    on_disk = {p.name for p in NHN.iterdir() if p.suffix in (".json", ".wsdl")}
    assert (
        set(listed)
        == on_disk
        == {
            "msh-api-v2.json",
            "nhn-adresseregisteret-sok.wsdl",
            "nhn-fastlegeregisteret-read.wsdl",
            "adresseregister-spec.json",
        }
    )
    for name, digest in listed.items():
        assert hashlib.sha256((NHN / name).read_bytes()).hexdigest() == digest, name
