"""The alert list of a pathway: points overdue, or planned and due soon, for the dashboard and alert events.

A point inside its window is not on the list: its state (``due``) already puts it on the worklist.
Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from edi_gateway.domain.pathway.aggregate import CLOCK_ACTOR, Assignee, Pathway
from edi_gateway.domain.pathway.model import Performer
from edi_gateway.domain.pathway.months import local_day
from edi_gateway.domain.pathway.points import OPEN_STATES, Point, PointState, Trigger, Window, transition


class AlertKind(StrEnum):
    """Why a point is on the alert list."""

    DUE_SOON = "due_soon"  # still planned; its window opens within the days asked for
    OVERDUE = "overdue"  # its window has ended and it is not settled


@dataclass(frozen=True, slots=True)
class PointAlert:
    """A point the dashboard should show and an alert event may be raised for (no personal data).

    Attributes:
        patient_ref: the opaque patient key.
        number: the samhandlingspunkt.
        title: what it is.
        performer: who carries it out.
        kind: due soon, or overdue.
        window: its window.
        days: for due soon, days until the window opens (at least 1); for overdue, days since it ended.
        assigned_to: who follows the pathway up.
    """

    patient_ref: str
    number: int
    title: str
    performer: Performer
    kind: AlertKind
    window: Window
    days: int
    assigned_to: Assignee | None

    @property
    def reason(self) -> str:
        """The alert in plain language, for an alert event."""
        if self.kind is AlertKind.DUE_SOON:
            return f"samhandlingspunkt {self.number} is due in {self.days} day(s) (window {self.window})"
        return f"samhandlingspunkt {self.number} is {self.days} day(s) overdue (window {self.window})"


def alerts(
    pathway: Pathway, now: datetime, *, due_soon_days: int, performer: Performer | None = None
) -> tuple[PointAlert, ...]:
    """Return the current course's points that are overdue, or planned and due within ``due_soon_days``.

    Judged by the calendar at ``now`` as ``tick`` would, so the list is right even before the next tick.

    Args:
        pathway: the pathway.
        now: the current time, timezone-aware.
        due_soon_days: how many days ahead a window opening counts as due soon (0: none).
        performer: only points this party carries out (the kommune's dashboard asks for ``kommune``).

    Raises:
        ValueError: ``due_soon_days`` is negative or ``now`` naive.
    """
    if due_soon_days < 0:
        raise ValueError("due_soon_days must not be negative")
    today = local_day(now)
    found = []
    for point in pathway.points:
        if point.state not in OPEN_STATES or performer not in (None, point.performer):
            continue
        state = transition(point, Trigger.TICK, at=now, actor=CLOCK_ACTOR)[0].state
        window = point.window
        if state is PointState.OVERDUE and window.due_to is not None:
            found.append(_alert(pathway, point, AlertKind.OVERDUE, (today - window.due_to).days))
        elif state is PointState.PLANNED and (window.due_from - today).days <= due_soon_days:
            found.append(_alert(pathway, point, AlertKind.DUE_SOON, (window.due_from - today).days))
    return tuple(found)


def _alert(pathway: Pathway, point: Point, kind: AlertKind, days: int) -> PointAlert:
    return PointAlert(
        pathway.patient_ref,
        point.number,
        point.title,
        point.performer,
        kind,
        point.window,
        days,
        pathway.assigned_to,
    )
