"""Receiver choice follows the configured kodeverk 8663 preference, says why, and per kommune when overridden."""

from __future__ import annotations

import pytest
import yaml

from edi_gateway.domain.model import Service, ServiceChoice
from edi_gateway.domain.routing import RoutingRules, choose_service
from edi_gateway.resources import resource_dir

KX06 = Service(1, "Kreftkoordinator", "KX06")
KD0501 = Service(2, "Tjenestekontoret", "KD0501")
KP02 = Service(3, "Hjemmesykepleien", "KP02")
KA02 = Service(4, "Legevakt", "KA02")
DEFAULT = ("KD0501", "KX06", "KP02")
NAMES = {"KD0501": "tjenestekontor", "KX06": "kreftkoordinator", "KP02": "hjemmesykepleie"}


@pytest.mark.parametrize(
    ("services", "preference", "expected"),
    [
        ((KA02, KP02, KD0501, KX06), DEFAULT, KD0501),
        ((KX06, KD0501), DEFAULT, KD0501),
        ((KA02, KP02, KX06), DEFAULT, KX06),
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
    choice = choose_service(services, preference)
    assert (choice.service if choice is not None else None) == expected


@pytest.mark.parametrize(
    ("services", "rule", "reason", "fallback"),
    [
        (
            (KX06, KD0501, KP02),
            "default",
            "tjenestekontor (KD0501) registered: the first preference of the routing rules",
            False,
        ),
        (
            (KX06, KP02),
            "default",
            "no tjenestekontor (KD0501) registered; falls back to kreftkoordinator (KX06), "
            "the next preference of the routing rules",
            True,
        ),
        (
            (KA02, KP02),
            "default",
            "no tjenestekontor (KD0501) or kreftkoordinator (KX06) registered; falls back to "
            "hjemmesykepleie (KP02), the next preference of the routing rules",
            True,
        ),
        (
            (KD0501,),
            "kommune 4001",
            "tjenestekontor (KD0501) registered: the first preference of the routing rule for kommune 4001",
            False,
        ),
    ],
)
def test_choice_records_its_reason(
    services: tuple[Service, ...], rule: str, reason: str, fallback: bool
) -> None:
    """The choice says which codes were missing before the chosen one, and which rule was followed."""
    choice = choose_service(services, DEFAULT, names=NAMES, rule=rule)
    assert choice is not None
    assert (choice.reason, choice.fallback, choice.rule, choice.preference) == (
        reason,
        fallback,
        rule,
        DEFAULT,
    )


def test_reason_without_names_uses_the_codes() -> None:
    """A code the rules give no word for appears as the bare code in the reason."""
    choice = choose_service((KP02,), ("KD0501", "KP02"))
    assert choice is not None
    assert choice.reason == (
        "no KD0501 registered; falls back to KP02, the next preference of the routing rules"
    )


def test_choice_details_are_json_values() -> None:
    """The recorded form of a choice names the service, the reason, the preference and the rule."""
    choice = ServiceChoice(KX06, "why", DEFAULT, "default")
    assert choice.as_details() == {
        "service_code": "KX06",
        "service_her_id": 1,
        "service_name": "Kreftkoordinator",
        "reason": "why",
        "fallback": True,
        "preference": ["KD0501", "KX06", "KP02"],
        "rule": "default",
    }


def _shipped_rules() -> RoutingRules:
    directory = resource_dir("routing_rules")
    return RoutingRules.from_documents(
        yaml.safe_load((directory / "default.yaml").read_text(encoding="utf-8")),
        yaml.safe_load((directory / "kommuner.yaml").read_text(encoding="utf-8")),
    )


def test_shipped_rules_prefer_the_tjenestekontor_everywhere() -> None:
    """The shipped rules prefer KD0501 → KX06 → KP02 in every kommune, with no per-kommune override."""
    rules = _shipped_rules()
    assert rules.kommuner == {}
    for kommunenummer in ("4001", "4003", "4026", "4032"):
        assert rules.service_preference(kommunenummer) == DEFAULT
        assert rules.rule_name(kommunenummer) == "default"
    assert rules.service_names == NAMES


def test_override_replaces_the_preference_for_one_kommune() -> None:
    """An override in kommuner.yaml applies to its kommune only and is named in the choice."""
    rules = RoutingRules.from_documents(
        yaml.safe_load((resource_dir("routing_rules") / "default.yaml").read_text(encoding="utf-8")),
        {"4001": {"service_preference": ["KX06", "KD0501"]}},
    )
    assert rules.service_preference("4001") == ("KX06", "KD0501")
    assert rules.service_preference("4003") == DEFAULT
    choice = rules.choose("4001", (KD0501, KX06))
    assert choice is not None
    assert (choice.service, choice.rule, choice.fallback) == (KX06, "kommune 4001", False)
    other = rules.choose("4003", (KD0501, KX06))
    assert other is not None and (other.service, other.rule) == (KD0501, "default")


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
