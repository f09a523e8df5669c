"""The message filter from a query string: typed for the REST API, forgiving for the pages' forms.

Both give the ``MessageFilter`` the CLI uses. A form sends every field, empty ones as ``""``; the
pages read those as "no filter", and times without an offset as Norwegian time (what the operator's
clock shows). The API takes ISO 8601; a time without an offset there is UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from edi_gateway.domain.states import MessageState
from edi_gateway.errors import PermanentError
from edi_gateway.localtime import as_utc
from edi_gateway.services.queries import MessageFilter

MAX_PAGE = 500
STATES = tuple(s.value for s in MessageState)


class BadFilter(PermanentError):
    """A filter value cannot be understood; the message names the field."""


def api_filter(
    state: Annotated[str | None, Query(description="Message state, e.g. rejected_by_receiver.")] = None,
    kommunenummer: Annotated[str | None, Query(pattern=r"^\d{4}$")] = None,
    receiver_her_id: Annotated[int | None, Query(gt=0)] = None,
    samhandlingspunkt: Annotated[int | None, Query(ge=1, le=3)] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MessageFilter:
    """FastAPI dependency: the message filter of a REST call.

    Raises:
        BadFilter: the state is not a message state.
    """
    return MessageFilter(
        state=_state(state),
        kommunenummer=kommunenummer,
        receiver_her_id=receiver_her_id,
        samhandlingspunkt=samhandlingspunkt,
        since=as_utc(since, UTC) if since else None,
        until=as_utc(until, UTC) if until else None,
        request_id=request_id,
        limit=limit,
        offset=offset,
    )


def form_filter(values: Mapping[str, str], *, default_limit: int = 50) -> MessageFilter:
    """The message filter of a page's form (every field a string, empty meaning "any").

    Raises:
        BadFilter: a value cannot be read; the message names the field.
    """
    return MessageFilter(
        state=_state(_text(values, "state")),
        kommunenummer=_text(values, "kommunenummer"),
        receiver_her_id=_int(values, "receiver_her_id"),
        samhandlingspunkt=_int(values, "samhandlingspunkt"),
        since=form_time(values, "since"),
        until=form_time(values, "until"),
        request_id=_text(values, "request_id"),
        limit=min(max(_int(values, "limit") or default_limit, 1), MAX_PAGE),
        offset=max(_int(values, "offset") or 0, 0),
    )


def form_time(values: Mapping[str, str], name: str) -> datetime | None:
    """Read a time field of a form (``datetime-local`` or a date); without an offset it is Norwegian time.

    Raises:
        BadFilter: the value is not an ISO 8601 date or time.
    """
    text = _text(values, name)
    if text is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise BadFilter(f"{name}: expected a date or time like 2024-05-01T08:00") from None


def _state(value: str | None) -> str | None:
    if value is not None and value not in STATES:
        raise BadFilter(f"state: expected one of {', '.join(STATES)}")
    return value


def _text(values: Mapping[str, str], name: str) -> str | None:
    value = values.get(name, "").strip()
    return value or None


def _int(values: Mapping[str, str], name: str) -> int | None:
    text = _text(values, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadFilter(f"{name}: expected a whole number") from None
