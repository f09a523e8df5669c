"""The ``edi-gateway web`` command: serve the operators' web UI and REST API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``web`` command to the main command line."""
    app.command()(web)


def web(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
) -> None:
    """Serve the web UI and the REST API (/api/...), with /healthz, /readyz and /metrics."""
    import uvicorn
    from pydantic import ValidationError

    from edi_gateway.errors import EdiGatewayError
    from edi_gateway.logging import configure_logging
    from edi_gateway.settings import Settings
    from edi_gateway.web import create_app

    configure_logging()
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "EDI_GATEWAY_" + "_".join(str(p) for p in err["loc"]).upper()
            typer.echo(f"setting {name}: {err['msg']}", err=True)
        raise typer.Exit(2) from exc
    try:
        application = create_app(settings)
    except EdiGatewayError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"edi_gateway web UI on http://{host}:{port}/ (API docs: /api/docs)")
    # uvicorn's access log prints query strings, which may hold filter values; the app logs paths only.
    uvicorn.run(application, host=host, port=port, access_log=False, log_config=None)
