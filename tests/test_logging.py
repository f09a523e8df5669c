"""Log lines are JSON and never carry an 11-digit person number, even by mistake."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from edi_gateway.logging import configure_logging, get_logger


def test_json_lines_and_redaction() -> None:
    """A person number passed by mistake is masked in strings, numbers and lists."""
    out = io.StringIO()
    configure_logging(stream=out, json=True)
    get_logger("t").info(
        "oops",
        text="pasient 23915700969 ferdig",
        number=23915700969,
        items=["07926217857"],
        msg_id="abc",
        her_id=8100011,
    )
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert "23915700969" not in out.getvalue() and "07926217857" not in out.getvalue()
    assert line["text"] == "pasient *********** ferdig"
    assert line["msg_id"] == "abc" and line["her_id"] == 8100011


def _boom() -> None:
    raise ValueError("no kommune for pasient 23915700969")


def test_a_logged_exception_has_its_person_number_masked_in_the_traceback() -> None:
    """logger.exception renders the traceback into the line, with the 11-digit number masked."""
    out = io.StringIO()
    configure_logging(stream=out, json=True)
    try:
        _boom()
    except ValueError:
        get_logger("t").exception("request failed", request_id="r1")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert "23915700969" not in out.getvalue()
    assert line["exception"].endswith("ValueError: no kommune for pasient ***********")
    assert "_boom" in line["exception"]  # the traceback itself is kept


def test_library_log_lines_with_tracebacks_are_masked_json_too() -> None:
    """A standard-library logger's line, its %-arguments and its exc_info traceback, is masked JSON."""
    out = io.StringIO()
    configure_logging(stream=out, json=True)
    try:
        _boom()
    except ValueError:
        logging.getLogger("pika.adapters").error("callback for %s failed", "07926217857", exc_info=True)
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert "23915700969" not in out.getvalue() and "07926217857" not in out.getvalue()
    assert (line["event"], line["level"], line["logger"]) == (
        "callback for *********** failed",
        "error",
        "pika.adapters",
    )
    assert line["exception"].endswith("ValueError: no kommune for pasient ***********")


def test_stack_info_is_rendered_and_masked() -> None:
    """stack_info=True adds the stack as text, masked like every other value, for ours and libraries' lines."""
    out = io.StringIO()
    configure_logging(stream=out, json=True)
    get_logger("t").info("where 23915700969", stack_info=True)
    logging.getLogger("alembic").warning("where %s", "07926217857", stack_info=True)
    ours, theirs = (json.loads(raw) for raw in out.getvalue().strip().splitlines()[-2:])
    assert ours["event"] == "where ***********" and "test_stack_info_is_rendered_and_masked" in ours["stack"]
    assert (
        theirs["event"] == "where ***********" and "test_stack_info_is_rendered_and_masked" in theirs["stack"]
    )
    assert "stack_info" not in ours and "stack_info" not in theirs


def test_console_rendering_masks_tracebacks_too() -> None:
    """The pretty (TTY) renderer gets the same masked traceback text."""
    out = io.StringIO()
    configure_logging(stream=out, json=False)
    try:
        _boom()
    except ValueError:
        get_logger("t").exception("request failed")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    assert "23915700969" not in out.getvalue()
    assert out.getvalue().count("ValueError: no kommune for pasient ***********") == 2


def teardown_module() -> None:
    """Later tests expect the default configuration (stdout), not this module's buffers."""
    configure_logging()


def test_logging_to_stderr_follows_the_stream_in_place_when_a_line_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Configured on sys.stderr, lines go to whatever sys.stderr is at write time, ours and libraries'."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(level="INFO", stream=sys.stderr)
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    first.close()  # a command runner's swapped-in stream, gone after its command
    try:
        get_logger("t").info("after_swap", msg_id="m1")
        logging.getLogger("pika.test").warning("library line")
    finally:
        configure_logging()
    lines = [json.loads(line) for line in later.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["after_swap", "library line"]
