"""A small world for the order tests: suppliers with catalogs, a retailer, its connections and
connectors, the supplier sandbox, and helpers to place orders through the real intake API."""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import select

from blocks.supplier_api import SupplierApi
from models.catalog import Product, Supplier, utcnow
from models.db import session_scope
from models.relationships import Retailer
from sandbox.supplier_api import SupplierSandbox
from tasks.connections import (
    approve_connection,
    request_connection,
    set_supplier_ordering,
    update_connection_settings,
)
from tasks.connectors import add_connector
from tasks.orders import LineIn, OrderIn, place_order
from tasks.retailers import add_retailer
from tasks.suppliers import add_supplier

ACTOR = "tester"
SHIP_TO = {
    "name": "Ann",
    "address1": "1 Main St",
    "city": "Springfield",
    "postal_code": "1",
    "country": "US",
}
# sku: (cost, quantity, status)
ACME_CATALOG = {
    "A-1": (10.00, 100, "active"),
    "A-2": (2.50, 3, "active"),
    "A-OLD": (4.00, 50, "discontinued"),
    "SHARED": (7.00, 10, "active"),
}
GLOBEX_CATALOG = {
    "G-1": (20.00, 40, "active"),
    "SHARED": (6.00, 10, "active"),
}


@dataclass
class Connector:
    code: str
    api_key: str
    secret: str

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.api_key}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def add_products(supplier_code: str, catalog: dict[str, tuple[float, int, str]]) -> None:
    now = utcnow()
    with session_scope() as session:
        supplier = session.execute(
            sa.select(Supplier).where(Supplier.code == supplier_code)
        ).scalar_one()
        session.execute(
            sa.insert(Product),
            [
                {
                    "supplier_id": supplier.id,
                    "sku": sku,
                    "title": f"Product {sku}",
                    "brand": "B",
                    "cost": cost,
                    "quantity": quantity,
                    "status": status,
                    "created_at": now,
                    "changed_at": now,
                }
                for sku, (cost, quantity, status) in catalog.items()
            ],
        )


def make_world(
    *, auto_sync: bool = True, payment: str | None = "ach", funds: str | None = "100000.00"
) -> dict[str, Any]:
    """acme (active connection) and globex (pending), retailer shopco, a native and a
    siteflow connector."""
    with session_scope() as session:
        add_supplier(session, "acme", "ACME Tools")
        add_supplier(session, "globex", "Globex")
        add_retailer(session, "shopco", "Shop Co", actor=ACTOR)
    add_products("acme", ACME_CATALOG)
    add_products("globex", GLOBEX_CATALOG)
    with session_scope() as session:
        set_supplier_ordering(session, "acme", ordering_mode="instant", actor=ACTOR)
        acme = request_connection(session, "shopco", "acme", actor=ACTOR)
        globex = request_connection(session, "shopco", "globex", actor=ACTOR)
        settings: dict[str, Any] = {"auto_sync": auto_sync}
        if payment:
            settings |= {"auto_purchase": True, "payment_method": payment}
        if funds:
            settings["funds"] = funds
        update_connection_settings(session, acme.id, actor=ACTOR, **settings)  # type: ignore[arg-type]
        native = add_connector(session, "shopco", "native_api", actor=ACTOR)
        siteflow = add_connector(session, "shopco", "siteflow_api", actor=ACTOR)
    return {
        "acme_connection": acme.id,
        "globex_connection": globex.id,
        "native": Connector(
            native.connector.code, native.credential.credential.client_id, native.credential.secret
        ),  # type: ignore[union-attr]
        "siteflow": Connector(
            siteflow.connector.code,
            siteflow.credential.credential.client_id,
            siteflow.credential.secret,
        ),  # type: ignore[union-attr]
    }


def approve(connection_id: int) -> None:
    with session_scope() as session:
        approve_connection(session, connection_id, actor=ACTOR)


def use_sandbox(supplier_code: str, sandbox: SupplierSandbox, **block_options: Any) -> SupplierApi:
    """Make the sandbox the supplier's order connector; returns the block (not saved)."""
    block = SupplierApi(
        base_url=sandbox.url,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        **({"retry_delay_seconds": 0.01} | block_options),
    )
    with session_scope() as session:
        set_supplier_ordering(
            session,
            supplier_code,
            order_connector_type="rest_api",
            order_connector_settings={"block": f"supplier-api-{supplier_code}"},
            actor=ACTOR,
        )
    return block


def native_order(order_id: str, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_to": {
            "name": "Ann Buyer",
            "address1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
        "shipping_method": "standard",
        "lines": [
            {"sku": sku, "quantity": quantity, "unit_cost": "19.99"} for sku, quantity in lines
        ],
        **extra,
    }


def siteflow_order(order_id: str, *lines: tuple[str, int]) -> dict[str, Any]:
    return {
        "orderData": {
            "sourceOrderId": order_id,
            "customerName": "ignored by Supplyline",
            "items": [
                {
                    "sourceItemId": f"{order_id}-{n}",
                    "sku": sku,
                    "quantity": quantity,
                    "unitCost": 5.5,
                }
                for n, (sku, quantity) in enumerate(lines, start=1)
            ],
            "shipments": [
                {
                    "shipTo": {
                        "name": "Bo Buyer",
                        "address1": "2 High St",
                        "town": "Leeds",
                        "postcode": "LS1 1AA",
                        "isoCountry": "GB",
                    },
                    "carrier": {"code": "ups", "service": "express"},
                }
            ],
        }
    }


def place(
    client: httpx.Client, connector: Connector, body: dict[str, Any], dialect: str = "native"
) -> httpx.Response:
    return client.post(
        f"/v1/{dialect}/{connector.code}/orders", json=body, headers=connector.auth()
    )


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def order(order_id: str, *lines: tuple[str, int], **options: object) -> None:
    with session_scope() as session:
        retailer = session.exec(select(Retailer).where(Retailer.code == "shopco")).one()
        place_order(
            session,
            retailer.id,
            OrderIn(
                source_order_id=order_id,
                lines=tuple(LineIn(str(n), sku, qty) for n, (sku, qty) in enumerate(lines, 1)),
                ship_to=SHIP_TO,
                shipping_method=options.pop("shipping_method", "standard"),  # type: ignore[arg-type]
                **options,  # type: ignore[arg-type]
            ),
            dialect="native",
            retailer_all_or_nothing=retailer.all_or_nothing,
        )


def run_twice_at_once(work: Callable[[], object], *, timeout: float = 300) -> None:
    """Run ``work`` on two threads released together; a failure on either fails the test here."""
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not failures, failures


# --- runs killed half-way ---------------------------------------------------------------------


def kill_once(command: list[str], env: dict[str, str], reached: Callable[[], bool]) -> bool:
    """Run ``command`` and SIGKILL it as soon as ``reached()`` holds (within two minutes);
    returns whether it was killed (False: it ended first)."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and not reached() and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = process.poll() is None
    if killed:
        process.kill()
    process.wait(timeout=30)
    return killed


def run_to_the_end(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` until it exits 0, three times at most (a busy machine may leave a few
    items to the next run); returns the last run."""
    for _attempt in range(3):
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if final.returncode == 0:
            break
    return final
