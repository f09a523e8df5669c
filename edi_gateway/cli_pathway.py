"""The kommune's pathway worklist on the command line: ``edi-gateway pathway list|show|assign|done|…``.

Only a kommune gateway keeps a worklist (``EDI_GATEWAY_ROLE=kommune``); elsewhere every command
refuses with a plain message (exit 2). Reading (``list``, ``show``) needs no account; every move names
the acting operator (``--operator`` or ``EDI_GATEWAY_OPERATOR``, role operator or higher), which the
pathway's history and the audit log record, with the ``--reason`` given.

Text is for the kommune nurse (Norwegian headings, dates as YYYY-MM-DD, times in Norwegian time);
``--json`` is for scripts: ``list --json`` prints an array of points with exactly the keys
``pathway_id, samhandlingspunkt, title, due_from, due_to, state, assigned_to, patient, msg_id``.
Patients are shown masked only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edi_gateway.cli_common import OperatorOption, acting_operator, gateway_session
from edi_gateway.localtime import shown

if TYPE_CHECKING:  # the gateway context loads keys and schemas: import it only when a command runs
    from edi_gateway.services.access import Operator
    from edi_gateway.services.context import Gateway
    from edi_gateway.services.pathways import PathwayDesk, PathwayView, PointView

pathway_app = typer.Typer(
    help="The kommune's pathway worklist: samhandlingspunkter per patient (EDI_GATEWAY_ROLE=kommune).",
    no_args_is_help=True,
)

STATE_WORDS = {
    "planned": "planlagt",
    "due": "aktuell",
    "overdue": "forfalt",
    "done": "utført",
    "declined": "takket nei",
    "not_reachable": "ikke nådd",
    "closed": "avsluttet",
}
"""How the text output names a point's state for the nurse (JSON keeps the codes)."""
COMMAND_OF_MOVE = {
    "done": "done",
    "declined": "decline",
    "not_reachable": "not-reachable",
    "reopen": "reopen",
}

IdArgument = Annotated[int, typer.Argument(help="The pathway's id (from 'pathway list').", min=1)]
PointOption = Annotated[int, typer.Option("--point", min=1, help="The samhandlingspunkt (1, 2, 3 …).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; written to the history and the audit log.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
OnOption = Annotated[
    str | None, typer.Option("--on", help="The day it happened, YYYY-MM-DD (default: today).")
]


def register(app: typer.Typer) -> None:
    """Add the ``pathway`` commands to the main command line."""
    app.add_typer(pathway_app, name="pathway")


# -- plumbing --------------------------------------------------------------------------------------


@contextmanager
def _desk() -> Iterator[tuple[Gateway, PathwayDesk]]:
    """The gateway and its pathway desk; refuses (exit 2) unless the gateway runs the kommune role."""
    from edi_gateway.services.pathways import desk_for

    with gateway_session() as gateway:
        yield gateway, desk_for(gateway)


def _operator(gateway: Gateway, username: str) -> Operator:
    from edi_gateway.services.access import Role

    return acting_operator(gateway.store, username, Role.OPERATOR)


def _day(value: str | None, hint: str = "--on") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=hint) from exc


def _echo_json(value: Any) -> None:
    from edi_gateway.services import queries

    typer.echo(json.dumps(queries.to_jsonable(value), ensure_ascii=False, indent=2))


def _state(code: str) -> str:
    return STATE_WORDS.get(code, code)


def _iso(day: date | None) -> str:
    return "-" if day is None else day.isoformat()


# -- reading ---------------------------------------------------------------------------------------


@pathway_app.command("list")
def list_command(
    state: Annotated[
        str | None,
        typer.Option(help="Only points in this state: planned, due, overdue, done, declined, not_reachable."),
    ] = None,
    assigned_to: Annotated[
        str | None, typer.Option(help="Only pathways assigned to role:<role> or operator:<account>.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the points of every pathway's current course, by the day their window opens."""
    with _desk() as (_gateway, desk):
        points = desk.worklist(state=state, assigned_to=assigned_to)
    if as_json:
        typer.echo(json.dumps([p.as_json() for p in points], ensure_ascii=False, indent=2))
        return
    if not points:
        typer.echo("Ingen samhandlingspunkter på arbeidslisten.")
        return
    typer.echo(_points_table(points, with_pathway=True))
    typer.echo(f"{len(points)} samhandlingspunkt(er)")


def _points_table(points: list[PointView] | tuple[PointView, ...], *, with_pathway: bool) -> str:
    """The points as a table; the worklist adds the pathway, its assignee and the patient."""
    from edi_gateway.cli_ops import table

    headers = ["PUNKT", "STATUS", "FRA", "TIL"]
    if with_pathway:
        headers = ["FORLØP", *headers, "ANSVARLIG", "PASIENT"]
    rows = []
    for p in points:
        cells: list[object] = [p.samhandlingspunkt, _state(p.state), _iso(p.due_from), _iso(p.due_to)]
        if with_pathway:
            cells = [p.pathway_id, *cells, p.assigned_to or "-", p.patient]
        rows.append([*cells, p.title])
    return table([*headers, "TITTEL"], rows)


@pathway_app.command("show")
def show_command(pathway_id: IdArgument, as_json: JsonOption = False) -> None:
    """Show one pathway: its points, the moves allowed now, its messages, history and notes."""
    with _desk() as (_gateway, desk):
        view = desk.show(pathway_id)
    if as_json:
        _echo_json(view)
        return
    typer.echo(format_pathway(view))


def format_pathway(view: PathwayView) -> str:
    """Return one pathway as text for the nurse (the patient masked)."""
    lines = [
        f"Forløp {view.pathway_id} — pasient {view.patient}",
        f"Kommune: {view.kommunenummer or '-'}   Modell: {view.model_name}   Versjon: {view.version}",
        f"Ansvarlig: {view.assigned_to or '-'}",
        f"Diagnosedato: {view.diagnosis_date.isoformat()} (forløp {view.course})",
        f"Åpnet: {shown(view.opened_at)}   Sist endret: {shown(view.updated_at)}",
        "",
        "Samhandlingspunkter:",
        _points_table(view.points, with_pathway=False),
        "",
        "Mulige valg:",
        *_move_lines(view),
        "",
        "Meldinger:",
        *(f"  {s.msg_id}  mottatt {shown(s.received_at)}  {s.pathway_state or '-'}" for s in view.sources),
        "",
        "Historikk:",
        _history_table(view),
    ]
    if view.notes:
        lines += ["", "Notater til fastlegen:", *_note_lines(view)]
    return "\n".join(lines)


def _move_lines(view: PathwayView) -> list[str]:
    lines = []
    for number, moves in sorted(view.moves.items()):
        commands = ", ".join(COMMAND_OF_MOVE[m] for m in moves) or "ingen (endelig)"
        lines.append(f"  punkt {number}: {commands}")
    return lines


def _history_table(view: PathwayView) -> str:
    from edi_gateway.cli_ops import table

    rows = [
        [shown(h.at), h.actor, h.kind, h.samhandlingspunkt, h.before, h.after, h.reason] for h in view.history
    ]
    return table(["TID", "HVEM", "HVA", "PUNKT", "FRA", "TIL", "BEGRUNNELSE"], rows)


def _note_lines(view: PathwayView) -> list[str]:
    lines = []
    for note in view.notes:
        asked = shown(note.asked_at) if note.asked_at is not None else "-"
        sent = f" (MsgId {note.msg_id})" if note.msg_id else ""
        lines.append(
            f"  #{note.id} punkt {note.samhandlingspunkt}: {note.state}{sent}, {asked}, {note.asked_by}"
        )
        lines += [f"    {line}" for line in note.text.splitlines()]
        if note.outcome:
            lines.append(f"    utfall: {note.outcome}")
    return lines


# -- moves -----------------------------------------------------------------------------------------


@pathway_app.command("assign")
def assign_command(
    pathway_id: IdArgument,
    to: Annotated[
        str, typer.Option("--to", help="role:<role> (role:kreftkoordinator) or operator:<account>.")
    ],
    reason: ReasonOption,
    operator: OperatorOption,
    as_json: JsonOption = False,
) -> None:
    """Assign a pathway to a role or a named operator."""
    with _desk() as (gateway, desk):
        who = _operator(gateway, operator)
        view = desk.assign(pathway_id, to, actor=who, reason=reason, now=datetime.now(UTC))
    _moved(view, as_json, f"Forløp {view.pathway_id} er tildelt {view.assigned_to}.")


@pathway_app.command("done")
def done_command(
    pathway_id: IdArgument,
    point: PointOption,
    reason: ReasonOption,
    operator: OperatorOption,
    note: Annotated[
        str | None, typer.Option("--note", help="A note to the patient's fastlege, sent as a Dialogmelding.")
    ] = None,
    on: OnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a samhandlingspunkt done (optionally with a note to the fastlege)."""
    _mark(
        pathway_id, point, "done", reason=reason, operator=operator, on=_day(on), note=note, as_json=as_json
    )


@pathway_app.command("decline")
def decline_command(
    pathway_id: IdArgument,
    point: PointOption,
    reason: ReasonOption,
    operator: OperatorOption,
    on: OnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record that the patient declined a samhandlingspunkt (it can be reopened later)."""
    _mark(pathway_id, point, "declined", reason=reason, operator=operator, on=_day(on), as_json=as_json)


@pathway_app.command("not-reachable")
def not_reachable_command(
    pathway_id: IdArgument,
    point: PointOption,
    reason: ReasonOption,
    operator: OperatorOption,
    on: OnOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record that the patient could not be reached for a samhandlingspunkt (it can be reopened)."""
    _mark(pathway_id, point, "not_reachable", reason=reason, operator=operator, on=_day(on), as_json=as_json)


@pathway_app.command("reopen")
def reopen_command(
    pathway_id: IdArgument,
    point: PointOption,
    reason: ReasonOption,
    operator: OperatorOption,
    as_json: JsonOption = False,
) -> None:
    """Reopen a declined or not reachable samhandlingspunkt: it follows the calendar again."""
    _mark(pathway_id, point, "reopen", reason=reason, operator=operator, as_json=as_json)


@pathway_app.command("restart")
def restart_command(
    pathway_id: IdArgument,
    diagnosis_date: Annotated[
        str,
        typer.Option("--diagnosis-date", help="The new diagnosis date, YYYY-MM-DD (after the current one)."),
    ],
    reason: ReasonOption,
    operator: OperatorOption,
    as_json: JsonOption = False,
) -> None:
    """Restart the pathway from a later diagnosis date (a relapse or a new diagnosis the message did not say).

    The answer to a ``pathway.conflict`` alert: the open points of the current course are closed and
    a new course is planned from the new date.
    """
    day = _day(diagnosis_date, "--diagnosis-date")
    assert day is not None  # a required option
    with _desk() as (gateway, desk):
        who = _operator(gateway, operator)
        view = desk.restart(pathway_id, day, actor=who, reason=reason, now=datetime.now(UTC))
    _moved(view, as_json, f"Forløp {view.pathway_id} starter på nytt fra diagnosedato {day.isoformat()}.")


def _mark(
    pathway_id: int,
    point: int,
    wanted: str,
    *,
    reason: str,
    operator: str,
    as_json: bool,
    on: date | None = None,
    note: str | None = None,
) -> None:
    with _desk() as (gateway, desk):
        who = _operator(gateway, operator)
        view = desk.mark(
            pathway_id, point, wanted, actor=who, reason=reason, now=datetime.now(UTC), on=on, note=note
        )
    state = next((p.state for p in view.points if p.samhandlingspunkt == point), wanted)
    said = f"Forløp {view.pathway_id}, samhandlingspunkt {point}: {_state(state)}."
    if note is not None:
        said += " Notatet til fastlegen er bestilt og sendes av gatewayen."
    _moved(view, as_json, said)


def _moved(view: PathwayView, as_json: bool, said: str) -> None:
    if as_json:
        _echo_json(view)
    else:
        typer.echo(said)
