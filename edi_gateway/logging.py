"""Structured logging: one JSON line per event on stdout, pretty output only on a TTY.

Log ids and states (``request_id``, ``msg_id``, HER-ids, ``state``), never a person number, a name or
a payload. As a last line of defence a redaction processor masks any 11-digit run (the shape of a
fødselsnummer or D-nummer) in every string value before it is rendered. The rendered traceback
(``exc_info``, ``logger.exception``) and stack (``stack_info``) are such values too: they are turned
into text before the redaction runs. Lines from the standard library's loggers (pika, alembic,
uvicorn) go through the same processors and renderer, so they are masked and JSON alike.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

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


def _recorded_stack(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # A standard-library record carries its stack as text already; StackInfoRenderer would replace it
    # with the stack of the formatter itself.
    recorded = event_dict.get("stack_info")
    if isinstance(recorded, str):
        event_dict["stack"] = event_dict.pop("stack_info")
    return event_dict


# Tracebacks and stacks become strings first, so the redaction that follows sees (and masks) them.
_MASKED_RENDERING: tuple[Any, ...] = (
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
    redact_person_numbers,
)


def configure_logging(*, level: str = "INFO", stream: TextIO | None = None, json: bool | None = None) -> None:
    """Configure structlog (and the standard library's root logger) for the process.

    Args:
        level: minimum level name.
        stream: where lines go (default stdout).
        json: force JSON (True) or console rendering (False); default: JSON unless stream is a TTY.
    """
    out = _late_bound(stream or sys.stdout)
    use_json = json if json is not None else not out.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *_MASKED_RENDERING,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (pika, alembic, uvicorn) log through the standard library; keep them quiet, on the same
    # stream, and masked like our own lines (their tracebacks can quote a request body).
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                _recorded_stack,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_MASKED_RENDERING,
                renderer,
            ],
        )
    )
    logging.basicConfig(handlers=[handler], level=logging.WARNING, force=True)


class _StandardStream:
    """``sys.stdout`` or ``sys.stderr`` as it is when a line is written, not when logging was set up.

    Command runners (and test runners) swap the standard streams for a while; a logger bound to the
    swapped-in stream would write to it, closed, long after the swap ended.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    def write(self, text: str) -> int:
        return self._stream().write(text)

    def flush(self) -> None:
        self._stream().flush()

    def isatty(self) -> bool:
        return self._stream().isatty()


def _late_bound(stream: TextIO) -> TextIO:
    """The standard streams late-bound (see ``_StandardStream``); any other stream as it is."""
    for name in ("stdout", "stderr"):
        if stream is getattr(sys, name):
            return cast(TextIO, _StandardStream(name))
    return stream


def get_logger(name: str) -> Any:
    """Return a structlog logger named after the module."""
    return structlog.get_logger(name)
