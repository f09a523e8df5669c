"""What operators ask: find messages, inspect one, report on a period, look a party up in the registers.

The answers are frozen views shared by the CLI, the web UI and the REST API. A list never carries a
full person number or a name: the patient shows as ``mask_person_id`` of the id in the stored request
(the date digits only). The full id is ``patient_id_of``, and its callers audit every use.

SQL lives in ``store/queries.py``; here the rows become views (masked patient, kommune names, AppRec
texts, one time-ordered history) and the register look-up answers in plain JSON. ``views`` holds the
view types, ``messages`` the lists and details, ``reports`` the period report and the dashboard's
figures, ``registry`` the register look-up and ``jsonable`` the JSON form of any view.
"""

from edi_gateway.services.queries.jsonable import to_jsonable
from edi_gateway.services.queries.messages import (
    MAX_PAGE,
    UNKNOWN_PATIENT,
    list_messages,
    message_detail,
    patient_id_of,
    request_body_of,
    signed_xml,
)
from edi_gateway.services.queries.registry import registry_lookup
from edi_gateway.services.queries.reports import (
    counts_by_state,
    overdue_messages,
    quiet_receivers,
    report,
    throughput_last_hour,
)
from edi_gateway.services.queries.views import (
    AppRecView,
    MessageDetail,
    MessageFilter,
    MessageRow,
    Page,
    Report,
    ReportRow,
    RoutingView,
    TimelineEntry,
)

__all__ = [
    "MAX_PAGE",
    "UNKNOWN_PATIENT",
    "AppRecView",
    "MessageDetail",
    "MessageFilter",
    "MessageRow",
    "Page",
    "Report",
    "ReportRow",
    "RoutingView",
    "TimelineEntry",
    "counts_by_state",
    "list_messages",
    "message_detail",
    "overdue_messages",
    "patient_id_of",
    "quiet_receivers",
    "registry_lookup",
    "report",
    "request_body_of",
    "signed_xml",
    "throughput_last_hour",
    "to_jsonable",
]
