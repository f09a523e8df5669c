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
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Comma-separated addresses of reverse proxies whose X-Forwarded-Proto and "
            "X-Forwarded-For are believed (the scheme decides HSTS; the address, the login limits)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the web UI and the REST API (/api/...), with /healthz, /readyz and /metrics."""
    import uvicorn

    from edi_gateway.cli_common import failing_cleanly, load_settings
    from edi_gateway.logging import configure_logging
    from edi_gateway.web import create_app

    configure_logging()
    settings = load_settings()
    with failing_cleanly():
        application = create_app(settings)
    typer.echo(f"edi_gateway web UI on http://{host}:{port}/ (API docs: /api/docs)")
    # uvicorn's access log prints query strings, which may hold filter values; the app logs paths only.
    uvicorn.run(
        application,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )
