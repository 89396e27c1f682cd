"""Asking suppliers to cancel POs the retailer cancelled after they were sent.

A PO in ``cancel_requested`` is cancelled at the supplier through its connector, if the
connector says the supplier still allows it; once the supplier agrees it is ``cancelled``, its
open lines are cancelled, the funds its purchase took (less what rejected or cancelled lines
gave back already) go back to the connection, and an order whose POs are all cancelled is
cancelled. A supplier that refuses (it has shipped,
say) leaves the PO in ``cancel_requested`` with the supplier's answer as its reason, and it is
not asked again; fulfillment sync then moves the PO on to what the supplier reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from blocks.supplier_api import SupplierApiError, SupplierRejected
from models.catalog import utcnow
from models.orders import PurchaseOrder
from tasks.fulfillment import cancel_open_lines
from tasks.funds import release_funds
from tasks.orders import refresh_order_status
from tasks.po_states import move_pos

REFUSED_PREFIX = "the supplier refused to cancel: "
# A supplier that answers later (a cancellation file over SFTP): asked once.
REQUESTED = "cancellation requested from the supplier; its answer comes with its updates"

CancelFunction = Callable[..., dict[str, Any]]
CancellableFunction = Callable[[str], tuple[bool, str | None]]


@dataclass
class CancelOutcome:
    cancelled: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)


def due_for_cancel(session: Session) -> dict[int, list[int]]:
    """Per supplier, the POs to ask the supplier to cancel (not refused already)."""
    rows = session.execute(
        sa.select(PurchaseOrder.supplier_id, PurchaseOrder.id)
        .where(
            PurchaseOrder.state == "cancel_requested",
            PurchaseOrder.supplier_order_id.is_not(None),  # type: ignore[union-attr]
            sa.or_(
                PurchaseOrder.last_error.is_(None),  # type: ignore[union-attr]
                sa.and_(
                    PurchaseOrder.last_error.not_like(REFUSED_PREFIX + "%"),  # type: ignore[union-attr]
                    PurchaseOrder.last_error != REQUESTED,
                ),
            ),
        )
        .order_by(PurchaseOrder.id)  # type: ignore[arg-type]
    ).all()
    due: dict[int, list[int]] = {}
    for supplier_id, po_id in rows:
        due.setdefault(supplier_id, []).append(po_id)
    return due


def cancel_at_supplier(
    session_factory: Callable[[], Any],
    po_ids: list[int],
    cancel: CancelFunction,
    *,
    actor: str,
    cancellable: CancellableFunction | None = None,
) -> CancelOutcome:
    """Ask the supplier to cancel each PO (first, whether it still may be, when the connector
    can say); one transaction per answer, so none is lost."""
    outcome = CancelOutcome()
    with session_factory() as session:
        pos = list(session.exec(select(PurchaseOrder).where(PurchaseOrder.id.in_(po_ids))))  # type: ignore[union-attr]
    for po in pos:
        try:
            if cancellable is not None:
                allowed, why = cancellable(po.supplier_order_id)  # type: ignore[arg-type]
                if not allowed:
                    raise SupplierRejected(409, why or "the order can no longer be cancelled")
            answer = cancel(po.supplier_order_id)
        except SupplierRejected as exc:
            message = REFUSED_PREFIX + exc.supplier_message
            with session_factory() as session:
                _note(session, po.id, message, reason=message)  # type: ignore[arg-type]
            outcome.refused.append((po.po_number, message))
            continue
        except SupplierApiError as exc:
            with session_factory() as session:
                _note(session, po.id, str(exc))  # type: ignore[arg-type]
            outcome.waiting.append((po.po_number, str(exc)))
            continue
        if answer.get("status") != "cancelled":
            with session_factory() as session:
                _note(session, po.id, REQUESTED, reason=REQUESTED)  # type: ignore[arg-type]
            outcome.requested.append(po.po_number)
            continue
        with session_factory() as session:
            moved = move_pos(
                session,
                [(po.id, "cancel_requested")],  # type: ignore[list-item]
                "cancelled",
                actor=actor,
                reason="cancelled at the supplier",
                values={"last_error": None},
            )
            if moved:
                cancel_open_lines(session, po.id, "cancelled on the retailer's request")  # type: ignore[arg-type]
                if po.connection_id is not None:
                    release_funds(session, po.connection_id, reference=po.po_number, actor=actor)
                refresh_order_status(session, po.order_id)
                outcome.cancelled.append(po.po_number)
    return outcome


def _note(session: Session, po_id: int, error: str, *, reason: str | None = None) -> None:
    values: dict[str, Any] = {"last_error": error, "updated_at": utcnow()}
    if reason is not None:
        values["reason"] = reason
    session.execute(
        sa.update(PurchaseOrder)
        .where(PurchaseOrder.id == po_id, PurchaseOrder.state == "cancel_requested")  # type: ignore[arg-type]
        .values(**values)
        .execution_options(synchronize_session=False)
    )
