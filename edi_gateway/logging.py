"""Structured logging: one JSON line per event on stdout, pretty output only on a TTY.

Log ids and states (``request_id``, ``msg_id``, HER-ids, ``state``), never a person number, a name or
a payload. As a last line of defence a redaction processor masks any 11-digit run (the shape of a
fødselsnummer or D-nummer) in every string value before it is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_PERSON_NUMBER = re.compile(r"(?<!\d)\d{11}(?!\d)")
_MASK = "***********"


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _PERSON_NUMBER.sub(_MASK, value)
    if isinstance(value, int) and not isinstance(value, bool) and 10**10 <= value < 10**11:
        return _MASK
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


def redact_person_numbers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask every 11-digit number in the event (last line of defence)."""
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


def configure_logging(*, level: str = "INFO", stream: TextIO | None = None, json: bool | None = None) -> None:
    """Configure structlog (and the standard library's root logger) for the process.

    Args:
        level: minimum level name.
        stream: where lines go (default stdout).
        json: force JSON (True) or console rendering (False); default: JSON unless stream is a TTY.
    """
    out = stream or sys.stdout
    use_json = json if json is not None else not out.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_person_numbers,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (pika, alembic) log through the standard library; keep them quiet and on the same stream.
    logging.basicConfig(
        stream=out, level=logging.WARNING, format="%(levelname)s %(name)s %(message)s", force=True
    )


def get_logger(name: str) -> Any:
    """Return a structlog logger named after the module."""
    return structlog.get_logger(name)
