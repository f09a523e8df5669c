"""``/metrics`` for Prometheus: the store's figures, read at scrape time.

The figures are read from the database when Prometheus asks, not counted in this process: several
workers and web processes share one store, and each of them must report the same truth. Labels are
low-cardinality only (a state, an outcome) — never a MsgId, a HER-id or a person.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.nhn import metrics as nhn_metrics
from edi_gateway.services.queries import counts_by_state
from edi_gateway.store import Store
from edi_gateway.web.state import WebState, web_state

router = APIRouter(tags=["health"])


class StoreCollector(Collector):
    """Collects message and request counts, overdue and parked documents from the store."""

    def __init__(self, store: Store) -> None:
        """Read figures from ``store`` at every scrape."""
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges (called by prometheus-client at scrape time)."""
        by_state = counts_by_state(self._store)
        messages = GaugeMetricFamily("edi_gateway_messages", "Stored messages per state.", labels=["state"])
        for state in MessageState:
            messages.add_metric([state.value], by_state.get(state.value, 0))
        yield messages
        yield GaugeMetricFamily(
            "edi_gateway_messages_overdue",
            "Messages without an AppRec past their deadline.",
            value=by_state.get(MessageState.OVERDUE.value, 0),
        )
        yield GaugeMetricFamily(
            "edi_gateway_parked_unresolved",
            "Parked documents (AppRecs) waiting for an operator.",
            value=self._store.count_parked(),
        )
        requests = GaugeMetricFamily(
            "edi_gateway_requests", "Stored requests per outcome (state).", labels=["outcome"]
        )
        for outcome in RequestState:
            requests.add_metric([outcome.value], self._store.count_requests(outcome))
        yield requests


def metrics_registry(store: Store) -> CollectorRegistry:
    """A registry of this application's own: the store's figures, and this process's NHN client metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    for metric in (nhn_metrics.API_SECONDS, nhn_metrics.API_ERRORS, nhn_metrics.TOKEN_REFRESHES):
        registry.register(metric)
    return registry


@router.get("/metrics")
def metrics(state: Annotated[WebState, Depends(web_state)]) -> Response:
    """The Prometheus text exposition of the store's figures."""
    return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)
