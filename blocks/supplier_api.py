"""A supplier's order API, modelled on wholesale drop-ship APIs (GigaB2B style).

Every request is signed: ``X-Signature`` is the base64 HMAC-SHA256, keyed with the client
secret, of ``client_id&path&timestamp&nonce`` (``X-Client-Id``, ``X-Timestamp`` in epoch
milliseconds, ``X-Nonce`` a fresh random hex string).

Such APIs may not deduplicate orders, so sending a PO is written to be safe to repeat:

- a PO that an earlier attempt may have sent is looked up by its number first;
- after an ambiguous failure (a timeout, a dropped connection, a 5xx: the supplier may have
  stored the order before the answer was lost) the PO is looked up before it is sent again;
- a 429 is waited out (its ``Retry-After``) and sent again: the supplier did nothing;
- any other 4xx is final: :class:`SupplierRejected` with the supplier's message.

A send never starts a request that could outlive the caller's deadline (the PO's send lease),
so a second sender, which only starts once the lease has run out, never overlaps the first.

Fulfillment reads the status of open orders in batches (``POST /orders/status`` with at most
``max_pos_per_status_call`` order ids), and every request of a client keeps to the block's
``requests_per_second``, whatever the number of threads sharing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

SIGNATURE_HEADERS = ("X-Client-Id", "X-Timestamp", "X-Nonce", "X-Signature")


def signature(secret: str, client_id: str, path: str, timestamp: str, nonce: str) -> str:
    """The request signature both sides compute."""
    message = f"{client_id}&{path}&{timestamp}&{nonce}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(client_id: str, secret: str, path: str) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    nonce = secrets.token_hex(16)
    return {
        "X-Client-Id": client_id,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": signature(secret, client_id, path, timestamp, nonce),
    }


class SupplierApiError(RuntimeError):
    """The supplier's API could not be used now; the PO may be sent again later."""


class SupplierRejected(SupplierApiError):
    """The supplier refused the request (a 4xx other than 429): sending it again cannot help."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"the supplier refused it (HTTP {status_code}): {message}")
        self.status_code = status_code
        self.supplier_message = message


class SendDeadline(SupplierApiError):
    """No time is left to send before the deadline: the PO waits for the next run."""


@dataclass(frozen=True)
class SupplierOrder:
    """An order as the supplier knows it."""

    order_id: str
    po_number: str
    status: str
    found_existing: bool = False


class SupplierApi(Block):
    """A supplier's REST order API, with signed requests, retries and exactly-once sends.

    Example:
        ```python
        from blocks.supplier_api import SupplierApi

        api = SupplierApi.load("supplier-api-acme")
        with api.client() as client:
            order = client.find_order("PO-ACME-00000042")
        ```
    """

    _block_type_name: ClassVar[str] = "Supplyline Supplier API"
    _block_type_slug: ClassVar[str] = "supplyline-supplier-api"
    _description: ClassVar[str] = (
        "A supplier's order API (GigaB2B style): HMAC-signed requests to create, look up, "
        "track and cancel purchase orders, sent exactly once through retries."
    )

    base_url: str = Field(description="The API's base URL, e.g. https://api.acme.example/v1.")
    client_id: str = Field(description="The client ID the supplier issued.")
    client_secret: SecretStr = Field(description="The client secret; it signs every request.")
    timeout_seconds: float = Field(
        default=10, gt=0, description="Seconds a request may take to connect or to answer."
    )
    max_attempts: int = Field(
        default=6, ge=1, description="Tries per request before the PO waits for the next run."
    )
    retry_delay_seconds: float = Field(
        default=0.5, ge=0, description="First backoff delay; it doubles, with jitter."
    )
    max_retry_delay_seconds: float = Field(
        default=30, gt=0, description="Longest wait between tries (and for a Retry-After)."
    )
    max_pos_per_status_call: int = Field(
        default=100, ge=1, le=1000, description="POs per status request, the API's limit."
    )
    max_concurrent_requests: int = Field(
        default=8, ge=1, le=64, description="Requests in flight at once to this supplier."
    )
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description="The API's rate limit: requests a second at most, paced by the client "
        "(none: no pacing).",
    )

    @contextmanager
    def client(self) -> Iterator[SupplierApiClient]:
        """A client holding a pool of keep-alive connections, closed on exit."""
        limits = httpx.Limits(
            max_connections=self.max_concurrent_requests,
            max_keepalive_connections=self.max_concurrent_requests,
        )
        with httpx.Client(
            base_url=self.base_url.rstrip("/"),
            timeout=httpx.Timeout(self.timeout_seconds),
            limits=limits,
        ) as http:
            yield SupplierApiClient(self, http)


class SupplierApiClient:
    """Requests to one supplier's API; thread-safe (one client serves a pool of senders)."""

    def __init__(self, settings: SupplierApi, http: httpx.Client) -> None:
        self._settings = settings
        self._http = http
        self._path_prefix = httpx.URL(settings.base_url.rstrip("/")).path.rstrip("/")
        self._random = random.Random()
        self._random_lock = threading.Lock()
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0

    # --- the exactly-once send ---------------------------------------------------------------

    def send_po(
        self, po: dict[str, Any], *, maybe_sent_before: bool, deadline: float | None = None
    ) -> SupplierOrder:
        """Create the PO at the supplier unless it is there already; see the module doc.

        ``po`` is the body of the create request (it holds ``po_number``); ``deadline`` is a
        ``time.monotonic()`` value no request may outlive.
        """
        po_number = po["po_number"]
        check_first = maybe_sent_before
        last_problem = "no attempt made"
        for attempt in range(1, self._settings.max_attempts + 1):
            if check_first:
                existing = self.find_order(po_number, deadline=deadline)
                if existing is not None:
                    return existing
            self._check_deadline(deadline)
            try:
                response = self._request("POST", "/orders", json=po)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc or 'connection lost'}"
                check_first = True
            else:
                if response.status_code in (200, 201):
                    body = response.json()
                    return SupplierOrder(
                        order_id=str(body["order_id"]),
                        po_number=po_number,
                        status=str(body.get("status", "received")),
                    )
                if response.status_code == 429:
                    last_problem = "HTTP 429 Too Many Requests"
                    self._pause(attempt, response, deadline)
                    continue
                if response.status_code >= 500:
                    last_problem = f"HTTP {response.status_code}: {_message(response)}"
                    check_first = True
                else:
                    raise SupplierRejected(response.status_code, _message(response))
            self._pause(attempt, None, deadline)
        raise SupplierApiError(
            f"PO {po_number} not sent after {self._settings.max_attempts} tries "
            f"(last: {last_problem}); it is sent again on the next run"
        )

    def find_order(self, po_number: str, *, deadline: float | None = None) -> SupplierOrder | None:
        """The supplier's order for our PO number, or None if it has none."""
        response = self._with_retries(
            "GET", "/orders", params={"po_number": po_number}, deadline=deadline
        )
        orders = response.json().get("orders", [])
        if not orders:
            return None
        first = orders[0]
        return SupplierOrder(
            order_id=str(first["order_id"]),
            po_number=po_number,
            status=str(first.get("status", "received")),
            found_existing=True,
        )

    def cancel_order(self, order_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """Ask the supplier to cancel; SupplierRejected when it no longer allows it."""
        response = self._with_retries("POST", f"/orders/{order_id}/cancel", deadline=deadline)
        return dict(response.json())

    # --- fulfillment ------------------------------------------------------------------------

    def order_statuses(self, order_ids: list[str]) -> list[dict[str, Any]]:
        """The status of each order (lines, shipments with tracking), asking for at most
        ``max_pos_per_status_call`` a request; orders the supplier does not know are left
        out."""
        found: list[dict[str, Any]] = []
        size = self._settings.max_pos_per_status_call
        for start in range(0, len(order_ids), size):
            response = self._with_retries(
                "POST",
                "/orders/status",
                json={"order_ids": order_ids[start : start + size]},
                deadline=None,
            )
            found.extend(response.json().get("orders", []))
        return found

    def can_cancel(self, order_id: str) -> tuple[bool, str | None]:
        """Whether the supplier still allows the order to be cancelled, and if not, why."""
        body = self._with_retries("GET", f"/orders/{order_id}", deadline=None).json()
        if body.get("status") == "cancelled":
            return True, None
        allowed = bool(body.get("cancellable", True))
        return allowed, None if allowed else str(
            body.get("not_cancellable_reason") or f"the order is {body.get('status')}"
        )

    # --- plumbing ----------------------------------------------------------------------------

    def _with_retries(
        self, method: str, path: str, *, deadline: float | None, **kwargs: Any
    ) -> httpx.Response:
        """A request that changes nothing (or is safe to repeat), retried on transient errors."""
        last_problem = "no attempt made"
        for attempt in range(1, self._settings.max_attempts + 1):
            self._check_deadline(deadline)
            try:
                response = self._request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc or 'connection lost'}"
                self._pause(attempt, None, deadline)
                continue
            if response.status_code < 400:
                return response
            if response.status_code == 429 or response.status_code >= 500:
                last_problem = f"HTTP {response.status_code}: {_message(response)}"
                self._pause(attempt, response if response.status_code == 429 else None, deadline)
                continue
            raise SupplierRejected(response.status_code, _message(response))
        raise SupplierApiError(
            f"{method} {path} failed {self._settings.max_attempts} times (last: {last_problem})"
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self._keep_pace()
        headers = signed_headers(
            self._settings.client_id,
            self._settings.client_secret.get_secret_value(),
            self._path_prefix + path,
        )
        return self._http.request(method, path, headers=headers, **kwargs)

    def _keep_pace(self) -> None:
        """Wait for this request's slot under ``requests_per_second`` (slots are handed out in
        turn, so threads sharing the client keep to the limit together)."""
        rate = self._settings.requests_per_second
        if not rate:
            return
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)

    def _check_deadline(self, deadline: float | None) -> None:
        # httpx's timeout bounds each phase (connect, write, read), not the whole request.
        longest = 3 * self._settings.timeout_seconds
        if deadline is not None and time.monotonic() + longest > deadline:
            raise SendDeadline(
                "no time left in this run's send lease for another request; the next run "
                "looks the PO up and sends it if it is not there"
            )

    def _pause(self, attempt: int, response: httpx.Response | None, deadline: float | None) -> None:
        if attempt >= self._settings.max_attempts:
            return
        delay = _retry_after(response) if response is not None else None
        if delay is None:
            base = self._settings.retry_delay_seconds * 2 ** (attempt - 1)
            with self._random_lock:
                delay = base * (0.5 + self._random.random())
        delay = min(delay, self._settings.max_retry_delay_seconds)
        if deadline is not None and time.monotonic() + delay > deadline:
            raise SendDeadline(f"waiting {delay:.1f} s more would outlive this run's send lease")
        time.sleep(delay)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:500]
    return str(body)[:500]
