"""A retailer sandbox: a real HTTP server on 127.0.0.1 receiving Supplyline's webhook events,
as a retailer's system should.

- It checks each POST's ``X-Supplyline-Signature`` against the raw body with the shared
  secret: a missing or wrong signature is answered ``401`` and nothing of the request is kept.
- It keeps each event once, by its id (``X-Supplyline-Event-Id``, the body's ``id``), and
  counts the copies that came again: at-least-once delivery, deduplicated by the receiver.
- Switches for the tests and the demo: ``go_down(status=503)`` answers every event with that
  status; ``go_down(drop=True)`` closes each connection without an answer;
  ``go_down(after_storing=True)`` keeps each event, then answers 503 as if the answer were lost
  (the sender tries again: a duplicate); ``come_up()`` ends them. ``answer(event_id, status)``
  answers one event with that status (a 4xx: for good; a 5xx: until ``answer_normally()``);
  ``latency_seconds`` slows every answer down.

``supplyline sandbox retailer`` runs it on its own; the tests start it in-process.
``GET /_sandbox/events`` shows what it holds; ``POST /_sandbox/down`` (``{"status": 503}`` or
``{"drop": true}``) and ``POST /_sandbox/up`` flip the switch.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from blocks.retailer_webhook import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from sandbox.loopback import JsonHandler, LoopbackHttpService

WEBHOOK_PATH = "/webhook"


@dataclass
class ReceivedEvent:
    """An event as the retailer keeps it: the first copy, and how many came again."""

    event_id: str
    event_type: str
    body: dict[str, Any]
    copies: int = 1


@dataclass
class ReceiverStats:
    requests: int = 0
    bad_signatures: int = 0
    answered_down: int = 0
    dropped: int = 0
    special_answers: int = 0
    duplicates: int = 0


@dataclass
class RetailerWebhookSandbox(LoopbackHttpService):
    """The receiver; use it as a context manager (it listens on 127.0.0.1 only)."""

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = 0
    latency_seconds: float = 0.0
    stats: ReceiverStats = field(default_factory=ReceiverStats)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, ReceivedEvent] = {}
        self._down_status: int | None = None
        self._drop = False
        self._fail_after_storing = False
        self._answers: dict[str, int] = {}

    # --- running -----------------------------------------------------------------------------

    thread_name = "retailer-webhook-sandbox"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    @property
    def url(self) -> str:
        """Where the webhook points."""
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    # --- switches ----------------------------------------------------------------------------

    def go_down(
        self, status: int = 503, *, drop: bool = False, after_storing: bool = False
    ) -> None:
        """Answer every event with ``status`` (having kept it, with ``after_storing``), or with
        ``drop`` close each connection unanswered."""
        with self._lock:
            self._drop = drop
            self._down_status = None if drop or after_storing else status
            self._fail_after_storing = after_storing

    def come_up(self) -> None:
        with self._lock:
            self._down_status, self._drop, self._fail_after_storing = None, False, False

    def answer(self, event_id: str, status: int) -> None:
        """Answer this event with ``status`` (keeping nothing) until ``answer_normally()``."""
        with self._lock:
            self._answers[event_id] = status

    def answer_normally(self) -> None:
        with self._lock:
            self._answers.clear()

    # --- what it holds -----------------------------------------------------------------------

    def events(self) -> list[ReceivedEvent]:
        """The events kept, in the order they first arrived."""
        with self._lock:
            return list(self._events.values())

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "events": [asdict(e) for e in self._events.values()],
                "stats": asdict(self.stats),
                "down": self._drop or self._fail_after_storing or self._down_status is not None,
            }

    # --- the webhook -------------------------------------------------------------------------

    def _receive(self, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]] | None:
        """The answer to one POST, or None to drop the connection unanswered."""
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        with self._lock:
            self.stats.requests += 1
            if self._drop:
                self.stats.dropped += 1
                return None
            if self._down_status is not None:
                self.stats.answered_down += 1
                return self._down_status, {"message": "the retailer's system is down"}
        if not verify_signature(self.secret, raw, headers.get(SIGNATURE_HEADER)):
            with self._lock:
                self.stats.bad_signatures += 1
            return 401, {"message": f"missing or invalid {SIGNATURE_HEADER}"}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"message": "the body is not JSON"}
        event_id = headers.get(EVENT_ID_HEADER, "")
        if not isinstance(body, dict) or body.get("id") != event_id or not event_id:
            return 400, {"message": f"{EVENT_ID_HEADER} must be the body's id"}
        with self._lock:
            status = self._answers.get(event_id)
            if status is not None:
                self.stats.special_answers += 1
                return status, {"message": f"event {event_id} is not taken now"}
            kept = self._events.get(event_id)
            if kept is not None:
                kept.copies += 1
                self.stats.duplicates += 1
            else:
                self._events[event_id] = ReceivedEvent(event_id, str(body.get("type")), body)
            if self._fail_after_storing:
                self.stats.answered_down += 1
                return 503, {"message": "kept it, but the answer is lost"}
        return 200, {"received": event_id, "duplicate": kept is not None}


class _Handler(JsonHandler):
    sandbox: RetailerWebhookSandbox

    def do_GET(self) -> None:
        if self.path == "/_sandbox/events":
            self._send(200, self.sandbox.as_dict())
        else:
            self._send(404, {"message": f"no endpoint GET {self.path}"})

    def do_POST(self) -> None:
        raw = self.read_body()
        if self.path == WEBHOOK_PATH:
            answer = self.sandbox._receive(self.headers, raw)
            if answer is None:
                self._drop()
            else:
                self._send(*answer)
        elif self.path == "/_sandbox/down":
            options = json.loads(raw or b"{}")
            self.sandbox.go_down(
                int(options.get("status", 503)),
                drop=bool(options.get("drop")),
                after_storing=bool(options.get("after_storing")),
            )
            self._send(200, {"down": True})
        elif self.path == "/_sandbox/up":
            self.sandbox.come_up()
            self._send(200, {"down": False})
        else:
            self._send(404, {"message": f"no endpoint POST {self.path}"})
