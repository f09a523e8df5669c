"""The service choice and its reason are recorded with each kommune message and shown in its detail."""

from __future__ import annotations

import json
import uuid

from typer.testing import CliRunner

from edi_gateway.cli import app
from edi_gateway.services import queries
from edi_gateway.services.context import Gateway
from edi_gateway.settings import Settings
from edi_gateway.store import NewMessage
from edi_gateway.store.operators import NewReplay
from tests.services.conftest import store_routed_request

BAMBLE_PATIENT = "08818028386"  # lives in Bamble, which is registered without a tjenestekontor
SELJORD_PATIENT = "16875837641"  # lives in Seljord, also without a tjenestekontor; has a fastlege
SKIEN_PATIENT = "23915700969"


def test_the_first_event_of_a_kommune_message_records_the_choice(gateway: Gateway) -> None:
    """Skien's message goes to its tjenestekontor; the queued event's details say which and why."""
    (message,) = store_routed_request(gateway, SKIEN_PATIENT)
    first = gateway.store.events_for_message(message.msg_id)[0]
    assert first.details == {
        "routing": {
            "service_code": "KD0501",
            "service_her_id": 8100012,
            "service_name": "Tjenestekontoret",
            "reason": "tjenestekontor (KD0501) registered: the first preference of the routing rules",
            "fallback": False,
            "preference": ["KD0501", "KX06", "KP02"],
            "rule": "default",
        }
    }


def test_a_fallback_is_recorded_and_shown_and_the_fastlege_has_no_choice(gateway: Gateway) -> None:
    """Seljord has no tjenestekontor: its message's detail names KX06 and the reason; the fastlege's has none."""
    kommune, fastlege = store_routed_request(gateway, SELJORD_PATIENT, fastlege=True)
    detail = queries.message_detail(gateway.store, kommune.msg_id)
    assert detail is not None and detail.routing is not None
    assert (detail.routing.service_code, detail.routing.fallback, detail.routing.rule) == (
        "KX06",
        True,
        "default",
    )
    assert detail.routing.reason == (
        "no tjenestekontor (KD0501) registered; falls back to kreftkoordinator (KX06), "
        "the next preference of the routing rules"
    )
    gp_detail = queries.message_detail(gateway.store, fastlege.msg_id)
    assert gp_detail is not None and gp_detail.routing is None
    assert gateway.store.events_for_message(fastlege.msg_id)[0].details is None


def test_messages_show_prints_the_choice_and_its_reason(gateway: Gateway, settings: Settings) -> None:
    """``messages show`` prints a routing line; ``--json`` carries the routing object."""
    (message,) = store_routed_request(gateway, BAMBLE_PATIENT)
    env = {
        "EDI_GATEWAY_HOME": str(settings.home),
        "EDI_GATEWAY_DATABASE_URL": settings.database_url,
        "EDI_GATEWAY_TEST_MODE": "true",
    }
    text = CliRunner().invoke(app, ["messages", "show", message.msg_id], env=env)
    assert text.exit_code == 0, text.output
    routing_line = next(line for line in text.stdout.splitlines() if line.startswith("routing"))
    assert routing_line.split(None, 1)[1] == (
        "KX06 (default): no tjenestekontor (KD0501) registered; falls back to kreftkoordinator (KX06), "
        "the next preference of the routing rules"
    )
    as_json = CliRunner().invoke(app, ["messages", "show", message.msg_id, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    routing = json.loads(as_json.stdout)["routing"]
    assert (routing["service_code"], routing["fallback"], routing["preference"]) == (
        "KX06",
        True,
        ["KD0501", "KX06", "KP02"],
    )


def test_a_rebuilt_message_records_the_choice_of_its_own_routing(gateway: Gateway) -> None:
    """A replay's new message keeps the replay details and adds the choice made when it was rebuilt."""
    (old,) = store_routed_request(gateway, SKIEN_PATIENT)
    new = NewMessage(
        **{
            **{f: getattr(old, f) for f in old.__dataclass_fields__},
            "msg_id": str(uuid.uuid4()),
            "conversation_ref": old.msg_id,
        }
    )
    gateway.store.add_replay_message(
        NewReplay(old_msg_id=old.msg_id, message=new, username="kari", kind="rebuild", reason="INC-1"),
        actor="operator:kari",
    )
    first = gateway.store.events_for_message(new.msg_id)[0]
    assert first.details is not None
    assert (first.details["replay"], first.details["old_msg_id"]) == ("rebuild", old.msg_id)
    assert first.details["routing"]["service_code"] == "KD0501"
    detail = queries.message_detail(gateway.store, new.msg_id)
    assert detail is not None and detail.routing is not None and detail.routing.service_code == "KD0501"
