"""Running the intake API: in the foreground (``supplyline api serve``) or in a thread on a
loopback port (the demo, the tests, the benchmark)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.intake import app


def serve(host: str, port: int, workers: int = 1) -> None:
    """Serve until stopped; ``workers`` processes share the port (one per core is plenty)."""
    target = "api.intake:app" if workers > 1 else app
    uvicorn.run(target, host=host, port=port, workers=workers, log_level="info", access_log=False)


@contextmanager
def serving_in_thread(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the API in a background thread; yields its base URL; stops on exit."""
    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="intake-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the intake API did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
