"""A whole order life across every part, on SQLite and PostgreSQL: a retailer posts an order to
the intake API, order sync sends the PO to the supplier sandbox (a real HTTP server), the
supplier acknowledges and ships in two parts and delivers, fulfillment sync follows and pushes
each change to the retailer's webhook receiver (a real HTTP server that checks signatures),
which is down for a while. Nothing is lost, each event is kept once, in order, and the order
status endpoint shows the shipments with tracking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from order_world import make_world, native_order, place, use_sandbox
from push_world import use_webhook

from api.server import serving_in_thread
from flows.fulfillment_sync import fulfillment_sync
from flows.order_sync import order_sync
from flows.retailer_push import retailer_push
from sandbox.retailer_webhook import RetailerWebhookSandbox
from sandbox.supplier_api import SupplierSandbox
from supplyline.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_api", "database")


@pytest.fixture
def supplier(tmp_path: Path) -> Iterator[SupplierSandbox]:
    with SupplierSandbox(database=tmp_path / "supplier.db") as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[RetailerWebhookSandbox]:
    with RetailerWebhookSandbox() as server:
        yield server


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    with serving_in_thread() as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_an_order_from_intake_to_delivered_reaches_the_retailer_once_and_in_order(
    supplier: SupplierSandbox,
    receiver: RetailerWebhookSandbox,
    api: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPPLYLINE_PUSH_RETRY_DELAY_SECONDS", "0")  # retried on the next run
    get_settings.cache_clear()
    world = make_world()
    native = world["native"]
    use_sandbox("acme", supplier).save("supplier-api-acme", overwrite=True)
    use_webhook(native.code, receiver)

    placed = place(api, native, native_order("LIFE-1", ("A-1", 3), ("SHARED", 2)))
    assert placed.status_code == 201, placed.text
    assert order_sync()["pos_purchased"] == 1
    [at_supplier] = supplier.orders()
    supplier_order = at_supplier["order_id"]

    receiver.go_down(503)
    supplier.acknowledge(supplier_order, backordered={2: "2026-12-24"})
    down = fulfillment_sync()
    assert down["retailer_push"]["delivered"] == 0
    assert down["retailer_push"]["retrying"] == 1  # the order's first event; the rest wait
    receiver.come_up()

    first = supplier.ship(supplier_order, {1: 3}, tracking_number="1ZPART1")
    fulfillment_sync()
    second = supplier.ship(supplier_order, tracking_number="1ZREST2")  # the backorder came in
    fulfillment_sync()
    supplier.deliver(supplier_order)
    fulfillment_sync()
    assert retailer_push()["pending"] == 0

    received = receiver.events()
    assert receiver.stats.duplicates == 0 and receiver.stats.bad_signatures == 0
    types = [event.event_type for event in received]
    # Every event of the order, once, in the order they happened.
    status = api.get(f"/v1/native/{native.code}/orders/LIFE-1", headers=native.auth()).json()
    assert [e.event_id for e in received] == [e["id"] for e in status["events"]]
    assert all(e["pushed_at"] for e in status["events"])
    assert "po.acknowledgement" in types and types.count("po.shipment") == 2
    assert types.index("po.acknowledgement") < types.index("po.shipment")
    assert types[-1] in ("po.state", "po.delivery")
    tracking = [
        e.body["data"]["tracking_number"] for e in received if e.event_type == "po.shipment"
    ]
    assert tracking == [first["tracking_number"], second["tracking_number"]]
    assert received[-1].body["state"] == "delivered"

    [po] = status["purchase_orders"]
    assert po["state"] == "delivered"
    shown = {s["tracking_number"] for s in po["shipments"]}
    assert shown == {"1ZPART1", "1ZREST2"}
