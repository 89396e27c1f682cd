"""Retailers' orders: taking them in once, showing them, and cancelling them.

Whatever the dialect (native JSON, SiteFlow style, an order file), an order is normalised to
an :class:`OrderIn` before it is stored. It is stored once per (retailer, the retailer's order
id): the same order again gives back the stored one; other content under the same id is an
:class:`OrderConflict`, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.catalog import Supplier, utcnow
from models.db import as_utc
from models.orders import (
    OPEN_SENT_PO_STATES,
    UNSENT_PO_STATES,
    OrderLine,
    PurchaseOrder,
    RetailOrder,
    Shipment,
    ShipmentLine,
)
from models.relationships import Retailer
from supplyline.errors import RelationshipError
from tasks.po_states import move_pos


class OrderError(RelationshipError):
    """An order request that is refused; the message says why and what to do."""


class OrderConflict(OrderError):
    """The retailer's order id is taken by an order with other content."""


class OrderNotFound(OrderError):
    pass


@dataclass(frozen=True)
class LineIn:
    source_item_id: str
    sku: str
    quantity: int
    unit_cost: Decimal | None = None


@dataclass(frozen=True)
class OrderIn:
    """An order in Supplyline's terms, whatever dialect it came in."""

    source_order_id: str
    lines: tuple[LineIn, ...]
    ship_to: dict[str, Any] = field(default_factory=dict)
    shipping_method: str | None = None
    carrier_code: str | None = None
    all_or_nothing: bool | None = None

    def fingerprint(self) -> str:
        """sha256 of the order's content: what "the same order again" means."""
        content = asdict(self)
        return hashlib.sha256(
            json.dumps(content, sort_keys=True, default=str, separators=(",", ":")).encode()
        ).hexdigest()


@dataclass(frozen=True)
class Intake:
    order: RetailOrder
    created: bool


# Built once: the intake API runs them for every order.
_INSERT_ORDER = sa.insert(RetailOrder).returning(RetailOrder.id)
_INSERT_LINES = sa.insert(OrderLine.__table__)  # type: ignore[attr-defined]


def place_order(
    session: Session,
    retailer_id: int,
    order_in: OrderIn,
    *,
    dialect: str,
    connector_id: int | None = None,
    retailer_all_or_nothing: bool = False,
) -> Intake:
    """Store the order unless the retailer sent it before (then give back the stored one).

    ``retailer_all_or_nothing`` is the retailer's setting; the order's own word wins.

    New orders are the common case: the order is inserted straight away, and a unique key
    (retailer, order id) turns a repeat, or two requests at once, into a read of the stored one.
    """
    fingerprint = order_in.fingerprint()
    all_or_nothing = (
        retailer_all_or_nothing if order_in.all_or_nothing is None else order_in.all_or_nothing
    )
    order = RetailOrder(
        retailer_id=retailer_id,
        connector_id=connector_id,
        source_order_id=order_in.source_order_id,
        dialect=dialect,
        payload_sha256=fingerprint,
        all_or_nothing=all_or_nothing,
        ship_to=order_in.ship_to,
        shipping_method=order_in.shipping_method,
        carrier_code=order_in.carrier_code,
    )
    savepoint = session.begin_nested()
    try:
        order.id = session.execute(_INSERT_ORDER, order.model_dump(exclude={"id"})).scalar_one()
        session.execute(
            _INSERT_LINES,
            [
                {
                    "order_id": order.id,
                    "line_no": number,
                    "source_item_id": line.source_item_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_cost": line.unit_cost,
                    "status": "pending",
                }
                for number, line in enumerate(order_in.lines, start=1)
            ],
        )
    except IntegrityError:
        savepoint.rollback()
        stored = _stored(session, retailer_id, order_in.source_order_id)
        if stored is None:
            raise
        return Intake(_same_or_conflict(stored, fingerprint), created=False)
    savepoint.commit()
    return Intake(order, created=True)


def find_order(session: Session, retailer_id: int, source_order_id: str) -> RetailOrder:
    order = _stored(session, retailer_id, source_order_id)
    if order is None:
        raise OrderNotFound(f"no order {source_order_id!r} from this retailer")
    return order


def order_by_reference(session: Session, reference: str) -> RetailOrder:
    """An order by Supplyline's id (``42`` or ``#42``) or by ``RETAILER:ORDER_ID``."""
    text = reference.strip().removeprefix("#")
    if text.isdigit():
        order = session.get(RetailOrder, int(text))
        if order is not None:
            return order
    if ":" in text:
        retailer_code, source_id = text.split(":", 1)
        retailer = session.exec(select(Retailer).where(Retailer.code == retailer_code)).first()
        if retailer is not None:
            return find_order(session, retailer.id, source_id)  # type: ignore[arg-type]
    raise OrderNotFound(
        f"no order {reference!r}: give Supplyline's order id (see supplyline orders list) or "
        f"RETAILER:THEIR_ORDER_ID"
    )


def cancel_order(session: Session, order: RetailOrder, *, actor: str) -> RetailOrder:
    """The retailer cancels: POs not yet sent are cancelled now, POs at a supplier are asked to
    cancel there (``cancel_requested``; order sync asks the supplier). Refused once anything
    has shipped."""
    if order.status == "cancelled":
        return order
    pos = list(session.exec(select(PurchaseOrder).where(PurchaseOrder.order_id == order.id)))
    shipped = [po for po in pos if po.state in ("partially_shipped", "shipped", "delivered")]
    if shipped:
        raise OrderError(
            f"order {order.source_order_id} cannot be cancelled: PO {shipped[0].po_number} is "
            f"{shipped[0].state.replace('_', ' ')} at the supplier, and what has shipped cannot "
            f"be called back; ask the supplier about a return instead"
        )
    reason = f"cancelled by the retailer ({actor})"
    move_pos(
        session,
        [(po.id, po.state) for po in pos if po.state in UNSENT_PO_STATES],  # type: ignore[misc]
        "cancelled",
        actor=actor,
        reason=reason,
    )
    move_pos(
        session,
        [
            (po.id, po.state)
            for po in pos
            if po.state in OPEN_SENT_PO_STATES and po.state != "cancel_requested"
        ],  # type: ignore[misc]
        "cancel_requested",
        actor=actor,
        reason=reason,
    )
    refresh_order_status(session, order.id)  # type: ignore[arg-type]
    session.refresh(order)
    return order


def refresh_order_status(session: Session, order_id: int) -> None:
    """An order whose POs are all cancelled (or that was never routed) is cancelled."""
    order = session.get(RetailOrder, order_id)
    if order is None:
        return
    states = list(
        session.exec(select(PurchaseOrder.state).where(PurchaseOrder.order_id == order_id))
    )
    if order.status == "received" or (states and all(s == "cancelled" for s in states)):
        session.execute(
            sa.update(RetailOrder)
            .where(RetailOrder.id == order_id)  # type: ignore[arg-type]
            .values(status="cancelled", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.execute(
            sa.update(OrderLine)
            .where(OrderLine.order_id == order_id, OrderLine.status.in_(("pending", "routed")))  # type: ignore[union-attr]
            .values(status="cancelled")
            .execution_options(synchronize_session=False)
        )


def order_view(session: Session, order: RetailOrder) -> dict[str, Any]:
    """An order with its lines and POs, ready for JSON."""
    retailer = session.get(Retailer, order.retailer_id)
    lines = list(
        session.exec(
            select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)  # type: ignore[arg-type]
        )
    )
    pos = list(
        session.exec(
            select(PurchaseOrder)
            .where(PurchaseOrder.order_id == order.id)
            .order_by(PurchaseOrder.id)  # type: ignore[arg-type]
        )
    )
    supplier_ids = {po.supplier_id for po in pos} | {
        line.supplier_id for line in lines if line.supplier_id
    }
    suppliers = (
        {
            s.id: s.code
            for s in session.exec(select(Supplier).where(Supplier.id.in_(supplier_ids)))  # type: ignore[union-attr]
        }
        if supplier_ids
        else {}
    )
    po_numbers = {po.id: po.po_number for po in pos}
    shipments = _shipments(session, lines, [po.id for po in pos])  # type: ignore[misc]
    return _order_header(order, retailer.code if retailer else None) | {
        "lines": [
            {
                "line_no": line.line_no,
                "source_item_id": line.source_item_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_cost": _money(line.unit_cost),
                "status": line.status,
                "reason": line.reason,
                "supplier": suppliers.get(line.supplier_id) if line.supplier_id else None,
                "supplier_sku": line.supplier_sku,
                "po_number": po_numbers.get(line.po_id) if line.po_id else None,
                "fulfillment": _line_fulfillment(line),
            }
            for line in lines
        ],
        "purchase_orders": [
            po_view(po, suppliers.get(po.supplier_id)) | {"shipments": shipments.get(po.id, [])}  # type: ignore[call-overload]
            for po in pos
        ],
    }


def new_order_view(order: RetailOrder, order_in: OrderIn, retailer_code: str) -> dict[str, Any]:
    """:func:`order_view` of an order just stored, from what was stored (no query)."""
    return _order_header(order, retailer_code) | {
        "lines": [
            {
                "line_no": number,
                "source_item_id": line.source_item_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_cost": _money(line.unit_cost),
                "status": "pending",
                "reason": None,
                "supplier": None,
                "supplier_sku": None,
                "po_number": None,
                "fulfillment": _line_fulfillment(None),
            }
            for number, line in enumerate(order_in.lines, start=1)
        ],
        "purchase_orders": [],
    }


def _line_fulfillment(line: OrderLine | None) -> dict[str, Any]:
    """What the supplier reported of a line: its acknowledgement and quantities."""
    if line is None:
        line = OrderLine(order_id=0, line_no=0, source_item_id="", sku="", quantity=1)
    return {
        "acknowledged_at": _iso(line.acknowledged_at),
        "accepted": line.accepted_quantity,
        "backordered": line.backordered_quantity,
        "backorder_date": line.backorder_date.isoformat() if line.backorder_date else None,
        "rejected": line.rejected_quantity,
        "rejection_reason": line.rejection_reason,
        "cancelled": line.cancelled_quantity,
        "cancellation_reason": line.cancellation_reason,
        "shipped": line.shipped_quantity,
        "delivered": line.delivered_quantity,
    }


def _shipments(
    session: Session, lines: list[OrderLine], po_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """Each PO's shipments with their tracking and lines (the retailer's SKUs)."""
    if not po_ids:
        return {}
    skus = {line.id: line.sku for line in lines}
    found = list(
        session.exec(
            select(Shipment).where(Shipment.po_id.in_(po_ids)).order_by(Shipment.id)  # type: ignore[attr-defined,arg-type]
        )
    )
    contents: dict[int, list[dict[str, Any]]] = {}
    if found:
        for row in session.exec(
            select(ShipmentLine)
            .where(ShipmentLine.shipment_id.in_([s.id for s in found]))  # type: ignore[attr-defined]
            .order_by(ShipmentLine.line_no)  # type: ignore[arg-type]
        ):
            contents.setdefault(row.shipment_id, []).append(
                {
                    "line_no": row.line_no,
                    "sku": skus.get(row.order_line_id),
                    "quantity": row.quantity,
                }
            )
    by_po: dict[int, list[dict[str, Any]]] = {}
    for shipment in found:
        by_po.setdefault(shipment.po_id, []).append(
            {
                "shipment_id": shipment.supplier_shipment_id,
                "carrier": shipment.carrier,
                "service": shipment.service,
                "tracking_number": shipment.tracking_number,
                "tracking_url": shipment.tracking_url,
                "shipped_at": _iso(shipment.shipped_at),
                "delivered_at": _iso(shipment.delivered_at),
                "lines": contents.get(shipment.id, []),  # type: ignore[arg-type]
            }
        )
    return by_po


def _order_header(order: RetailOrder, retailer_code: str | None) -> dict[str, Any]:
    return {
        "id": order.id,
        "retailer": retailer_code,
        "order_id": order.source_order_id,
        "dialect": order.dialect,
        "status": order.status,
        "reason": order.reason,
        "all_or_nothing": order.all_or_nothing,
        "ship_to": order.ship_to,
        "shipping_method": order.shipping_method,
        "received_at": _iso(order.received_at),
        "routed_at": _iso(order.routed_at),
    }


def po_view(po: PurchaseOrder, supplier_code: str | None) -> dict[str, Any]:
    return {
        "po_number": po.po_number,
        "supplier": supplier_code,
        "state": po.state,
        "reason": po.reason,
        "total": _money(po.total),
        "carrier_service": po.carrier_service,
        "supplier_order_id": po.supplier_order_id,
        "send_attempts": po.send_attempts,
        "last_error": po.last_error,
        "purchase": po.purchase_kind,
        "purchased_at": _iso(po.purchased_at),
        "created_at": _iso(po.created_at),
        "submitted_at": _iso(po.submitted_at),
        "updated_at": _iso(po.updated_at),
    }


def _stored(session: Session, retailer_id: int, source_order_id: str) -> RetailOrder | None:
    return session.exec(
        select(RetailOrder).where(
            RetailOrder.retailer_id == retailer_id,
            RetailOrder.source_order_id == source_order_id,
        )
    ).first()


def _same_or_conflict(stored: RetailOrder, fingerprint: str) -> RetailOrder:
    if stored.payload_sha256 != fingerprint:
        raise OrderConflict(
            f"order {stored.source_order_id!r} was already received (Supplyline order "
            f"#{stored.id}) with other content; send changes as a new order id, or cancel it first"
        )
    return stored


def _iso(moment: Any) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat() if moment is not None else None


def _money(amount: Decimal | float | None) -> str | None:
    return None if amount is None else f"{Decimal(str(amount)):.2f}"
