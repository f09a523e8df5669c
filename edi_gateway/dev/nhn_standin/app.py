"""The NHN stand-in as one FastAPI application: the message service and whatever else is mounted.

The message service's routes carry the OpenAPI check themselves (its router is built with
:meth:`edi_gateway.dev.nhn_standin.openapi.OpenApiValidator.route_class`): every request to an MSH
path is validated against the published description before its endpoint runs, and an invalid one is
answered 400 and recorded. Other routers (the HelseID-like token endpoint, AR, FLR) are mounted as
they come; the MSH check does not touch them.

Serve it with uvicorn (``edi_gateway.dev.nhn_standin.server.run_in_thread`` in tests).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from .msh import MessageServiceStandIn

__all__ = ["create_app"]


def create_app(
    *, msh: MessageServiceStandIn | None = None, extra_routers: Sequence[APIRouter] = ()
) -> FastAPI:
    """Build the stand-in's application.

    Args:
        msh: the message service to serve at the published paths (``/Messages`` ...); None serves
            none (an application with only the extra routers).
        extra_routers: further routers, mounted as they are, after the message service.

    Returns:
        The application. It publishes no OpenAPI document or docs pages of its own: the
        description it follows is NHN's.
    """
    app = FastAPI(title="NHN stand-in", openapi_url=None, docs_url=None, redoc_url=None)
    if msh is not None:
        app.include_router(msh.router)
    for router in extra_routers:
        app.include_router(router)
    return app
