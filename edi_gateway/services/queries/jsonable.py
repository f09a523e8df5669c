"""Views as plain JSON types, for the REST API and the CLI's ``--json`` output."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from edi_gateway.errors import Problem


def to_jsonable(value: Any) -> Any:
    """Return a view (dataclasses, tuples, datetimes, enums) as plain JSON types.

    Datetimes become ISO 8601 strings; a ``Problem`` its JSON form; tuples lists.
    """
    if isinstance(value, Problem):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
