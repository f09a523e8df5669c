"""Receiver resolution: the kommune service by preference, the fastlege on request, clear rejections."""

from __future__ import annotations

import pytest
import yaml

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.routing import RoutingRules
from edi_gateway.errors import RequestRejected
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.receivers import resolve_receivers

REGISTERS = load_fixture_registers(resource_dir("fixtures") / "registers")
RULES = RoutingRules.from_documents(
    yaml.safe_load((resource_dir("routing_rules") / "default.yaml").read_text(encoding="utf-8")),
    yaml.safe_load((resource_dir("routing_rules") / "kommuner.yaml").read_text(encoding="utf-8")),
)


def _resolve(person_id: str, *, kommunenummer: str | None = None, fastlege: bool = False):  # type: ignore[no-untyped-def]
    return resolve_receivers(
        person_id=person_id,
        kommunenummer=kommunenummer,
        send_to_fastlege=fastlege,
        registers=REGISTERS,
        rules=RULES,
    )


def test_kommune_from_population_register_with_preferred_service() -> None:
    """Knut Hansen lives in Skien; the kreftkoordinator (KX06) is chosen and reached on Skien's queue."""
    resolution = _resolve("23915700969")
    assert resolution.kommunenummer == "4003"
    (kommune,) = resolution.receivers
    assert (kommune.kind, kommune.organisation.her_id, kommune.service.her_id) == (
        ReceiverKind.KOMMUNE,
        8100010,
        8100011,
    )
    assert kommune.queue == "8100010_async"
    assert kommune.addressed_her_id == 8100011


def test_fallback_to_sykepleietjeneste_when_nothing_better() -> None:
    """Fyresdal has neither KX06 nor KD0501, so the hjemmesykepleie (KP02) gets it."""
    (kommune,) = _resolve("43858828997").receivers
    assert kommune.service.code == "KP02" and kommune.organisation.her_id == 8100070


def test_per_kommune_override() -> None:
    """Tinn's override prefers KP02 although it has a tjenestekontor."""
    (kommune,) = _resolve("23915700969", kommunenummer="4026").receivers
    assert kommune.service.code == "KP02"


def test_fastlege_added_when_asked() -> None:
    """With send_to_fastlege, the GP is addressed at the legekontor's queue."""
    resolution = _resolve("23915700969", fastlege=True)
    _kommune, gp = resolution.receivers
    assert gp.kind == ReceiverKind.FASTLEGE
    assert gp.practitioner.her_id == 8100089 and gp.organisation.her_id == 8100087
    assert gp.addressed_her_id == 8100089 and gp.queue == "8100087_async"
    assert resolution.problems == ()


def test_missing_fastlege_is_a_receiver_problem_and_kommune_still_goes() -> None:
    """Liv Nordmann has no fastlege: one clear problem, and the kommune message remains."""
    resolution = _resolve("08818028386", fastlege=True)
    assert [r.kind for r in resolution.receivers] == [ReceiverKind.KOMMUNE]
    assert [p.code for p in resolution.problems] == ["routing.fastlege_missing"]


@pytest.mark.parametrize(
    ("person_id", "kommunenummer", "code"),
    [
        ("17918331999", None, "routing.kommune_unknown"),  # lives outside Telemark
        ("28854505892", None, "routing.kommune_unknown"),  # Oslo
        ("00000000000", None, "routing.bosted_unknown"),  # not in the population register
        ("23915700969", "9999", "routing.kommune_unknown"),
    ],
)
def test_unroutable_kommune_rejects(person_id: str, kommunenummer: str | None, code: str) -> None:
    """A kommune the registers cannot route to rejects the request with a clear code."""
    with pytest.raises(RequestRejected) as info:
        _resolve(person_id, kommunenummer=kommunenummer)
    assert info.value.codes == [code]


def test_no_suitable_service_rejects() -> None:
    """A kommune whose services match none of the preferred codes rejects with routing.no_service."""
    strict = RULES.model_copy(
        update={"kommuner": {"4032": RULES.routing.model_copy(update={"service_preference": ("KX06",)})}}
    )
    with pytest.raises(RequestRejected) as info:
        resolve_receivers(
            person_id="43858828997",
            kommunenummer=None,
            send_to_fastlege=False,
            registers=REGISTERS,
            rules=strict,
        )
    assert info.value.codes == ["routing.no_service"]
    assert "Fyresdal" in info.value.problems[0].reason
