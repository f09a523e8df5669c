"""What one web application holds for its lifetime: the gateway, a lazily started publisher, replay.

The publisher is started on the first replay only: a read-only UI session never opens a broker
connection, and an application whose broker is down still serves lists and pages.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry

from edi_gateway.services.context import Gateway
from edi_gateway.services.replay import ReplayService, replay_session
from edi_gateway.store import Store
from edi_gateway.web.throttle import LoginThrottle

if TYPE_CHECKING:  # health imports this module for ``web_state``
    from edi_gateway.web.health import ReadinessProbe


@dataclass
class WebState:
    """The long-lived parts of one web application.

    Attributes:
        gateway: registers, rules, signer and store.
        owns_gateway: the application opened the gateway and closes it at shutdown.
        templates: the Jinja2 environment of the pages.
        metrics: the Prometheus registry ``/metrics`` exposes.
        logins: the failed-login counts of this process.
        readiness: the readiness checks, run at most every few seconds however often asked.
    """

    gateway: Gateway
    owns_gateway: bool
    templates: Jinja2Templates
    metrics: CollectorRegistry
    logins: LoginThrottle
    readiness: ReadinessProbe
    _replay_session: ExitStack | None = None
    _replay: ReplayService | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> Store:
        """The gateway's store."""
        return self.gateway.store

    def replay_service(self) -> ReplayService:
        """Return the replay service, starting its publisher on first use."""
        with self._lock:
            if self._replay is None:
                session = ExitStack()
                self._replay = session.enter_context(replay_session(self.gateway, name="edi_gateway.web"))
                self._replay_session = session
            return self._replay

    def close(self) -> None:
        """Stop the publisher and, when the application opened it, close the gateway."""
        with self._lock:
            if self._replay_session is not None:
                self._replay_session.close()
                self._replay_session = None
                self._replay = None
        if self.readiness.nhn is not None:
            self.readiness.nhn.close()
        if self.owns_gateway:
            self.gateway.close()


def web_state(request: Request) -> WebState:
    """FastAPI dependency: the application's ``WebState``."""
    state: WebState = request.app.state.web
    return state
