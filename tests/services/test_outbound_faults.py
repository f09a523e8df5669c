"""Faults on the way out: a crash between store and publish, unclassified faults, and log privacy."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import BrokerUnavailable
from edi_gateway.logging import configure_logging
from edi_gateway.registers.base import Registers
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.demo import demo_cases
from edi_gateway.services.outbound import OutboundDeps, OutboundService
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.transport.consumer import Delivery, Disposition
from edi_gateway.transport.publisher import ConfirmingPublisher
from tests.services.conftest import (
    RunningGateway,
    cleanup_gateway,
    example,
    make_settings,
)

pytestmark = pytest.mark.rabbitmq


def _delivery(body: dict[str, Any] | bytes, *, count: int = 0) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        delivery_tag=1,
        body=raw,
        content_type="application/json",
        message_id=None,
        correlation_id=None,
        headers={},
        redelivered=count > 0,
        delivery_count=count,
    )


class _BrokenPopulation:
    """A population register that fails in a way nobody classified."""

    def bosted_kommune(self, person_id: str) -> str | None:
        raise RuntimeError("register client bug")


def _with_broken_population(gateway: Gateway) -> Gateway:
    registers = Registers(
        population=_BrokenPopulation(), address=gateway.registers.address, fastlege=gateway.registers.fastlege
    )
    return dataclasses.replace(gateway, registers=registers)


@pytest.fixture
def direct(tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str):  # type: ignore[no-untyped-def]
    """An OutboundService on the real store and broker, driven by hand (no consumer)."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=database_url, queue_prefix=queue_prefix
    )
    gateway = open_gateway(settings, migrate=True)
    declare_gateway_topology(gateway)
    running = RunningGateway(gateway, settings, events_queue=f"{queue_prefix}unused")
    with ConfirmingPublisher(amqp_url, name="test outbound") as publisher:
        deps = OutboundDeps(
            settings=settings,
            registers=gateway.registers,
            rules=gateway.rules,
            signer=gateway.signer,
            store=gateway.store,
            publisher=publisher,
            names=gateway.names,
            actor="test",
        )
        yield running, deps, publisher
    gateway.close()
    cleanup_gateway(running)


def test_crash_between_store_and_publish_resends_the_same_bytes(direct, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Stored but unpublished messages go out on redelivery with the same MsgId, exactly once."""
    running, deps, publisher = direct
    service = OutboundService(deps)
    request = example("kommune-only")
    real_publish_many = publisher.publish_many
    monkeypatch.setattr(
        publisher, "publish_many", lambda msgs, timeout: [BrokerUnavailable("simulated outage")] * len(msgs)
    )
    assert service.handle_batch([_delivery(request)]) == [Disposition.REQUEUE]
    stored = deps.store.get_request(request["request_id"])
    (queued,) = deps.store.messages_for_request(stored.ref)
    assert queued.state == MessageState.QUEUED

    monkeypatch.setattr(publisher, "publish_many", real_publish_many)
    assert service.handle_batch([_delivery(request, count=1)]) == [Disposition.ACK]
    (sent,) = deps.store.messages_for_request(stored.ref)
    assert (sent.msg_id, sent.state) == (queued.msg_id, MessageState.SENT)
    deliveries = running.receiver_deliveries(f"{sent.receiver_org_her_id}_async", expect=2, timeout=2)
    assert [(d.message_id, d.body) for d in deliveries] == [(queued.msg_id, queued.signed_xml)]


def test_unknown_fault_is_requeued_then_parked_as_failed(direct) -> None:  # type: ignore[no-untyped-def]
    """An unclassified fault requeues the request; on the last allowed delivery it is recorded as failed."""
    _, deps, _ = direct
    broken = dataclasses.replace(
        deps,
        registers=Registers(
            population=_BrokenPopulation(), address=deps.registers.address, fastlege=deps.registers.fastlege
        ),
    )
    service = OutboundService(broken)
    request = example("kommune-only")
    assert service.handle_batch([_delivery(request)]) == [Disposition.REQUEUE]
    assert deps.store.get_request(request["request_id"]) is None
    last = deps.settings.request_delivery_limit - 1
    assert service.handle_batch([_delivery(request, count=last)]) == [Disposition.ACK]
    stored = deps.store.get_request(request["request_id"])
    assert stored.state == RequestState.FAILED
    assert [p.code for p in stored.problems] == ["gateway.internal_error"]


def test_poison_request_cannot_loop_forever(start: Callable[..., RunningGateway]) -> None:
    """Through the real broker, a request that always fails ends recorded as failed, and the queue empties."""
    running = start(customize=_with_broken_population, request_delivery_limit=3)
    request = example("kommune-only")
    running.send(request)
    running.wait_for(lambda: running.gateway.store.get_request(request["request_id"]) is not None, timeout=30)
    assert running.gateway.store.get_request(request["request_id"]).state == RequestState.FAILED
    (event,) = running.events(expect=1)
    assert event["state"] == "failed"


def test_no_person_number_or_name_reaches_the_logs(start: Callable[..., RunningGateway]) -> None:
    """Running every demo request through the worker logs ids and states, never a person number or name."""
    buffer = io.StringIO()
    configure_logging(stream=buffer, json=True, level="DEBUG")
    try:
        running = start()
        cases = demo_cases(uuid.uuid4())
        running.send(*[c.body for c in cases])
        for case in cases:
            if case.request_id:
                running.wait_request(case.request_id)
    finally:
        configure_logging()
    output = buffer.getvalue()
    assert "request processed" in output
    secrets: set[str] = set()
    for case in cases:
        try:
            patient = json.loads(case.body)["patient"]
        except ValueError:
            continue
        secrets |= {patient["id"], patient["given_name"], patient["family_name"]}
    assert len(secrets) > 10
    leaked = sorted(s for s in secrets if re.search(rf"\b{re.escape(s)}\b", output))
    assert leaked == []
