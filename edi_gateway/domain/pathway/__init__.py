"""The kommune side of "pakkeforløp hjem for pasienter med kreft": each patient's samhandlingspunkter.

* ``model``: pathway models parsed and checked from YAML text (points, performers, windows); the
  files (``pathway_models/*.yaml``) are read by ``services.pathway_models``.
* ``months``: calendar months on dates (clamped to the month's end) and the Norwegian day of a time.
* ``points``: one point's window and states, and the pure transition function with its rules.
* ``aggregate``: one patient's pathway: open, continue with a message, restart after relapse,
  operators' moves, assignment and the clock's tick.
* ``alerts``: the points overdue or due soon, for the dashboard and alert events.

Pure: no I/O, no clock.
"""

from edi_gateway.domain.pathway.aggregate import (
    CLOCK_ACTOR,
    RELAPSE_REASON,
    Assignee,
    AssigneeKind,
    Course,
    DiagnosisConflict,
    Pathway,
    PathwayMessage,
    assign,
    continue_pathway,
    mark,
    open_from_message,
    open_pathway,
    restart_pathway,
    tick,
)
from edi_gateway.domain.pathway.alerts import AlertKind, PointAlert, alerts
from edi_gateway.domain.pathway.model import (
    DEFAULT_MODEL,
    NAME_PATTERN,
    PathwayError,
    PathwayModel,
    PathwayModelInvalid,
    Performer,
    PointSpec,
    UnknownPathwayModel,
    WindowSpec,
    model_from_document,
    parse_model,
)
from edi_gateway.domain.pathway.months import add_months, local_day
from edi_gateway.domain.pathway.points import (
    OPEN_STATES,
    REOPENABLE_STATES,
    AuditEntry,
    Point,
    PointState,
    TransitionRefused,
    Trigger,
    Window,
    compute_windows,
    operator_moves,
    transition,
)

__all__ = [
    "CLOCK_ACTOR",
    "DEFAULT_MODEL",
    "NAME_PATTERN",
    "OPEN_STATES",
    "RELAPSE_REASON",
    "REOPENABLE_STATES",
    "AlertKind",
    "Assignee",
    "AssigneeKind",
    "AuditEntry",
    "Course",
    "DiagnosisConflict",
    "Pathway",
    "PathwayError",
    "PathwayMessage",
    "PathwayModel",
    "PathwayModelInvalid",
    "Performer",
    "Point",
    "PointAlert",
    "PointSpec",
    "PointState",
    "TransitionRefused",
    "Trigger",
    "UnknownPathwayModel",
    "Window",
    "WindowSpec",
    "add_months",
    "alerts",
    "assign",
    "compute_windows",
    "continue_pathway",
    "local_day",
    "mark",
    "model_from_document",
    "open_from_message",
    "open_pathway",
    "operator_moves",
    "parse_model",
    "restart_pathway",
    "tick",
    "transition",
]
