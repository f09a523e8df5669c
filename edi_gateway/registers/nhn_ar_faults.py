"""How the Adresseregister's HTTP answers are classified into the gateway's errors (``edi_gateway.errors``).

For ``NhnAddressRegister`` (``nhn_ar``, whose docstring gives the whole mapping): a status other than
200 and 404 becomes ``RegisterUnavailable`` or ``RegisterRefused``; an answer larger than the limit, or
not of the shape the spec describes, becomes ``RegisterUnavailable`` saying "malformed". Messages name
the request's path with its identifiers replaced (``/api/v1/communicationparty/{id}``) and never quote
a response body: the answers carry names.
"""

from __future__ import annotations

import re
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from edi_gateway.errors import RegisterRefused, RegisterUnavailable
from edi_gateway.nhn.capped import read_capped

__all__ = ["check_status", "malformed", "path_template", "read_limited", "validated"]

_M = TypeVar("_M", bound=BaseModel)


def check_status(status: int, method: str, path: str) -> None:
    """Raise for every status but 200 and 404."""
    where = f"{method} {path_template(path)}"
    if status in (200, 404):
        return
    if status in (408, 429) or status >= 500:
        raise RegisterUnavailable(f"AR is unavailable for {where} (HTTP {status})")
    if status == 403:
        raise RegisterUnavailable(f"AR refused our client access to {where} (HTTP 403)")
    if 400 <= status < 500:
        raise RegisterRefused(f"AR refused {where} (HTTP {status})")
    raise malformed(f"{where} answered HTTP {status}")


def read_limited(response: httpx.Response, limit: int, path: str) -> bytes:
    body = read_capped(response, limit)
    if body is None:
        raise malformed(f"{path_template(path)} answered more than the limit of {limit} bytes")
    return body


def validated(model: type[_M], data: object, path: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})[:5])
        raise malformed(f"{path_template(path)} answered an unexpected shape (at {fields})") from exc


def malformed(detail: str) -> RegisterUnavailable:
    return RegisterUnavailable(f"AR answered something malformed: {detail}")


_NUMBER_SEGMENT = re.compile(r"/[0-9]+(?=/|$)")


def path_template(path: str) -> str:
    """The path with identifiers replaced (for messages): ``/api/v1/communicationparty/{id}``."""
    return _NUMBER_SEGMENT.sub("/{id}", path)
