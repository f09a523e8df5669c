"""Calendar arithmetic for pathway windows: whole months on dates, and the Norwegian calendar day.

A month is a calendar month, not 30 days: 12 March + 3 months is 12 June. When the target month is
shorter than the starting day, the result is that month's last day (31 January + 1 month is 28
February, or 29 in a leap year; 31 August + 1 month is 30 September). Offsets are always added to the
starting day in one step, never month by month, so 31 January + 2 months is 31 March even though
31 January + 1 month + 1 month is 28 March.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime

from edi_gateway.localtime import LOCAL_ZONE


def add_months(day: date, months: int) -> date:
    """Return ``day`` moved by ``months`` calendar months, clamped to the end of a shorter month.

    Args:
        day: the starting day.
        months: how many months to move; negative moves back.

    Raises:
        OverflowError: the result is outside the years 1–9999.
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError(f"{day.isoformat()} + {months} months is outside the calendar")
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def local_day(moment: datetime) -> date:
    """Return the calendar day ``moment`` falls on in Norway (where the pathway's windows are read).

    Raises:
        ValueError: ``moment`` has no time zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the time must be timezone-aware")
    return moment.astimezone(LOCAL_ZONE).date()
