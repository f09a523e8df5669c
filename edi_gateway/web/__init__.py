"""The operators' web UI and REST API (FastAPI): pages, ``/api/...``, ``/healthz``, ``/readyz``, ``/metrics``."""

from edi_gateway.web.app import create_app

__all__ = ["create_app"]
