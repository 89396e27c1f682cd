"""Helpers for the retailer-push tests: orders through a connector, POs moved along, and
fulfillment events written as the supplier side writes them (a po_event row per change)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from order_world import ACTOR, SHIP_TO
from sqlmodel import select

from blocks.retailer_webhook import RetailerWebhook
from models.catalog import utcnow
from models.db import session_scope
from models.orders import PoEvent, PurchaseOrder, RetailOrder
from models.relationships import Retailer, RetailerConnector
from models.retailer_push import PoEventDelivery
from sandbox.retailer_webhook import RetailerWebhookSandbox
from tasks.connectors import webhook_block_name
from tasks.orders import LineIn, OrderIn, place_order
from tasks.po_states import move_pos
from tasks.retailer_push import set_connector_webhook
from tasks.routing import route_received_orders


def order_through(connector_code: str | None, order_id: str, *lines: tuple[str, int]) -> None:
    """An order of shopco's, placed through a connector (None: through none), then routed."""
    with session_scope() as session:
        retailer = session.exec(select(Retailer).where(Retailer.code == "shopco")).one()
        connector_id = None
        if connector_code is not None:
            connector_id = session.exec(
                select(RetailerConnector.id).where(RetailerConnector.code == connector_code)
            ).one()
        place_order(
            session,
            retailer.id,  # type: ignore[arg-type]
            OrderIn(
                source_order_id=order_id,
                lines=tuple(LineIn(str(n), sku, q) for n, (sku, q) in enumerate(lines, 1)),
                ship_to=SHIP_TO,
                shipping_method="standard",
            ),
            dialect="native",
            connector_id=connector_id,
        )
    with session_scope() as session:
        route_received_orders(session)


def po_of(order_id: str) -> PurchaseOrder:
    with session_scope() as session:
        return session.exec(
            select(PurchaseOrder)
            .join(RetailOrder, RetailOrder.id == PurchaseOrder.order_id)  # type: ignore[arg-type]
            .where(RetailOrder.source_order_id == order_id)
        ).one()


def move(order_id: str, to_state: str, reason: str | None = None) -> None:
    po = po_of(order_id)
    with session_scope() as session:
        moved = move_pos(session, [(po.id, po.state)], to_state, actor=ACTOR, reason=reason)  # type: ignore[list-item]
    assert moved == [po.id]


def add_event(order_id: str, kind: str, payload: dict[str, Any]) -> int:
    """A fulfillment event as the supplier side records it; returns its id."""
    po = po_of(order_id)
    with session_scope() as session:
        return session.execute(
            sa.insert(PoEvent)
            .values(
                po_id=po.id,
                from_state=po.state,
                to_state=po.state,
                kind=kind,
                payload=payload,
                actor="fulfillment-sync",
                at=utcnow(),
            )
            .returning(PoEvent.id)
        ).scalar_one()


def shipment(number: str, *lines: tuple[int, str, int]) -> dict[str, Any]:
    return {
        "shipment_id": number,
        "carrier": "UPS",
        "service": "UPS_GND",
        "tracking_number": f"1Z{number}",
        "tracking_url": f"https://ups.example/track/1Z{number}",
        "shipped_at": "2026-12-06T12:00:00+00:00",
        "lines": [{"line_no": n, "sku": sku, "quantity": q} for n, sku, q in lines],
    }


def acknowledgement(*lines: tuple[int, str, str, int]) -> dict[str, Any]:
    return {
        "lines": [
            {
                "line_no": n,
                "sku": sku,
                "status": status,
                "quantity": q,
                "backorder_date": None,
                "reason": None,
            }
            for n, sku, status, q in lines
        ]
    }


def life_of(order_id: str, sku: str = "A-1") -> None:
    """A PO's life after routing: submitted, acknowledged (line event and state), shipped in
    two parts, delivered."""
    move(order_id, "submitted")
    add_event(order_id, "acknowledgement", acknowledgement((1, sku, "accepted", 2)))
    move(order_id, "acknowledged")
    add_event(order_id, "shipment", shipment(f"{order_id}-S1", (1, sku, 1)))
    move(order_id, "partially_shipped")
    add_event(order_id, "shipment", shipment(f"{order_id}-S2", (1, sku, 1)))
    move(order_id, "shipped")
    add_event(order_id, "delivery", {"shipment_id": None, "delivered_at": "2026-12-08T10:00:00Z"})
    move(order_id, "delivered")


def use_webhook(connector_code: str, receiver: RetailerWebhookSandbox, **options: Any) -> None:
    """Point the connector's webhook at the receiver (its block and the connector's setting)."""
    RetailerWebhook(
        url=receiver.url, signing_secret=options.pop("secret", receiver.secret), **options
    ).save(webhook_block_name(connector_code), overwrite=True)
    with session_scope() as session:
        set_connector_webhook(session, connector_code, receiver.url, actor=ACTOR)


def events_of(order_id: str) -> list[int]:
    """The order's event ids, in order."""
    with session_scope() as session:
        return list(
            session.exec(
                select(PoEvent.id)
                .join(PurchaseOrder, PurchaseOrder.id == PoEvent.po_id)  # type: ignore[arg-type]
                .join(RetailOrder, RetailOrder.id == PurchaseOrder.order_id)  # type: ignore[arg-type]
                .where(RetailOrder.source_order_id == order_id)
                .order_by(PoEvent.id)  # type: ignore[arg-type]
            )
        )


def deliveries() -> dict[int, PoEventDelivery]:
    """Every delivery, by event id (one destination per event in these tests)."""
    with session_scope() as session:
        return {d.event_id: d for d in session.exec(select(PoEventDelivery))}


def unpushed() -> list[int]:
    with session_scope() as session:
        return list(
            session.exec(select(PoEvent.id).where(PoEvent.pushed_at.is_(None)))  # type: ignore[union-attr]
        )
