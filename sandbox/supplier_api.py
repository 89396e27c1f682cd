"""A supplier sandbox: a real HTTP server speaking the supplier order API of
``blocks.supplier_api``, over its own SQLite file, with switches for faults.

Like the wholesale APIs it imitates, it does **not** deduplicate: every accepted create is a new
order, so a sender that repeats itself shows up as a duplicate here. Faults are drawn from a
seeded random generator per request:

- ``error_share``: answer 503 without doing anything;
- ``throttle_share``: answer 429 with ``Retry-After: retry_after_seconds``;
- ``drop_after_commit_share`` (creates only): store the order, then drop the connection
  without an answer, as a crash or a lost packet would;
- ``latency_seconds``: wait before answering.

``supplyline sandbox supplier`` runs it on its own; the tests and the demo start it in-process.
The endpoints under ``/_sandbox`` (unsigned, for tests and demos) show what it holds and move
orders along (acknowledge, ship, deliver).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import random
import secrets
import socket
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from blocks.supplier_api import signature

API_PREFIX = "/v1"
MAX_CLOCK_SKEW_SECONDS = 300
SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_order (
    id INTEGER PRIMARY KEY,
    po_number TEXT NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sandbox_order_po ON sandbox_order (po_number);
"""
# The order a sandbox order moves along; a cancel is allowed before shipping starts.
STATUSES = ("received", "acknowledged", "shipped", "delivered", "cancelled")
CANCELLABLE = ("received", "acknowledged")


@dataclass
class Faults:
    error_share: float = 0.0
    throttle_share: float = 0.0
    retry_after_seconds: int = 1
    drop_after_commit_share: float = 0.0
    latency_seconds: float = 0.0
    seed: int | None = None


@dataclass
class SandboxStats:
    """What the sandbox did, per kind of answer: for tests to see that faults happened."""

    requests: int = 0
    creates_stored: int = 0
    errors: int = 0
    throttled: int = 0
    dropped_after_commit: int = 0
    unauthorized: int = 0
    rejected: int = 0


@dataclass
class SupplierSandbox:
    """The sandbox server; use it as a context manager (it listens on 127.0.0.1 only)."""

    database: Path
    port: int = 0
    client_id: str = field(default_factory=lambda: "sandbox-" + secrets.token_hex(4))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    faults: Faults = field(default_factory=Faults)
    refused_skus: set[str] = field(default_factory=set)
    stats: SandboxStats = field(default_factory=SandboxStats)

    def __post_init__(self) -> None:
        self.database = Path(self.database)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._nonces: dict[str, float] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------------

    def start(self) -> SupplierSandbox:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="supplier-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._db.close()

    def __enter__(self) -> SupplierSandbox:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API's base URL, for a ``SupplierApi`` block."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    # --- what it holds -----------------------------------------------------------------------

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, po_number, idempotency_key, status, body FROM sandbox_order ORDER BY id"
            ).fetchall()
        return [
            {
                "order_id": _order_id(row[0]),
                "po_number": row[1],
                "idempotency_key": row[2],
                "status": row[3],
                "body": json.loads(row[4]),
            }
            for row in rows
        ]

    def advance(self, order_id: str, status: str) -> dict[str, Any]:
        """Move an order along, as the supplier's warehouse would."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        with self._lock:
            self._db.execute(
                "UPDATE sandbox_order SET status = ?, updated_at = ? WHERE id = ?",
                (status, time.time(), _row_id(order_id)),
            )
        return self._order(order_id) or {}

    # --- the API -----------------------------------------------------------------------------

    def _draw_fault(self, creating: bool) -> str | None:
        with self._lock:
            faults = self.faults
            draw = self._random.random()
            drop = creating and self._random.random() < faults.drop_after_commit_share
        if draw < faults.error_share:
            return "error"
        if draw < faults.error_share + faults.throttle_share:
            return "throttle"
        return "drop" if drop else None

    def _authorized(self, headers: Any, path: str) -> bool:
        client_id = headers.get("X-Client-Id", "")
        timestamp = headers.get("X-Timestamp", "")
        nonce = headers.get("X-Nonce", "")
        given = headers.get("X-Signature", "")
        if not (client_id and timestamp and nonce and given):
            return False
        if not hmac.compare_digest(client_id, self.client_id):
            return False
        try:
            sent_at = int(timestamp) / 1000
        except ValueError:
            return False
        now = time.time()
        if abs(now - sent_at) > MAX_CLOCK_SKEW_SECONDS:
            return False
        expected = signature(self.client_secret, client_id, path, timestamp, nonce)
        if not hmac.compare_digest(expected, given):
            return False
        with self._lock:
            if nonce in self._nonces:
                return False  # a replayed request
            self._nonces[nonce] = now
            if len(self._nonces) > 100_000:
                cutoff = now - MAX_CLOCK_SKEW_SECONDS
                self._nonces = {n: t for n, t in self._nonces.items() if t >= cutoff}
        return True

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problems = _order_problems(body, self.refused_skus)
        if problems:
            return 422, {"code": "invalid_order", "message": "; ".join(problems)}
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO sandbox_order (po_number, idempotency_key, status, body, created_at,"
                " updated_at) VALUES (?, ?, 'received', ?, ?, ?)",
                (body["po_number"], body.get("idempotency_key"), json.dumps(body), now, now),
            )
            row_id = cursor.lastrowid
        return 201, {
            "order_id": _order_id(row_id),
            "po_number": body["po_number"],
            "status": "received",
        }

    def _find(self, po_number: str) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, po_number, status FROM sandbox_order WHERE po_number = ? ORDER BY id",
                (po_number,),
            ).fetchall()
        return {
            "orders": [
                {"order_id": _order_id(r[0]), "po_number": r[1], "status": r[2]} for r in rows
            ]
        }

    def _order(self, order_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, po_number, status FROM sandbox_order WHERE id = ?", (_row_id(order_id),)
            ).fetchone()
        if row is None:
            return None
        return {"order_id": _order_id(row[0]), "po_number": row[1], "status": row[2]}

    def _cancel(self, order_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            row = self._db.execute(
                "SELECT status FROM sandbox_order WHERE id = ?", (_row_id(order_id),)
            ).fetchone()
            if row is None:
                return 404, {"code": "not_found", "message": f"no order {order_id}"}
            if row[0] == "cancelled":
                return 200, {"order_id": order_id, "status": "cancelled"}
            if row[0] not in CANCELLABLE:
                return 409, {
                    "code": "not_cancellable",
                    "message": f"order {order_id} is {row[0]}: it can no longer be cancelled",
                }
            self._db.execute(
                "UPDATE sandbox_order SET status = 'cancelled', updated_at = ? WHERE id = ?",
                (time.time(), _row_id(order_id)),
            )
        return 200, {"order_id": order_id, "status": "cancelled"}


def _order_id(row_id: int | None) -> str:
    return f"SO-{row_id:07d}"


def _row_id(order_id: str) -> int:
    try:
        return int(order_id.removeprefix("SO-"))
    except ValueError:
        return -1


def _order_problems(body: Any, refused_skus: set[str]) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = []
    if not isinstance(body.get("po_number"), str) or not body["po_number"]:
        problems.append("po_number is required")
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        problems.append("lines must be a non-empty list")
        return problems
    for index, line in enumerate(lines, start=1):
        if not isinstance(line, dict):
            problems.append(f"line {index} must be an object")
            continue
        sku = line.get("sku")
        if not isinstance(sku, str) or not sku:
            problems.append(f"line {index}: sku is required")
        elif sku in refused_skus:
            problems.append(f"line {index}: SKU {sku} is not sold to this account")
        quantity = line.get("quantity")
        if not isinstance(quantity, int) or quantity < 1:
            problems.append(f"line {index}: quantity must be a whole number of at least 1")
    return problems


class _Handler(BaseHTTPRequestHandler):
    sandbox: SupplierSandbox
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a load test makes thousands of requests."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        sandbox = self.sandbox
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path.startswith("/_sandbox/"):
            self._admin(method, path, raw)
            return
        with sandbox._lock:
            sandbox.stats.requests += 1
        if sandbox.faults.latency_seconds:
            time.sleep(sandbox.faults.latency_seconds)
        if not path.startswith(API_PREFIX + "/") or not sandbox._authorized(self.headers, path):
            with sandbox._lock:
                sandbox.stats.unauthorized += 1
            self._send(401, {"code": "unauthorized", "message": "missing or invalid signature"})
            return
        route = path.removeprefix(API_PREFIX)
        creating = method == "POST" and route == "/orders"
        fault = sandbox._draw_fault(creating)
        if fault == "error":
            with sandbox._lock:
                sandbox.stats.errors += 1
            self._send(503, {"code": "unavailable", "message": "try again later"})
            return
        if fault == "throttle":
            with sandbox._lock:
                sandbox.stats.throttled += 1
            self._send(
                429,
                {"code": "rate_limited", "message": "too many requests"},
                {"Retry-After": str(sandbox.faults.retry_after_seconds)},
            )
            return
        query = parse_qs(parts.query)
        if creating:
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                self._send(400, {"code": "bad_json", "message": "the body is not JSON"})
                return
            status, answer = sandbox._create(body)
            if status >= 400:
                with sandbox._lock:
                    sandbox.stats.rejected += 1
            else:
                with sandbox._lock:
                    sandbox.stats.creates_stored += 1
            if fault == "drop" and status < 400:
                with sandbox._lock:
                    sandbox.stats.dropped_after_commit += 1
                self._drop()
                return
            self._send(status, answer)
        elif method == "GET" and route == "/orders":
            self._send(200, sandbox._find(query.get("po_number", [""])[0]))
        elif method == "GET" and route.startswith("/orders/"):
            order = sandbox._order(route.removeprefix("/orders/"))
            if order is None:
                self._send(404, {"code": "not_found", "message": "no such order"})
            else:
                self._send(200, order)
        elif method == "POST" and route.startswith("/orders/") and route.endswith("/cancel"):
            self._send(*sandbox._cancel(route.removeprefix("/orders/").removesuffix("/cancel")))
        else:
            self._send(404, {"code": "not_found", "message": f"no endpoint {method} {path}"})

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        sandbox = self.sandbox
        if method == "GET" and path == "/_sandbox/orders":
            self._send(200, {"orders": sandbox.orders(), "stats": asdict(sandbox.stats)})
        elif method == "POST" and path == "/_sandbox/faults":
            sandbox.set_faults(Faults(**json.loads(raw or b"{}")))
            self._send(200, asdict(sandbox.faults))
        elif method == "POST" and path.startswith("/_sandbox/orders/"):
            order_id = path.removeprefix("/_sandbox/orders/")
            status = json.loads(raw or b"{}").get("status", "")
            try:
                self._send(200, sandbox.advance(order_id, status))
            except ValueError as exc:
                self._send(422, {"code": "bad_status", "message": str(exc)})
        else:
            self._send(404, {"code": "not_found", "message": f"no endpoint {method} {path}"})

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
