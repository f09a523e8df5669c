"""Receiver resolution: the tjenestekontor (or the recorded fallback), the fastlege on request, clear rejections."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.routing import RoutingRules
from edi_gateway.errors import RequestRejected
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import load_routing_rules
from edi_gateway.services.receivers import Resolution, resolve_receivers

REGISTERS = load_fixture_registers(resource_dir("fixtures") / "registers")
RULES = RoutingRules.from_documents(
    yaml.safe_load((resource_dir("routing_rules") / "default.yaml").read_text(encoding="utf-8")),
    yaml.safe_load((resource_dir("routing_rules") / "kommuner.yaml").read_text(encoding="utf-8")),
)


def _resolve(
    person_id: str,
    *,
    kommunenummer: str | None = None,
    fastlege: bool = False,
    rules: RoutingRules = RULES,
) -> Resolution:
    return resolve_receivers(
        person_id=person_id,
        kommunenummer=kommunenummer,
        send_to_fastlege=fastlege,
        registers=REGISTERS,
        rules=rules,
    )


def test_kommune_from_population_register_gets_the_tjenestekontor() -> None:
    """Knut Hansen lives in Skien; its tjenestekontor (KD0501) is chosen, although Skien has a KX06 too."""
    resolution = _resolve("23915700969")
    assert resolution.kommunenummer == "4003"
    (kommune,) = resolution.receivers
    assert (kommune.kind, kommune.organisation.her_id, kommune.service.her_id, kommune.service.code) == (
        ReceiverKind.KOMMUNE,
        8100010,
        8100012,
        "KD0501",
    )
    assert kommune.queue == "8100010_async"
    assert kommune.addressed_her_id == 8100012
    assert kommune.choice is not None and kommune.choice.service == kommune.service
    assert not kommune.choice.fallback
    assert (
        kommune.choice.reason
        == "tjenestekontor (KD0501) registered: the first preference of the routing rules"
    )


@pytest.mark.parametrize("kommunenummer", ["4001", "4003", "4005", "4010", "4018", "4026", "4034"])
def test_every_kommune_with_a_tjenestekontor_gets_it(kommunenummer: str) -> None:
    """Whatever other services a kommune has, a registered tjenestekontor is the receiver (Tinn included)."""
    (kommune,) = _resolve("23915700969", kommunenummer=kommunenummer).receivers
    assert kommune.service is not None and kommune.service.code == "KD0501"
    assert kommune.choice is not None and (kommune.choice.fallback, kommune.choice.rule) == (False, "default")


def test_kommune_without_tjenestekontor_falls_back_to_kreftkoordinator() -> None:
    """Liv Nordmann lives in Bamble, registered without a tjenestekontor: KX06 gets it, and the reason says so."""
    (kommune,) = _resolve("08818028386").receivers
    assert (kommune.organisation.name, kommune.service.code, kommune.service.her_id) == (
        "Bamble kommune",
        "KX06",
        8100025,
    )
    assert kommune.choice is not None and kommune.choice.fallback
    assert kommune.choice.reason.startswith(
        "no tjenestekontor (KD0501) registered; falls back to kreftkoordinator"
    )


def test_fallback_to_sykepleietjeneste_when_nothing_better() -> None:
    """Fyresdal has neither KD0501 nor KX06, so the hjemmesykepleie (KP02) gets it, and the reason names both."""
    (kommune,) = _resolve("43858828997").receivers
    assert kommune.service.code == "KP02" and kommune.organisation.her_id == 8100070
    assert kommune.choice is not None
    assert kommune.choice.reason.startswith(
        "no tjenestekontor (KD0501) or kreftkoordinator (KX06) registered; falls back to hjemmesykepleie (KP02)"
    )


@pytest.fixture
def override_rules(tmp_path: Path) -> RoutingRules:
    """The shipped default.yaml with a kommuner.yaml that gives Skien (4003) its own preference."""
    shutil.copy(resource_dir("routing_rules") / "default.yaml", tmp_path / "default.yaml")
    (tmp_path / "kommuner.yaml").write_text(
        '"4003":\n  service_preference: [KP02, KD0501]\n', encoding="utf-8"
    )
    return load_routing_rules(tmp_path)


def test_per_kommune_override(override_rules: RoutingRules) -> None:
    """An override in kommuner.yaml replaces the preference for its kommune only, and the choice names it."""
    (skien,) = _resolve("23915700969", rules=override_rules).receivers
    assert skien.service is not None and skien.service.code == "KP02"
    assert skien.choice is not None and skien.choice.rule == "kommune 4003"
    assert skien.choice.reason.endswith("the first preference of the routing rule for kommune 4003")
    (porsgrunn,) = _resolve("18897219545", rules=override_rules).receivers
    assert porsgrunn.service is not None and porsgrunn.service.code == "KD0501"


def test_shipped_rules_have_no_override() -> None:
    """The shipped kommuner.yaml has no entries: every kommune follows the default rule."""
    assert RULES.kommuner == {}


def test_fastlege_is_not_routed_by_service_choice() -> None:
    """The fastlege receiver is addressed by person, with no service choice recorded."""
    _kommune, gp = _resolve("23915700969", fastlege=True).receivers
    assert (gp.service, gp.choice) == (None, None)


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
