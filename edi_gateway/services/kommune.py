"""``edi-gateway receiver --her HERID``: a kommune's (or legekontor's) gateway for one HER-id.

It is the kommune role of the same engine, not a copy: the settings in force with ``ROLE=kommune``
and ``OUR_HER_ID`` = the HER-id, run as a worker (:func:`edi_gateway.services.worker.run_worker`).
It plays another organisation than the hospital beside it in a demo or test, so it keeps its own
database (a SQLite file under ``HOME/receivers/<herId>/`` unless one is named) and signs with that
virksomhet's own key from the test PKI. Only in test mode: production runs ``edi-gateway worker``
with ``EDI_GATEWAY_ROLE=kommune`` and its own explicit configuration.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from edi_gateway.private_files import private_dir
from edi_gateway.services.context import ConfigurationError, open_gateway
from edi_gateway.services.receiver.assessment import ReceiverBehaviour
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.settings import Settings

DATABASE_NAME: Final = "gateway.sqlite3"


def receiver_home(settings: Settings, her_id: int) -> Path:
    """The folder of the receiver's own state, ``HOME/receivers/<her_id>``, created owner-only."""
    return private_dir(private_dir(settings.home / "receivers") / str(her_id))


def kommune_settings(settings: Settings, her_id: int, *, database_url: str | None = None) -> Settings:
    """The settings of the kommune gateway for ``her_id``: kommune role, its own HER-id and database.

    Raises:
        ConfigurationError: test mode is off (the receiver is for demos and tests), or ``her_id`` is
            the hospital's own.
    """
    if not settings.test_mode:
        raise ConfigurationError(
            "edi-gateway receiver is for test mode; run `edi-gateway worker` with ROLE=kommune"
        )
    if her_id == settings.our_her_id and settings.role == "hospital":
        raise ConfigurationError(f"HER-id {her_id} is the gateway's own virksomhet, not a receiver")
    database = database_url or f"sqlite:///{receiver_home(settings, her_id) / DATABASE_NAME}"
    return settings.model_copy(update={"role": "kommune", "our_her_id": her_id, "database_url": database})


def run_receiver(
    settings: Settings,
    her_id: int,
    behaviour: ReceiverBehaviour,
    stop: threading.Event,
    ready: threading.Event | None = None,
    *,
    database_url: str | None = None,
) -> None:
    """Run the kommune gateway of ``her_id`` until ``stop`` is set.

    Args:
        settings: the settings in force (AMQP URL, queue prefix, HOME, test mode, transport).
        her_id: the virksomhet's HER-id; its inbox is the queue the Adresseregister names.
        behaviour: simulated misbehaviour; ``ReceiverBehaviour()`` answers honestly.
        stop: set it (e.g. from a SIGTERM handler) to finish the batch in hand and stop.
        ready: set once it consumes (for the demo and tests).
        database_url: its database; default a SQLite file of its own under HOME.

    Raises:
        ConfigurationError: ``her_id`` is not a virksomhet in the registers, test mode is off, or a
            late answer (``delay_s``) is asked for on another transport than amqp.
    """
    from edi_gateway.services.worker import run_worker

    if behaviour.delay_s > 0 and settings.transport != "amqp":
        raise ConfigurationError("late AppRecs (--delay) are for the amqp transport only")
    gateway = open_gateway(kommune_settings(settings, her_id, database_url=database_url), migrate=True)
    try:
        if gateway.registers.address.virksomhet(her_id) is None:
            raise ConfigurationError(f"HER-id {her_id} is not a virksomhet in the Adresseregister")
        declare_gateway_topology(gateway)
        run_worker(gateway, stop, ready=ready, behaviour=behaviour)
    finally:
        gateway.close()
