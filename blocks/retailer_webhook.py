"""The ``RetailerWebhook`` block: where a retailer's connector receives PO events, and the
secret that signs them.

Each event is a POST of a JSON body. ``X-Supplyline-Signature`` is ``sha256=`` and the hex
HMAC-SHA256 of the raw body, keyed with the webhook's signing secret; ``X-Supplyline-Event-Id``
is the event's id, the same on every retry, for the receiver to deduplicate. The secret is a
``SecretStr`` of the block (the connector's API secret is stored only as a hash, so it cannot
sign anything).

A delivery's answer is sorted here: a 2xx is ``delivered``; a 408, a 429, a 5xx, a timeout or a
connection that failed is ``retry`` (the receiver may take it later); anything else is
``refused`` (the receiver will not take this body, however often it is sent).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Literal

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

SIGNATURE_HEADER = "X-Supplyline-Signature"
EVENT_ID_HEADER = "X-Supplyline-Event-Id"
EVENT_TYPE_HEADER = "X-Supplyline-Event-Type"
ATTEMPT_HEADER = "X-Supplyline-Delivery-Attempt"
SIGNATURE_PREFIX = "sha256="
# Answers worth waiting for: the receiver is busy, slow or down, not refusing the event.
RETRYABLE_STATUS_CODES = frozenset({408, 429})

Verdict = Literal["delivered", "retry", "refused"]


def sign_body(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign_body(secret, body), header.strip())


@dataclass(frozen=True)
class DeliveryAnswer:
    """What became of one delivery (a POST here; an upload for status files): the verdict, the
    HTTP status (if any) and why."""

    verdict: Verdict
    status_code: int | None = None
    message: str | None = None
    retry_after_seconds: float | None = None


class RetailerWebhook(Block):
    """A retailer connector's webhook: its URL and the secret that signs each event.

    Example:
        ```python
        from blocks.retailer_webhook import RetailerWebhook

        webhook = RetailerWebhook.load("webhook-shopco-native")
        with webhook.client() as client:
            answer = client.post_event(body, event_id="evt_42", event_type="po.shipment")
        ```
    """

    _block_type_name: ClassVar[str] = "Supplyline Retailer Webhook"
    _block_type_slug: ClassVar[str] = "supplyline-retailer-webhook"
    _description: ClassVar[str] = (
        "Where a retailer receives PO events (acknowledgements, shipments, cancellations, "
        "deliveries, state changes): a URL and the secret that signs every body (HMAC-SHA256)."
    )

    url: str = Field(description="The URL events are POSTed to (http or https).")
    signing_secret: SecretStr = Field(
        description="Signs each body (HMAC-SHA256); the retailer verifies with the same secret."
    )
    timeout_seconds: float = Field(
        default=10, gt=0, description="Seconds to connect, send, and wait for the answer."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"webhook URL {value!r} must be an http:// or https:// URL")
        return value

    @contextmanager
    def client(self) -> Iterator[WebhookClient]:
        """A client keeping its connection to the receiver alive between events."""
        with httpx.Client(timeout=httpx.Timeout(self.timeout_seconds)) as http:
            yield WebhookClient(self, http)


class WebhookClient:
    def __init__(self, webhook: RetailerWebhook, http: httpx.Client) -> None:
        self._webhook = webhook
        self._http = http

    def post_event(
        self, body: bytes, *, event_id: str, event_type: str, attempt: int = 1
    ) -> DeliveryAnswer:
        """POST one signed event and sort the answer (see the module doc); never raises for
        what the receiver or the network did."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Supplyline-Webhooks/1",
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type,
            ATTEMPT_HEADER: str(attempt),
            SIGNATURE_HEADER: sign_body(self._webhook.signing_secret.get_secret_value(), body),
        }
        try:
            response = self._http.post(self._webhook.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            return DeliveryAnswer("retry", None, f"{type(exc).__name__}: {exc or 'no answer'}")
        code = response.status_code
        if 200 <= code < 300:
            return DeliveryAnswer("delivered", code)
        message = f"HTTP {code}: {_message(response)}"
        if code in RETRYABLE_STATUS_CODES or code >= 500:
            return DeliveryAnswer("retry", code, message, _retry_after(response))
        if 300 <= code < 400:
            message += f" (redirected to {response.headers.get('Location', '?')}: set that URL)"
        return DeliveryAnswer("refused", code, message)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _message(response: httpx.Response) -> str:
    text = response.text.strip()
    return (text[:300] if text else response.reason_phrase) or "no message"
