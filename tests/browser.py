"""Headless Chromium driven over the DevTools protocol (a websocket), for tests of web UIs.

Debian's ``chromium``, started ``--headless --no-sandbox --disable-gpu
--disable-background-networking`` on a loopback DevTools port; pages are opened, read (their
rendered text, after their scripts ran) and photographed through the protocol, in real time,
so single-page apps that fetch their data after loading are seen as a person sees them.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """``with Chromium() as browser: browser.open(url); browser.wait_for_text([...])``."""

    def __init__(self, width: int = 1440, height: int = 1000) -> None:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("no chromium (Debian: apt-get install chromium)")
        self.binary = binary
        self.size = (width, height)
        self.profile = Path(tempfile.mkdtemp(prefix="supplyline-chromium-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: ClientConnection | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        width, height = self.size
        self._process = subprocess.Popen(
            [self.binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=(self.profile / "chromium.log").open("wb"),
            start_new_session=True,
        )  # fmt: skip
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        self.call("Page.enable")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _devtools_port(self) -> int:
        """Chromium writes the port it chose to DevToolsActivePort in its profile."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium exited: {log}")
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events that arrive meanwhile are skipped)."""
        assert self._socket is not None
        call_id = next(self._ids)
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """The page's rendered text, as a person reads it."""
        result = self.call(
            "Runtime.evaluate",
            expression="document.body ? document.body.innerText : ''",
            returnByValue=True,
        )
        return str(result["result"].get("value", ""))

    def wait_for_text(self, wanted: Iterable[str], timeout: float = 60) -> str:
        """The page's text once it shows every one of ``wanted``; fails naming what is missing."""
        wanted = list(wanted)
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            missing = [w for w in wanted if w not in text]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not on the page after {timeout:.0f}s: {missing}\n--- page ---\n{text[:3000]}"
                )
            time.sleep(0.5)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
