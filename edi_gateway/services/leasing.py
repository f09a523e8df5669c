"""Run a periodic job in one worker only, whichever it is: the holder of the job's lease.

Every worker runs the loop; each round it takes or renews the lease (``Store.acquire_lease``) and runs
the job only when it holds it. The lease lasts three rounds, so a holder that dies (``kill -9``) is
replaced within three intervals, and a holder that stops cleanly releases it at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Final

from edi_gateway.errors import TransientError
from edi_gateway.logging import get_logger
from edi_gateway.store import Store

log = get_logger(__name__)

ROUNDS_PER_LEASE: Final = 3


def run_with_lease(
    store: Store, name: str, holder: str, interval_s: float, job: Callable[[], Any], stop: threading.Event
) -> None:
    """Every ``interval_s`` until ``stop`` is set: run ``job`` if this process holds the lease ``name``.

    A transient fault (the database, the broker, a register) skips the round; the lease then expires
    unless renewed, which is what lets another worker take over from one that cannot work.
    """
    held = False
    try:
        while not stop.wait(interval_s):
            try:
                held = store.acquire_lease(name, holder, interval_s * ROUNDS_PER_LEASE)
                # A holder stopping hands the lease over at once: never start the job once told to stop.
                if held and not stop.is_set():
                    job()
            except TransientError as exc:
                log.warning("periodic job skipped", job=name, error=type(exc).__name__)
    finally:
        if held:
            with contextlib.suppress(TransientError):  # it expires by itself
                store.release_lease(name, holder)
