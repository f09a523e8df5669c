"""What one web application holds for its lifetime: the gateway, the operator-action desk, the planner.

The web process never publishes: a replay is recorded as an operator action (``ActionDesk``) that a
worker carries out. The web process opens no broker connection at all, and serves lists, pages and
replay requests while the broker is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry

from edi_gateway.services.context import Gateway
from edi_gateway.services.operator_actions import ActionDesk
from edi_gateway.services.replay import ReplayPlanner
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
    actions: ActionDesk = field(init=False)
    planner: ReplayPlanner = field(init=False)

    def __post_init__(self) -> None:
        self.actions = ActionDesk(self.gateway.store)
        self.planner = ReplayPlanner(self.gateway)

    @property
    def store(self) -> Store:
        """The gateway's store."""
        return self.gateway.store

    @property
    def action_wait_s(self) -> float:
        """How long a replay waits for a worker's outcome before answering that it is pending."""
        return self.gateway.settings.web_action_wait_s

    def close(self) -> None:
        """Close the readiness probe's clients and, when the application opened it, the gateway."""
        if self.readiness.nhn is not None:
            self.readiness.nhn.close()
        if self.owns_gateway:
            self.gateway.close()


def web_state(request: Request) -> WebState:
    """FastAPI dependency: the application's ``WebState``."""
    state: WebState = request.app.state.web
    return state
