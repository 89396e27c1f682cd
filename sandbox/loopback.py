"""What the HTTP sandboxes share: serving on 127.0.0.1 from a daemon thread, started and
stopped by the test (or the CLI) that owns them."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackHttpService:
    """``start()`` serves ``handler_class()`` on 127.0.0.1:``port`` (0: a free port, which
    ``port`` then holds) in a daemon thread, each request in its own thread; ``stop()`` ends it;
    ``with service:`` does both. The handler reaches the service as ``self.sandbox``."""

    port: int
    thread_name = "loopback-http"
    _server: ThreadingHTTPServer | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        handler = type("Handler", (self.handler_class(),), {"sandbox": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, name=self.thread_name, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
