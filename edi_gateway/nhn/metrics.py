"""Process metrics of the NHN clients: API latency, faults by kind, token refreshes.

Counted in the process that makes the calls (the worker, or the web process's readiness checks) on
prometheus-client's default registry; the worker serves it on ``WORKER_METRICS_PORT`` and the web
process adds it to ``/metrics``. Labels are an operation and a fault kind: never an id or a person.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

API_SECONDS: Final = Histogram(
    "edi_gateway_nhn_api_seconds",
    "Time of one call to NHN's message service, by operation.",
    labelnames=["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
API_ERRORS: Final = Counter(
    "edi_gateway_nhn_errors",
    "Faults met talking to NHN, by where (send, receive, status, api) and kind (timeout, rate_limited, ...).",
    labelnames=["where", "kind"],
)
TOKEN_REFRESHES: Final = Counter(
    "edi_gateway_helseid_token_refreshes",
    "Access tokens fetched from HelseID, by scope.",
    labelnames=["scope"],
)


def observe_api_call(operation: str, seconds: float, error_kind: str | None) -> None:
    """Record one API call (``MshClient``'s ``observe`` hook)."""
    API_SECONDS.labels(operation=operation).observe(seconds)
    if error_kind is not None:
        API_ERRORS.labels(where="api", kind=error_kind).inc()


def record_error(where: str, kind: str) -> None:
    """Count one fault met while sending, receiving or polling states."""
    API_ERRORS.labels(where=where, kind=kind).inc()


def record_token_refresh(scope: str) -> None:
    """Count one token fetched from HelseID."""
    TOKEN_REFRESHES.labels(scope=scope).inc()
