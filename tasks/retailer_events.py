"""PO events as retailers see them: the envelope every webhook body, status file line and the
intake API's order status carry.

The envelope's ``id`` (``evt_<po_event.id>``) is the same on every try and every destination,
for the retailer to deduplicate on. No Prefect here: the intake API uses it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.catalog import Supplier
from models.db import as_utc, chunked
from models.orders import PoEvent, PurchaseOrder, RetailOrder
from models.relationships import Retailer

EVENT_ID_PREFIX = "evt_"
_CHUNK = 500


def event_key(event_id: int) -> str:
    """The id a retailer sees: the same for an event on every try and every destination."""
    return f"{EVENT_ID_PREFIX}{event_id}"


@dataclass(frozen=True)
class EventBody:
    event_id: str
    event_type: str
    envelope: dict[str, Any]

    @property
    def body(self) -> bytes:
        """The exact bytes that are signed and sent (the same on every try)."""
        return json.dumps(self.envelope, separators=(",", ":"), ensure_ascii=False).encode()


def event_bodies(session: Session, event_ids: Iterable[int]) -> dict[int, EventBody]:
    """The envelope of each event: what happened, to which PO of which of the retailer's
    orders, with the event's payload as ``data``."""
    ids = sorted(set(event_ids))
    found: dict[int, EventBody] = {}
    for chunk in chunked(ids, _CHUNK):
        rows = session.execute(
            sa.select(
                PoEvent,
                PurchaseOrder.po_number,
                RetailOrder.source_order_id,
                Retailer.code,
                Supplier.code,
            )
            .join(PurchaseOrder, PurchaseOrder.id == PoEvent.po_id)  # type: ignore[arg-type]
            .join(RetailOrder, RetailOrder.id == PurchaseOrder.order_id)  # type: ignore[arg-type]
            .join(Retailer, Retailer.id == RetailOrder.retailer_id)  # type: ignore[arg-type]
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)  # type: ignore[arg-type]
            .where(PoEvent.id.in_(chunk))  # type: ignore[union-attr]
        ).all()
        for event, po_number, order_id, retailer_code, supplier_code in rows:
            key = event_key(event.id)
            kind = f"po.{event.kind}"
            found[event.id] = EventBody(
                key,
                kind,
                {
                    "id": key,
                    "type": kind,
                    "occurred_at": as_utc(event.at).isoformat(),  # type: ignore[union-attr]
                    "retailer": retailer_code,
                    "order_id": order_id,
                    "po_number": po_number,
                    "supplier": supplier_code,
                    "state": event.to_state,
                    "previous_state": event.from_state,
                    "reason": event.reason,
                    "data": event.payload or {},
                },
            )
    return found


def order_events(session: Session, order_id: int) -> list[dict[str, Any]]:
    """Every event of an order's POs, as its retailer receives them, oldest first, each saying
    whether it has been pushed: what the intake API's order status shows."""
    rows = session.execute(
        sa.select(PoEvent.id, PoEvent.pushed_at)
        .join(PurchaseOrder, PurchaseOrder.id == PoEvent.po_id)  # type: ignore[arg-type]
        .where(PurchaseOrder.order_id == order_id)
        .order_by(PoEvent.id)  # type: ignore[arg-type]
    ).all()
    bodies = event_bodies(session, (row.id for row in rows))
    return [bodies[row.id].envelope | {"pushed_at": iso(row.pushed_at)} for row in rows]


def iso(moment: datetime | None) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat() if moment is not None else None
