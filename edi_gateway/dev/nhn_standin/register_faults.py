"""Faults and a request recorder, shared by the Adresseregister and Fastlegeregister stand-ins.

Both stand-ins (``ar``, ``flr``) have ``faults``: :meth:`Faults.inject` makes the next N requests time
out (answer late; one whose client gave up meanwhile is dropped with 499, and :meth:`Faults.wait_idle`
waits for those), answer an HTTP status, answer garbage, or answer more bytes than a client accepts.
And ``calls``: every request seen, as ``"METHOD /path"`` (kept by a :class:`Recorder`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

__all__ = ["Fault", "FaultKind", "Faults", "Recorder"]

FaultKind = Literal["timeout", "status", "garbage", "oversized"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault.

    Attributes:
        kind: ``timeout`` (wait ``delay_s``, then answer normally: a client with a shorter timeout
            gives up), ``status`` (answer ``status`` with an empty body; 429 and 503 carry
            ``Retry-After: 1``), ``garbage`` (200 with bytes that are neither JSON nor XML), ``oversized``
            (200 with ``size_bytes`` of padding).
        status: the status of a ``status`` fault.
        delay_s: the wait of a ``timeout`` fault.
        size_bytes: the body size of an ``oversized`` fault.
    """

    kind: FaultKind
    status: int = 500
    delay_s: float = 2.0
    size_bytes: int = 8 * 1024 * 1024


class Faults:
    """Faults to play on the next requests, in order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._delayed = 0

    def inject(
        self,
        kind: FaultKind,
        count: int = 1,
        *,
        status: int = 500,
        delay_s: float = 2.0,
        size_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        """Play ``kind`` on the next ``count`` requests (after those already queued)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(kind, status=status, delay_s=delay_s, size_bytes=size_bytes)
        with self._lock:
            self._queue.extend([fault] * count)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        """How many queued faults are still to be played."""
        with self._lock:
            return len(self._queue)

    def take(self) -> Fault | None:
        """The fault for this request, or None to answer normally."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    async def play(self, fault: Fault, request: Request, *, media_type: str) -> Response | None:
        """Play one fault: the answer to send, or None to go on and answer normally (after a delay).

        A delayed request whose client has gone meanwhile is answered 499 at once.
        """
        if fault.kind == "timeout":
            with self._lock:
                self._delayed += 1
            try:
                await asyncio.sleep(fault.delay_s)
            finally:
                with self._lock:
                    self._delayed -= 1
            try:
                await request.body()  # read (and keep) it first: is_disconnected() would swallow it
            except ClientDisconnect:
                return Response(status_code=499)
            return Response(status_code=499) if await request.is_disconnected() else None
        if fault.kind == "status":
            headers = {"Retry-After": "1"} if fault.status in (429, 503) else {}
            return Response(status_code=fault.status, headers=headers)
        if fault.kind == "garbage":
            return Response(b"\x00\xffnot {json} nor <xml", media_type=media_type)
        return Response(b" " * fault.size_bytes, media_type=media_type)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no request is held back by a ``timeout`` fault; return whether that happened in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._delayed == 0:
                    return True
            time.sleep(0.01)
        return False


class Recorder:
    """The requests a stand-in saw, as ``"METHOD /path"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[str] = []

    def add(self, request: Request) -> None:
        with self._lock:
            self._calls.append(f"{request.method} {request.url.path}")

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
