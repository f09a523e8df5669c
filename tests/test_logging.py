"""Log lines are JSON and never carry an 11-digit person number, even by mistake."""

from __future__ import annotations

import io
import json

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
