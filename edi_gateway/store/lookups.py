"""Batch look-ups by ids that other systems echo back (MsgIds, AppRec ids).

Ids are compared the way ``domain.acks.decide`` compares them: after trimming, without regard to case
(they are UUIDs, which some systems write in upper case). The store looks up a few spellings of
each id with plain equality, so the primary-key and unique indexes still serve the query.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

CHUNK = 500
"""Ids per ``IN (...)``: far below the bound-parameter limits of SQLite (32766) and psycopg (65535)."""


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of at most ``size``, in order."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def normalised(some_id: str) -> str:
    """Return the form two ids are compared in."""
    return some_id.strip().casefold()


def spellings(ids: Iterable[str]) -> list[str]:
    """Return the spellings to look up for ``ids`` (as given, trimmed lower and upper case), sorted."""
    out: set[str] = set()
    for some_id in ids:
        out.update((some_id, some_id.strip().lower(), some_id.strip().upper()))
    return sorted(out)


def by_asked(asked: Collection[str], found: Mapping[str, T]) -> dict[str, T]:
    """Key what was ``found`` (by stored id) by the ids ``asked``; an exact spelling wins over another.

    Ids asked for and not found are left out.
    """
    by_form: dict[str, str] = {}
    for stored in sorted(found):
        by_form.setdefault(normalised(stored), stored)
    out: dict[str, T] = {}
    for some_id in asked:
        stored_id = some_id if some_id in found else by_form.get(normalised(some_id))
        if stored_id is not None:
            out[some_id] = found[stored_id]
    return out
