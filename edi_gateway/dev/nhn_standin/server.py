"""Run an ASGI app (a stand-in) in a real uvicorn server on a background thread, for tests and demos.

The server listens on a real socket, so clients talk real HTTP to it (connection handling, headers,
sizes and timeouts as in production). Port 0 lets the system pick a free port; the URL to use is
yielded once the server accepts connections. Leaving the block stops the server. uvicorn's own
logging set-up is not applied (``log_config=None``): its loggers go through whatever the process has
configured, and signal handlers stay those of the main thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_S = 10.0
"""The longest wait for the server to accept connections."""

SHUTDOWN_TIMEOUT_S = 5.0
"""The longest wait for the server to stop; open streams are cut after ``GRACEFUL_SHUTDOWN_S``."""

GRACEFUL_SHUTDOWN_S = 2


@contextmanager
def run_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a background thread; yield its base URL, e.g. ``http://127.0.0.1:54321``.

    Args:
        app: the ASGI application (a FastAPI app, say).
        host: the address to listen on.
        port: the port; 0 picks a free one.

    Raises:
        RuntimeError: the server did not start (the port is taken, the app's start-up failed), or did
            not within ``STARTUP_TIMEOUT_S``.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            server.run()
        except BaseException as exc:  # uvicorn exits with SystemExit when it cannot bind
            failures.append(exc)

    thread = threading.Thread(target=serve, name=f"uvicorn-{host}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            cause = failures[0] if failures else None
            raise RuntimeError(f"the server on {host}:{port} did not start") from cause
        if time.monotonic() > deadline:
            _stop(server, thread)
            raise RuntimeError(f"the server on {host}:{port} did not start within {STARTUP_TIMEOUT_S} s")
        time.sleep(0.01)
    try:
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        yield f"http://{shown_host}:{bound_port}"
    finally:
        _stop(server, thread)


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(SHUTDOWN_TIMEOUT_S)
    if thread.is_alive():
        server.force_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
