"""The operators' clock: times they type without a zone, and times shown to them, are Norwegian time.

The store keeps UTC. Every operator-facing surface (CLI, pages) reads and shows time through here, so
``--since 2024-11-04`` on any command and the date a page shows mean the same moment. The REST API is
the exception: it speaks ISO 8601, and a time without an offset there is UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Europe/Oslo")
SHOWN = "%Y-%m-%d %H:%M:%S"


def as_utc(value: datetime, naive_zone: tzinfo = LOCAL_ZONE) -> datetime:
    """Return ``value`` in UTC; a value without a zone is read in ``naive_zone`` (default: Norwegian)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=naive_zone)
    return value.astimezone(UTC)


def parse_local(text: str, *, end_of_day: bool = False) -> datetime:
    """Read a date or date-time an operator typed; without a zone it is Norwegian time.

    Args:
        text: ``2024-11-04``, ``2024-11-04T09:30``, ``2024-11-04 09:30`` or with an offset.
        end_of_day: a bare date means the end of that day (midnight after it), for "until".

    Raises:
        ValueError: the text is not an ISO 8601 date or date-time.
    """
    text = text.strip()
    if len(text) == len("YYYY-MM-DD"):
        day = date.fromisoformat(text) + timedelta(days=1 if end_of_day else 0)
        return datetime.combine(day, time(), LOCAL_ZONE)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=LOCAL_ZONE)


def shown(moment: datetime) -> str:
    """A time as the desk's clock shows it: Norwegian time, to the second."""
    return moment.astimezone(LOCAL_ZONE).strftime(SHOWN)
