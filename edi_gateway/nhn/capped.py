"""Reading an HTTP answer with a size limit: the one guard every NHN client puts before parsing.

A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise the body is
read as a stream and reading stops as soon as it passes the limit, so a hostile or broken server
cannot make the gateway buffer more than ``limit`` bytes.
"""

from __future__ import annotations

import httpx


def read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The body, read as a stream; None as soon as it is known to exceed ``limit`` bytes."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
