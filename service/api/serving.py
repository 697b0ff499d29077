"""Serving an app with uvicorn on a loopback port, in a thread of this process.

The demo serves the service this way, and so do the tests and benchmarks that need a real
port (Label Studio delivering webhooks, a browser, a command-line client).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

START_TIMEOUT_S = 120.0


def start_in_thread(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve the ASGI `app` on 127.0.0.1:`port`; returns once it accepts connections."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="activelabel-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start; see the log above")
        time.sleep(0.05)
    return server, thread


@contextmanager
def served(app: Any, port: int) -> Iterator[uvicorn.Server]:
    """`app` served on 127.0.0.1:`port` while the block runs, then shut down."""
    server, thread = start_in_thread(app, port)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=60)
