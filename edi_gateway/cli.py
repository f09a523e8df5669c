"""The ``edi-gateway`` command line.

Exit codes: 0 ok, 1 runtime failure, 2 usage error (typer's own).
"""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from edi_gateway.cli_common import fail, load_settings, redact_url
from edi_gateway.errors import EdiGatewayError
from edi_gateway.logging import configure_logging

app = typer.Typer(
    name="edi-gateway",
    help="Routes, signs, delivers and tracks Norwegian health EDI messages (MsgHead, Dialogmelding, AppRec).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def setup() -> None:
    """Create or upgrade the database, declare the RabbitMQ topology and the test PKI (idempotent)."""
    from edi_gateway.services.setup import run_setup

    configure_logging()
    try:
        summary = run_setup(load_settings())
    except EdiGatewayError as exc:
        raise fail(exc) from exc
    typer.echo(summary)


@app.command()
def worker() -> None:
    """Consume edi.requests until SIGTERM or Ctrl-C, then finish the batch in hand and stop cleanly."""
    from edi_gateway.services.context import open_gateway
    from edi_gateway.services.worker import run_worker

    configure_logging()
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        settings = load_settings()
        if settings.worker_metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
        gateway = open_gateway(settings)
        try:
            run_worker(gateway, stop)
        finally:
            gateway.close()
    except EdiGatewayError as exc:
        raise fail(exc) from exc


@app.command()
def transport(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of lines.")] = False,
) -> None:
    """Show the transport and register configuration in force (never a secret: keys show as "set")."""
    import json

    settings = load_settings()
    shown: dict[str, object] = {
        "transport": settings.transport,
        "registers": settings.effective_registers,
        "amqp_url": redact_url(settings.amqp_url),
        "our_her_id": settings.our_her_id,
        "problems": settings.startup_problems(),
    }
    if settings.transport == "nhn" or settings.effective_registers == "nhn":
        shown.update(settings.nhn.describe())
    if as_json:
        typer.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    for key, value in shown.items():
        typer.echo(f"{key}: {value}")


@app.command()
def send(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Request file.")],
    content_type: Annotated[str | None, typer.Option(help="Default: from the file suffix.")] = None,
) -> None:
    """Publish a request file (JSON request, or an unsigned MsgHead XML) to edi.requests."""
    from edi_gateway.transport.names import Names
    from edi_gateway.transport.publisher import Outgoing, publish_once

    settings = load_settings()
    body = file.read_bytes()
    ctype = content_type or ("application/xml" if file.suffix.lower() == ".xml" else "application/json")
    names = Names(settings.queue_prefix)
    message = Outgoing(
        exchange="",
        routing_key=names.requests,
        body=body,
        message_id=str(uuid.uuid4()),
        correlation_id=None,
        content_type=ctype,
    )
    try:
        publish_once(settings.amqp_url, message, timeout=settings.confirm_timeout_s)
    except EdiGatewayError as exc:
        raise fail(exc) from exc
    typer.echo(f"published {file.name} ({len(body)} bytes, {ctype}) to {names.requests}")


@app.command()
def receiver(
    her: Annotated[
        int, typer.Option("--her", help="HER-id of the virksomhet (kommune or legekontor) to play.")
    ],
    reject: Annotated[
        str | None, typer.Option(help="Answer every message Avvist with this 8221 code.")
    ] = None,
    reject_every: Annotated[int, typer.Option(help="Answer every Nth message Avvist (E35).")] = 0,
    silent: Annotated[bool, typer.Option(help="Consume and never answer (shows overdue).")] = False,
    delay: Annotated[float, typer.Option(help="Answer this many seconds late.")] = 0.0,
    duplicate_apprec: Annotated[bool, typer.Option(help="Send every AppRec twice.")] = False,
    database_url: Annotated[
        str | None,
        typer.Option(help="The receiver's own database (default: a SQLite file under HOME/receivers/HERID)."),
    ] = None,
) -> None:
    """Run the kommune role for one HER-id (test mode): receive, store, answer once, keep the worklist."""
    from edi_gateway.services.kommune import run_receiver
    from edi_gateway.services.receiver import ReceiverBehaviour

    configure_logging()
    settings = load_settings(test_mode=True)  # receivers in demos and tests see synthetic patients
    try:
        behaviour = ReceiverBehaviour(
            reject=reject,
            reject_every=reject_every,
            silent=silent,
            delay_s=delay,
            duplicate_apprec=duplicate_apprec,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        run_receiver(settings, her, behaviour, stop, database_url=database_url)
    except EdiGatewayError as exc:
        raise fail(exc) from exc


DEMO_NEXT_STEPS = """
Look at the same messages in the web UI (README, "The web UI on the demo data"):
  .venv/bin/edi-gateway operators add me --role admin
  EDI_GATEWAY_TEST_MODE=true .venv/bin/edi-gateway web      # then open http://127.0.0.1:8080/"""


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every message's final state.")] = 90,
    deadline: Annotated[float, typer.Option(help="AppRec deadline in the demo (standard: 96 h).")] = 8,
    transport: Annotated[
        str,
        typer.Option(
            help="amqp: the receivers' queues on RabbitMQ; nhn: through a local stand-in for NHN's EDI 2.0 "
            "message service and HelseID."
        ),
    ] = "amqp",
) -> None:
    """Run the whole loop on the embedded defaults: requests, messages, receivers, AppRecs, overdue."""
    from edi_gateway.services.demo import run_demo

    if transport not in ("amqp", "nhn"):
        raise typer.BadParameter("amqp or nhn", param_hint="--transport")
    configure_logging(level="WARNING")
    # On nhn the demo starts the stand-in itself and points the gateway and the receivers at it.
    settings = load_settings(
        test_mode=True, apprec_deadline_s=deadline, overdue_sweep_interval_s=1.0, transport=transport
    )
    try:
        ok = run_demo(settings, timeout=timeout, echo=typer.echo)
    except EdiGatewayError as exc:
        raise fail(exc) from exc
    if not ok:
        raise typer.Exit(1)
    typer.echo(DEMO_NEXT_STEPS)


def _register_operator_commands() -> None:
    from edi_gateway import cli_ops, cli_parked, cli_pathway, cli_received, cli_replay, cli_web

    cli_ops.register(app)
    cli_parked.register(app)
    cli_pathway.register(app)
    cli_received.register(app)
    cli_replay.register(app)
    cli_web.register(app)


_register_operator_commands()


def main() -> None:
    """Console-script entry point."""
    app()
