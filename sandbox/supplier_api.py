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

- ``rate_limit_per_second``: answer 429 to requests beyond this many in any second, as an API
  with a rate limit does (``stats.throttled`` counts them).

Orders have lines, each acknowledged (accepted, backordered with a date, rejected with a
reason), shipped in any number of shipments with tracking, cancelled by the supplier, delivered.
``POST /orders/status`` answers for up to ``max_status_batch`` orders at once (more is a 422);
``stats.status_calls`` and ``stats.status_batch_sizes`` count what it was asked. A cancel is
refused once anything has shipped.

``supplyline sandbox supplier`` runs it on its own; the tests and the demo start it in-process.
The endpoints under ``/_sandbox`` (unsigned, for tests and demos) show what it holds and move
orders along: ``POST /_sandbox/orders/{id}/acknowledge`` (``{"backordered": {"2":
"2026-12-24"}, "rejected": {"3": "discontinued"}}``), ``/ship`` (``{"lines": {"1": 2}}``, or
all that is open), ``/deliver`` (``{"shipment_id": ...}``, or all), ``/cancel`` (``{"lines":
{"1": 1}, "reason": ...}``, or the whole order). The same are methods of
:class:`SupplierSandbox`.
"""

from __future__ import annotations

import hmac
import json
import random
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from blocks.supplier_api import signature
from sandbox.loopback import JsonHandler, LoopbackHttpService

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
CREATE TABLE IF NOT EXISTS sandbox_line (
    order_row INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0,
    backordered INTEGER NOT NULL DEFAULT 0,
    backorder_date TEXT,
    rejected INTEGER NOT NULL DEFAULT 0,
    reject_reason TEXT,
    cancelled INTEGER NOT NULL DEFAULT 0,
    cancel_reason TEXT,
    shipped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (order_row, line_no)
);
CREATE TABLE IF NOT EXISTS sandbox_shipment (
    id INTEGER PRIMARY KEY,
    order_row INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    service TEXT,
    tracking_number TEXT NOT NULL,
    tracking_url TEXT,
    shipped_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE TABLE IF NOT EXISTS sandbox_shipment_line (
    shipment_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (shipment_id, line_no)
);
"""
# The order a sandbox order moves along (its status follows its lines).
STATUSES = (
    "received",
    "acknowledged",
    "partially_shipped",
    "shipped",
    "delivered",
    "cancelled",
)
DEFAULT_MAX_STATUS_BATCH = 100


@dataclass
class Faults:
    error_share: float = 0.0
    throttle_share: float = 0.0
    retry_after_seconds: int = 1
    drop_after_commit_share: float = 0.0
    latency_seconds: float = 0.0
    rate_limit_per_second: float | None = None
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
    status_calls: int = 0
    status_batch_sizes: list[int] = field(default_factory=list)


@dataclass
class SupplierSandbox(LoopbackHttpService):
    """The sandbox server; use it as a context manager (it listens on 127.0.0.1 only)."""

    database: Path
    port: int = 0
    client_id: str = field(default_factory=lambda: "sandbox-" + secrets.token_hex(4))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    faults: Faults = field(default_factory=Faults)
    refused_skus: set[str] = field(default_factory=set)
    max_status_batch: int = DEFAULT_MAX_STATUS_BATCH
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
        self._recent: list[float] = []

    # --- running -----------------------------------------------------------------------------

    thread_name = "supplier-sandbox"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def stop(self) -> None:
        super().stop()
        self._db.close()

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

    def order_status(self, order_id: str) -> dict[str, Any] | None:
        """The order as ``GET /orders/{id}`` answers: lines, shipments, whether it may be
        cancelled."""
        with self._lock:
            return self._status(_row_id(order_id))

    # --- moving orders along, as the supplier's warehouse would ------------------------------

    def acknowledge(
        self,
        order_id: str,
        *,
        backordered: dict[int, str] | None = None,
        rejected: dict[int, str] | None = None,
    ) -> dict[str, Any]:
        """Acknowledge every open line: accepted, or backordered until a date, or rejected for
        a reason (by line number)."""
        backordered, rejected = backordered or {}, rejected or {}
        row_id = _row_id(order_id)
        with self._lock:
            for line_no, quantity, cancelled, shipped in self._lines(row_id):
                open_quantity = quantity - cancelled
                values = (0, 0, None, 0, None)
                if line_no in rejected:
                    values = (0, 0, None, open_quantity - shipped, rejected[line_no])
                elif line_no in backordered:
                    values = (shipped, open_quantity - shipped, backordered[line_no], 0, None)
                else:
                    values = (open_quantity, 0, None, 0, None)
                self._db.execute(
                    "UPDATE sandbox_line SET accepted = ?, backordered = ?, backorder_date = ?,"
                    " rejected = ?, reject_reason = ? WHERE order_row = ? AND line_no = ?",
                    (*values, row_id, line_no),
                )
            return self._settle(row_id)

    def ship(
        self,
        order_id: str,
        lines: dict[int, int] | None = None,
        *,
        carrier: str = "UPS",
        service: str | None = "Ground",
        tracking_number: str | None = None,
        tracking_url: str | None = None,
    ) -> dict[str, Any]:
        """Ship ``lines`` (line number → quantity), or everything still open; returns the
        shipment. Backordered units ship too (they became available)."""
        row_id = _row_id(order_id)
        with self._lock:
            open_by_line = {
                line_no: quantity - cancelled - rejected - shipped
                for line_no, quantity, cancelled, rejected, shipped in self._db.execute(
                    "SELECT line_no, quantity, cancelled, rejected, shipped FROM sandbox_line"
                    " WHERE order_row = ?",
                    (row_id,),
                )
            }
            wanted = lines if lines is not None else open_by_line
            wanted = {n: q for n, q in wanted.items() if q > 0}
            for line_no, quantity in wanted.items():
                if quantity > open_by_line.get(line_no, 0):
                    raise ValueError(
                        f"line {line_no} has {open_by_line.get(line_no, 0)} open, not {quantity}"
                    )
            if not wanted:
                raise ValueError(f"order {order_id} has nothing open to ship")
            cursor = self._db.execute(
                "INSERT INTO sandbox_shipment (order_row, carrier, service, tracking_number,"
                " tracking_url, shipped_at) VALUES (?, ?, ?, '', ?, ?)",
                (row_id, carrier, service, tracking_url, _now_iso()),
            )
            shipment_row = cursor.lastrowid or 0
            tracking = tracking_number or f"1Z{shipment_row:016d}"
            self._db.execute(
                "UPDATE sandbox_shipment SET tracking_number = ?, tracking_url = ? WHERE id = ?",
                (
                    tracking,
                    tracking_url or f"https://track.example/{carrier.lower()}/{tracking}",
                    shipment_row,
                ),
            )
            for line_no, quantity in wanted.items():
                self._db.execute(
                    "INSERT INTO sandbox_shipment_line (shipment_id, line_no, quantity)"
                    " VALUES (?, ?, ?)",
                    (shipment_row, line_no, quantity),
                )
                accepted, backordered, shipped = self._db.execute(
                    "SELECT accepted, backordered, shipped FROM sandbox_line"
                    " WHERE order_row = ? AND line_no = ?",
                    (row_id, line_no),
                ).fetchone()
                shipped += quantity
                # Backordered units that ship became available: they are accepted now.
                filled = max(0, shipped - accepted)
                self._db.execute(
                    "UPDATE sandbox_line SET shipped = ?, accepted = ?, backordered = ?"
                    " WHERE order_row = ? AND line_no = ?",
                    (shipped, accepted + filled, max(0, backordered - filled), row_id, line_no),
                )
            self._settle(row_id)
            status = self._status(row_id) or {}
        wanted_id = _shipment_id(shipment_row)
        return next(s for s in status["shipments"] if s["shipment_id"] == wanted_id)

    def deliver(self, order_id: str, shipment_id: str | None = None) -> dict[str, Any]:
        """Mark one shipment delivered, or all of the order's."""
        row_id = _row_id(order_id)
        with self._lock:
            query = "UPDATE sandbox_shipment SET delivered_at = ? WHERE order_row = ?"
            values: tuple[Any, ...] = (_now_iso(), row_id)
            if shipment_id is not None:
                query += " AND id = ?"
                values += (_row_id(shipment_id),)
            self._db.execute(query + " AND delivered_at IS NULL", values)
            return self._settle(row_id)

    def cancel_lines(
        self, order_id: str, lines: dict[int, int] | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        """The supplier cancels ``lines`` (line number → quantity more), or all that is open."""
        row_id = _row_id(order_id)
        with self._lock:
            for line_no, quantity, cancelled, shipped in self._lines(row_id):
                rejected = self._db.execute(
                    "SELECT rejected FROM sandbox_line WHERE order_row = ? AND line_no = ?",
                    (row_id, line_no),
                ).fetchone()[0]
                open_quantity = quantity - cancelled - rejected - shipped
                more = open_quantity if lines is None else min(lines.get(line_no, 0), open_quantity)
                if more > 0:
                    self._db.execute(
                        "UPDATE sandbox_line SET cancelled = cancelled + ?, cancel_reason = ?"
                        " WHERE order_row = ? AND line_no = ?",
                        (more, reason, row_id, line_no),
                    )
            return self._settle(row_id)

    def advance(self, order_id: str, status: str) -> dict[str, Any]:
        """Move an order straight to ``status`` (acknowledged, shipped, delivered, cancelled)."""
        if status == "acknowledged":
            return self.acknowledge(order_id)
        if status == "shipped":
            self.ship(order_id)
            return self.order_status(order_id) or {}
        if status == "delivered":
            return self.deliver(order_id)
        if status == "cancelled":
            return self.cancel_lines(order_id, reason="cancelled by the supplier")
        raise ValueError(
            f"status {status!r}: an order moves to acknowledged, shipped, delivered or cancelled"
        )

    def _lines(self, row_id: int) -> list[tuple[int, int, int, int]]:
        rows = self._db.execute(
            "SELECT line_no, quantity, cancelled, shipped FROM sandbox_line WHERE order_row = ?"
            " ORDER BY line_no",
            (row_id,),
        ).fetchall()
        if not rows:
            raise ValueError(f"no order {_order_id(row_id)}")
        return rows

    def _settle(self, row_id: int) -> dict[str, Any]:
        """The order's status from its lines and shipments (the caller holds the lock)."""
        status = self._status(row_id)
        if status is None:
            raise ValueError(f"no order {_order_id(row_id)}")
        lines = status["lines"]
        live = [line["quantity"] - line["cancelled"] - line["rejected"] for line in lines]
        shipments = status["shipments"]
        if all(n == 0 for n in live):
            new = "cancelled"
        elif all(line["shipped"] >= n for line, n in zip(lines, live, strict=True)):
            delivered = all(s["delivered_at"] for s in shipments)
            new = "delivered" if delivered else "shipped"
        elif any(line["shipped"] for line in lines):
            new = "partially_shipped"
        elif any(line["accepted"] or line["backordered"] or line["rejected"] for line in lines):
            new = "acknowledged"
        else:
            new = "received"
        self._db.execute(
            "UPDATE sandbox_order SET status = ?, updated_at = ? WHERE id = ?",
            (new, time.time(), row_id),
        )
        return self._status(row_id) or {}

    def _status(self, row_id: int) -> dict[str, Any] | None:
        """An order's full status (the caller holds the lock)."""
        row = self._db.execute(
            "SELECT id, po_number, status FROM sandbox_order WHERE id = ?", (row_id,)
        ).fetchone()
        if row is None:
            return None
        lines = [
            {
                "line_no": r[0],
                "sku": r[1],
                "quantity": r[2],
                "accepted": r[3],
                "backordered": r[4],
                "backorder_date": r[5],
                "rejected": r[6],
                "reject_reason": r[7],
                "cancelled": r[8],
                "cancel_reason": r[9],
                "shipped": r[10],
            }
            for r in self._db.execute(
                "SELECT line_no, sku, quantity, accepted, backordered, backorder_date, rejected,"
                " reject_reason, cancelled, cancel_reason, shipped FROM sandbox_line"
                " WHERE order_row = ? ORDER BY line_no",
                (row_id,),
            )
        ]
        skus = {line["line_no"]: line["sku"] for line in lines}
        shipments = []
        for s in self._db.execute(
            "SELECT id, carrier, service, tracking_number, tracking_url, shipped_at, delivered_at"
            " FROM sandbox_shipment WHERE order_row = ? ORDER BY id",
            (row_id,),
        ).fetchall():
            shipments.append(
                {
                    "shipment_id": _shipment_id(s[0]),
                    "carrier": s[1],
                    "service": s[2],
                    "tracking_number": s[3],
                    "tracking_url": s[4],
                    "shipped_at": s[5],
                    "delivered_at": s[6],
                    "lines": [
                        {"line_no": n, "sku": skus.get(n), "quantity": q}
                        for n, q in self._db.execute(
                            "SELECT line_no, quantity FROM sandbox_shipment_line"
                            " WHERE shipment_id = ? ORDER BY line_no",
                            (s[0],),
                        )
                    ],
                }
            )
        shipped = any(line["shipped"] for line in lines)
        return {
            "order_id": _order_id(row[0]),
            "po_number": row[1],
            "status": row[2],
            "cancellable": row[2] != "cancelled" and not shipped,
            "not_cancellable_reason": (
                f"order {_order_id(row[0])} is {row[2]}: it can no longer be cancelled"
                if shipped
                else None
            ),
            "lines": lines,
            "shipments": shipments,
        }

    # --- the API -----------------------------------------------------------------------------

    def _draw_fault(self, creating: bool) -> str | None:
        with self._lock:
            faults = self.faults
            draw = self._random.random()
            drop = creating and self._random.random() < faults.drop_after_commit_share
            if self._over_rate_limit(faults.rate_limit_per_second):
                return "throttle"
        if draw < faults.error_share:
            return "error"
        if draw < faults.error_share + faults.throttle_share:
            return "throttle"
        return "drop" if drop else None

    def _over_rate_limit(self, per_second: float | None) -> bool:
        """Whether this request is beyond the limit in the last second (the caller holds the
        lock); requests refused do not count against the limit."""
        if not per_second:
            return False
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < 1.0]
        if len(self._recent) >= per_second:
            return True
        self._recent.append(now)
        return False

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
            self._db.executemany(
                "INSERT INTO sandbox_line (order_row, line_no, sku, quantity) VALUES (?, ?, ?, ?)",
                [
                    (row_id, line.get("line_no") or number, line["sku"], line["quantity"])
                    for number, line in enumerate(body["lines"], start=1)
                ],
            )
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
            return self._status(_row_id(order_id))

    def _statuses(self, body: Any) -> tuple[int, dict[str, Any]]:
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return 400, {"code": "bad_request", "message": "order_ids must be a list of ids"}
        with self._lock:
            self.stats.status_calls += 1
            self.stats.status_batch_sizes.append(len(ids))
        if len(ids) > self.max_status_batch:
            return 422, {
                "code": "too_many",
                "message": f"at most {self.max_status_batch} orders a call, not {len(ids)}",
            }
        found, missing = [], []
        with self._lock:
            for order_id in ids:
                status = self._status(_row_id(order_id))
                (found if status else missing).append(status or order_id)
        return 200, {"orders": found, "not_found": missing}

    def _cancel(self, order_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            status = self._status(_row_id(order_id))
            if status is None:
                return 404, {"code": "not_found", "message": f"no order {order_id}"}
            if status["status"] == "cancelled":
                return 200, {"order_id": order_id, "status": "cancelled"}
            if not status["cancellable"]:
                return 409, {
                    "code": "not_cancellable",
                    "message": status["not_cancellable_reason"],
                }
            self._db.execute(
                "UPDATE sandbox_line SET cancelled = quantity - rejected,"
                " cancel_reason = 'cancelled on request' WHERE order_row = ?",
                (_row_id(order_id),),
            )
            self._settle(_row_id(order_id))
        return 200, {"order_id": order_id, "status": "cancelled"}


def _order_id(row_id: int | None) -> str:
    return f"SO-{row_id:07d}"


def _row_id(order_id: str) -> int:
    try:
        return int(order_id.removeprefix("SO-").removeprefix("SH-"))
    except ValueError:
        return -1


def _shipment_id(row_id: int) -> str:
    return f"SH-{row_id:07d}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def _admin_action(
    sandbox: SupplierSandbox, order_id: str, action: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``POST /_sandbox/orders/{id}[/action]``: move an order along (see the module doc)."""

    def by_line(name: str) -> dict[int, Any] | None:
        value = body.get(name)
        return None if value is None else {int(n): v for n, v in dict(value).items()}

    if action == "":
        return sandbox.advance(order_id, str(body.get("status", "")))
    if action == "acknowledge":
        return sandbox.acknowledge(
            order_id, backordered=by_line("backordered"), rejected=by_line("rejected")
        )
    if action == "ship":
        return sandbox.ship(
            order_id,
            by_line("lines"),
            **{k: body[k] for k in ("carrier", "service", "tracking_number") if k in body},
        )
    if action == "deliver":
        return sandbox.deliver(order_id, body.get("shipment_id"))
    if action == "cancel":
        return sandbox.cancel_lines(order_id, by_line("lines"), reason=body.get("reason"))
    raise ValueError(f"no action {action!r}: acknowledge, ship, deliver or cancel")


class _Handler(JsonHandler):
    sandbox: SupplierSandbox

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        sandbox = self.sandbox
        parts = urlsplit(self.path)
        path = parts.path
        raw = self.read_body()
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
        elif method == "POST" and route == "/orders/status":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                self._send(400, {"code": "bad_json", "message": "the body is not JSON"})
                return
            self._send(*sandbox._statuses(body))
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
            order_id, _, action = path.removeprefix("/_sandbox/orders/").partition("/")
            body = json.loads(raw or b"{}")
            try:
                self._send(200, _admin_action(sandbox, order_id, action, body))
            except ValueError as exc:
                self._send(422, {"code": "bad_request", "message": str(exc)})
        else:
            self._send(404, {"code": "not_found", "message": f"no endpoint {method} {path}"})
