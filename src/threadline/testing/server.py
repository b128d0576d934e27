"""Run a real threadline server inside a test: ``with serve_in_thread(settings) as url``.

The server listens on a free loopback port in a background thread, with its own
event loop, so tests can drive it with any HTTP client or the official SDKs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from threadline.app import create_app
from threadline.server import config
from threadline.services.catalog import Services
from threadline.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    settings: Settings, services: Services | None = None, timeout: float = 30.0
) -> Iterator[str]:
    """Start the app on ``settings.host`` and a free port; yield its ``/v1`` URL."""
    port = free_port()
    app = create_app(settings, services)
    server = uvicorn.Server(
        config(app, settings, "127.0.0.1", port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"threadline-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout)
