"""Receiver choice follows the configured kodeverk 8663 preference, per kommune when overridden."""

from __future__ import annotations

import pytest
import yaml

from edi_gateway.domain.model import Service
from edi_gateway.domain.routing import RoutingRules, choose_service
from edi_gateway.resources import resource_dir

KX06 = Service(1, "Kreftkoordinator", "KX06")
KD0501 = Service(2, "Tjenestekontoret", "KD0501")
KP02 = Service(3, "Hjemmesykepleien", "KP02")
KA02 = Service(4, "Legevakt", "KA02")
DEFAULT = ("KX06", "KD0501", "KP02")


@pytest.mark.parametrize(
    ("services", "preference", "expected"),
    [
        ((KA02, KP02, KD0501, KX06), DEFAULT, KX06),
        ((KA02, KP02, KD0501), DEFAULT, KD0501),
        ((KA02, KP02), DEFAULT, KP02),
        ((KA02,), DEFAULT, None),
        ((), DEFAULT, None),
        ((KX06, KP02), ("KP02", "KX06"), KP02),
        ((KP02, Service(5, "Hjemmesykepleien 2", "KP02")), ("KP02",), KP02),
    ],
)
def test_choose_service(
    services: tuple[Service, ...], preference: tuple[str, ...], expected: Service | None
) -> None:
    """The most preferred code present wins; the first registered service of a code wins ties."""
    assert choose_service(services, preference) == expected


def _shipped_rules() -> RoutingRules:
    directory = resource_dir("routing_rules")
    return RoutingRules.from_documents(
        yaml.safe_load((directory / "default.yaml").read_text(encoding="utf-8")),
        yaml.safe_load((directory / "kommuner.yaml").read_text(encoding="utf-8")),
    )


def test_shipped_rules_default_preference_and_override() -> None:
    """The shipped rules prefer KX06 → KD0501 → KP02, and Tinn's override replaces that."""
    rules = _shipped_rules()
    assert rules.service_preference("4003") == DEFAULT
    assert rules.service_preference("4026") == ("KP02", "KD0501")


def test_shipped_rules_message_wording() -> None:
    """Type, TemaKodet and Tema wording come from the rules, one Tema per samhandlingspunkt."""
    rules = _shipped_rules()
    assert rules.message.type.v == "DIALOG_HELSEFAGLIG"
    assert (rules.message.tema_kodet.v, rules.message.tema_kodet.s) == ("6", "2.16.578.1.12.4.1.1.7322")
    assert rules.message.contact_role.v == "17"
    for point in (1, 2, 3):
        assert f"samhandlingspunkt {point}" in rules.tema(point)


def test_rules_refuse_unknown_keys() -> None:
    """A typo in a rules file is an error, not a silently ignored setting."""
    with pytest.raises(ValueError, match="servce_preference"):
        RoutingRules.from_documents(
            {"message": _shipped_rules().message.model_dump(), "routing": {"servce_preference": ["KX06"]}},
            None,
        )
