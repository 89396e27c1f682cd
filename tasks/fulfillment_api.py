"""Suppliers' order APIs polled for the status of open POs, turned into updates.

The API answers with each order's whole state (its lines' acknowledged, rejected, cancelled
and shipped quantities, its shipments with tracking); :func:`updates_from_status` cuts it into
updates (an acknowledgement, one shipment update per shipment, a cancellation, one delivery
per delivered shipment), which tasks.fulfillment applies. A poll repeats what the last one
said, so updates already in the log are passed over (``skip_known``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.fulfillment import UpdateIn

StatusFunction = Callable[[list[str]], list[dict[str, Any]]]


def updates_from_status(po_number: str, status: dict[str, Any]) -> list[UpdateIn]:
    """What one order's status says, as updates in the order they happen."""
    lines = [line for line in status.get("lines") or [] if isinstance(line, dict)]
    shipments = [s for s in status.get("shipments") or [] if isinstance(s, dict)]
    updates: list[UpdateIn] = []
    acknowledged = [
        {
            "line_no": line.get("line_no"),
            "sku": line.get("sku"),
            "status": name,
            "quantity": line.get(name),
            "backorder_date": line.get("backorder_date") if name == "backordered" else None,
            "reason": line.get("reject_reason") if name == "rejected" else None,
        }
        for line in lines
        for name in ("accepted", "backordered", "rejected")
        if line.get(name)
    ]
    if acknowledged:
        updates.append(UpdateIn(po_number, "acknowledgement", {"lines": acknowledged}))
    for shipment in shipments:
        updates.append(
            UpdateIn(
                po_number,
                "shipment",
                {
                    key: shipment.get(key)
                    for key in (
                        "shipment_id",
                        "carrier",
                        "service",
                        "tracking_number",
                        "tracking_url",
                        "shipped_at",
                    )
                }
                | {
                    "lines": [
                        {
                            "line_no": s.get("line_no"),
                            "sku": s.get("sku"),
                            "quantity": s.get("quantity"),
                        }
                        for s in shipment.get("lines") or []
                        if isinstance(s, dict)
                    ]
                },
            )
        )
    cancelled = [
        {
            "line_no": line.get("line_no"),
            "sku": line.get("sku"),
            "quantity": line.get("cancelled"),
            "reason": line.get("cancel_reason"),
        }
        for line in lines
        if line.get("cancelled")
    ]
    if cancelled:
        updates.append(
            UpdateIn(
                po_number,
                "cancellation",
                {"whole_po": status.get("status") == "cancelled", "lines": cancelled},
            )
        )
    for shipment in shipments:
        if shipment.get("delivered_at"):
            updates.append(
                UpdateIn(
                    po_number,
                    "delivery",
                    {
                        "shipment_id": shipment.get("shipment_id"),
                        "delivered_at": shipment.get("delivered_at"),
                    },
                )
            )
    return updates


def collect_api_updates(
    statuses: StatusFunction, pos: list[tuple[str, str]]
) -> tuple[list[UpdateIn], list[str]]:
    """Ask the supplier for the status of ``(PO number, supplier's order id)`` pairs; returns
    the updates and the POs the supplier did not answer for."""
    numbers = {order_id: po_number for po_number, order_id in pos}
    answered: set[str] = set()
    updates: list[UpdateIn] = []
    for status in statuses([order_id for _, order_id in pos]):
        order_id = str(status.get("order_id"))
        po_number = numbers.get(order_id)
        if po_number is None:
            continue
        answered.add(order_id)
        updates.extend(updates_from_status(po_number, status))
    missing = [
        f"{po_number}: the supplier has no order {order_id}"
        for po_number, order_id in pos
        if order_id not in answered
    ]
    return updates, missing
