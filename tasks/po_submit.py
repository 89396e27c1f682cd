"""Sending POs to suppliers exactly once, and deciding their purchase.

1. **Claim** (one transaction): a conditional UPDATE takes a send lease on POs that are
   ``awaiting_sync`` and not leased, and counts the attempt. Two runs never hold one PO.
2. **Send** (no transaction open): each PO through the supplier's connector, a pool of them at
   once. A PO with an earlier attempt may be at the supplier already: the connector looks it
   up by its number before sending (``maybe_sent_before``). No request starts that could
   outlive the lease.
3. **Record** (one transaction): sent POs become ``submitted`` and the purchase rules decide
   (auto purchase → purchased; otherwise ``awaiting_purchase`` with the reason); refused ones
   ``rejected`` with the supplier's message; the rest keep waiting with the error, and are
   ``failed`` after ``SUPPLYLINE_PO_MAX_SEND_ATTEMPTS`` runs.

A crash between 2 and 3 leaves the lease to run out; the next run looks the PO up and records
it. The database and this protocol, not Prefect's task state, make a PO go out once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from blocks.supplier_api import SupplierApiError, SupplierOrder, SupplierRejected
from models.catalog import Supplier, utcnow
from models.db import chunked
from models.orders import OrderLine, PurchaseOrder, RetailOrder
from models.relationships import RetailerConnection
from supplyline.settings import get_settings
from tasks.funds import AwaitingPurchase, Purchased, decide_purchases
from tasks.po_states import lock_orders_of, move_pos
from tasks.routing import hold_reason

SendFunction = Callable[..., SupplierOrder]


@dataclass(frozen=True)
class ClaimedPo:
    id: int
    po_number: str
    supplier_id: int
    connection_id: int | None
    attempts: int
    total: Decimal
    payload: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    po: ClaimedPo
    order: SupplierOrder | None = None
    rejected: str | None = None
    error: str | None = None


@dataclass
class SendOutcome:
    submitted: list[str] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)
    awaiting_purchase: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    found_at_supplier: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, other: SendOutcome) -> None:
        for name in (
            "submitted",
            "purchased",
            "awaiting_purchase",
            "rejected",
            "waiting",
            "failed",
        ):
            getattr(self, name).extend(getattr(other, name))
        self.found_at_supplier += other.found_at_supplier
        for step, seconds in other.timings.items():
            self.timings[step] = self.timings.get(step, 0.0) + seconds


def release_holds(session: Session, *, actor: str) -> int:
    """POs on hold whose retailer now has an active connection to the supplier go on to
    ``awaiting_sync``; returns how many."""
    held = list(session.exec(select(PurchaseOrder).where(PurchaseOrder.state == "on_hold")))
    if not held:
        return 0
    live = {
        (c.retailer_id, c.supplier_id): c
        for c in session.exec(
            select(RetailerConnection).where(
                RetailerConnection.status == "active",
                RetailerConnection.retailer_id.in_({po.retailer_id for po in held}),  # type: ignore[attr-defined]
            )
        )
    }
    ready = {
        po.id: live[(po.retailer_id, po.supplier_id)].id
        for po in held
        if (po.retailer_id, po.supplier_id) in live
    }
    moved = move_pos(
        session,
        [(po_id, "on_hold") for po_id in ready],  # type: ignore[misc]
        "awaiting_sync",
        actor=actor,
        reason="the connection is active",
        per_po_values={
            po_id: {"connection_id": connection_id} for po_id, connection_id in ready.items()
        },
    )
    return len(moved)


def due_for_auto_send(session: Session, *, limit: int) -> dict[int, list[int]]:
    """Per supplier, the POs that go out on their own: awaiting sync, on an active connection
    with auto sync, not leased by another run."""
    now = utcnow()
    rows = session.execute(
        sa.select(PurchaseOrder.supplier_id, PurchaseOrder.id)
        .join(RetailerConnection, RetailerConnection.id == PurchaseOrder.connection_id)  # type: ignore[arg-type]
        .where(
            PurchaseOrder.state == "awaiting_sync",
            RetailerConnection.status == "active",
            RetailerConnection.auto_sync.is_(True),  # type: ignore[attr-defined]
            sa.or_(PurchaseOrder.send_lease_until.is_(None), PurchaseOrder.send_lease_until < now),  # type: ignore[union-attr,operator]
        )
        .order_by(PurchaseOrder.id)  # type: ignore[arg-type]
        .limit(limit)
    ).all()
    due: dict[int, list[int]] = {}
    for supplier_id, po_id in rows:
        due.setdefault(supplier_id, []).append(po_id)
    return due


def mark_awaiting_manual_sync(session: Session, *, actor: str) -> int:
    """Give POs on connections without auto sync the reason they wait (once)."""
    rows = session.execute(
        sa.select(PurchaseOrder.id, RetailerConnection.id)
        .join(RetailerConnection, RetailerConnection.id == PurchaseOrder.connection_id)  # type: ignore[arg-type]
        .where(
            PurchaseOrder.state == "awaiting_sync",
            PurchaseOrder.reason.is_(None),  # type: ignore[union-attr]
            RetailerConnection.auto_sync.is_(False),  # type: ignore[attr-defined]
        )
    ).all()
    for po_id, connection_id in rows:
        session.execute(
            sa.update(PurchaseOrder)
            .where(PurchaseOrder.id == po_id, PurchaseOrder.state == "awaiting_sync")  # type: ignore[arg-type]
            .values(
                reason=f"auto sync is off for connection #{connection_id}: send it with "
                "supplyline orders submit PO",
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
    return len(rows)


def claim(session: Session, po_ids: list[int], *, lease_seconds: float) -> list[ClaimedPo]:
    """Take the send lease on those of ``po_ids`` still awaiting sync and free; the caller
    commits before sending."""
    now = utcnow()
    claimed_ids: list[int] = []
    for chunk in chunked(po_ids, 500):
        result = session.execute(
            sa.update(PurchaseOrder)
            .where(
                PurchaseOrder.id.in_(chunk),  # type: ignore[union-attr]
                PurchaseOrder.state == "awaiting_sync",
                sa.or_(
                    PurchaseOrder.send_lease_until.is_(None), PurchaseOrder.send_lease_until < now
                ),  # type: ignore[union-attr,operator]
            )
            .values(
                send_attempts=PurchaseOrder.send_attempts + 1,
                send_lease_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(PurchaseOrder.id)
            .execution_options(synchronize_session=False)
        )
        claimed_ids.extend(result.scalars())
    if not claimed_ids:
        return []
    pos = list(
        session.exec(
            select(PurchaseOrder)
            .where(PurchaseOrder.id.in_(claimed_ids))
            .order_by(PurchaseOrder.id)
        )
    )  # type: ignore[union-attr,arg-type]
    orders = {
        o.id: o
        for o in session.exec(
            select(RetailOrder).where(RetailOrder.id.in_({po.order_id for po in pos}))
        )
    }  # type: ignore[union-attr]
    lines: dict[int, list[OrderLine]] = {}
    for line in session.exec(
        select(OrderLine).where(OrderLine.po_id.in_(claimed_ids)).order_by(OrderLine.line_no)
    ):  # type: ignore[union-attr,arg-type]
        lines.setdefault(line.po_id, []).append(line)  # type: ignore[arg-type]
    return [
        ClaimedPo(
            id=po.id,  # type: ignore[arg-type]
            po_number=po.po_number,
            supplier_id=po.supplier_id,
            connection_id=po.connection_id,
            attempts=po.send_attempts,
            total=Decimal(str(po.total)),
            payload=po_payload(po, orders[po.order_id], lines.get(po.id, [])),  # type: ignore[arg-type]
        )
        for po in pos
    ]


def po_payload(po: PurchaseOrder, order: RetailOrder, lines: list[OrderLine]) -> dict[str, Any]:
    """The PO as the supplier receives it."""
    return {
        "po_number": po.po_number,
        "idempotency_key": po.idempotency_key,
        "order_reference": order.source_order_id,
        "ship_to": order.ship_to,
        "carrier_service": po.carrier_service,
        "total": f"{Decimal(str(po.total)):.2f}",
        "lines": [
            {
                "line_no": line.line_no,
                "sku": line.supplier_sku,
                "quantity": line.quantity,
                "unit_cost": f"{Decimal(str(line.supplier_unit_cost)):.2f}",
            }
            for line in lines
        ],
    }


def send_claimed(
    claimed: list[ClaimedPo], send: SendFunction, *, lease_seconds: float, concurrency: int
) -> list[SendResult]:
    """Send each claimed PO (no database work here); never raises for one PO's failure."""
    deadline = time.monotonic() + lease_seconds

    def one(po: ClaimedPo) -> SendResult:
        try:
            order = send(po.payload, maybe_sent_before=po.attempts > 1, deadline=deadline)
        except SupplierRejected as exc:
            return SendResult(po, rejected=str(exc))
        except SupplierApiError as exc:
            return SendResult(po, error=str(exc))
        except Exception as exc:
            return SendResult(po, error=f"{type(exc).__name__}: {exc}")
        return SendResult(po, order=order)

    if concurrency <= 1 or len(claimed) <= 1:
        return [one(po) for po in claimed]
    with ThreadPoolExecutor(
        max_workers=min(concurrency, len(claimed)), thread_name_prefix="po-send"
    ) as pool:
        return list(pool.map(one, claimed))


def record_results(session: Session, results: list[SendResult], *, actor: str) -> SendOutcome:
    """Write what the sends did (see the module doc); the caller commits, in a transaction
    that holds SQLite's write lock (``session_scope(immediate=True)``)."""
    outcome = SendOutcome()
    lock_orders_of(session, [r.po.id for r in results])  # once, for every move below
    _record_sent(session, [r for r in results if r.order is not None], outcome, actor=actor)
    for result in results:
        if result.rejected is not None:
            if move_pos(
                session,
                [(result.po.id, "awaiting_sync")],
                "rejected",
                actor=actor,
                reason=result.rejected,
                values={"send_lease_until": None, "last_error": result.rejected},
            ):
                outcome.rejected.append((result.po.po_number, result.rejected))
        elif result.error is not None:
            _still_waiting(session, result, outcome, actor=actor)
    return outcome


def manual_purchase(session: Session, po: PurchaseOrder, *, actor: str) -> PurchaseOrder:
    """A person purchased the PO (say, by credit card): it is ``submitted`` and purchased."""
    moved = move_pos(
        session,
        [(po.id, po.state)],  # type: ignore[list-item]
        "submitted",
        actor=actor,
        reason=f"purchased by hand ({actor})",
        values={"purchase_kind": "manual", "purchased_at": utcnow()},
    )
    if not moved:
        session.refresh(po)
        raise ValueError(f"PO {po.po_number} changed meanwhile: it is now {po.state}")
    session.refresh(po)
    return po


def check_sendable(session: Session, po: PurchaseOrder) -> None:
    """Refuse a manual send that cannot go out, saying why."""
    if po.state != "awaiting_sync":
        raise ValueError(
            f"PO {po.po_number} is {po.state}: only a PO awaiting sync can be sent"
            + (f" ({po.reason})" if po.reason else "")
        )
    connection = session.get(RetailerConnection, po.connection_id) if po.connection_id else None
    supplier = session.get(Supplier, po.supplier_id)
    held = hold_reason(connection, supplier)  # type: ignore[arg-type]
    if held:
        raise ValueError(f"PO {po.po_number} cannot go out: {held}")


def _record_sent(
    session: Session, sent: list[SendResult], outcome: SendOutcome, *, actor: str
) -> None:
    """POs now at the supplier: purchased (``submitted``) or ``awaiting_purchase``.

    First the POs still awaiting sync are locked by an UPDATE (one another run recorded
    meanwhile is left alone), then the purchases are decided per connection in one go, then
    the POs move: a handful of statements per batch, not per PO.
    """
    if not sent:
        return
    now = utcnow()
    owned: set[int] = set()
    ids = [r.po.id for r in sent]
    for chunk in chunked(ids, 500):
        owned.update(
            session.execute(
                sa.update(PurchaseOrder)
                .where(
                    PurchaseOrder.id.in_(chunk),  # type: ignore[union-attr]
                    PurchaseOrder.state == "awaiting_sync",
                )
                .values(updated_at=now)
                .returning(PurchaseOrder.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
    sent = [r for r in sent if r.po.id in owned]
    decisions: dict[str, Purchased | AwaitingPurchase] = {}
    by_connection: dict[int, list[SendResult]] = {}
    for result in sent:
        if result.po.connection_id is not None:
            by_connection.setdefault(result.po.connection_id, []).append(result)
    for connection_id, results in by_connection.items():
        amounts = [(r.po.po_number, r.po.total) for r in results]
        decisions |= decide_purchases(session, connection_id, amounts, actor=actor)
    common = {"send_lease_until": None, "last_error": None, "submitted_at": now}
    purchased = [r for r in sent if isinstance(decisions.get(r.po.po_number), Purchased)]
    move_pos(
        session,
        [(r.po.id, "awaiting_sync") for r in purchased],
        "submitted",
        actor=actor,
        values=common | {"reason": None, "purchase_kind": "auto", "purchased_at": now},
    )
    waiting: dict[str, list[SendResult]] = {}
    for result in sent:
        decision = decisions.get(result.po.po_number)
        if not isinstance(decision, Purchased):
            reason = decision.reason if decision else "the PO has no connection to purchase on"
            waiting.setdefault(reason, []).append(result)
    for reason, results in waiting.items():
        move_pos(
            session,
            [(r.po.id, "awaiting_sync") for r in results],
            "awaiting_purchase",
            actor=actor,
            reason=reason,
            values=common | {"reason": reason},
        )
    session.connection().execute(
        sa.update(PurchaseOrder.__table__)  # type: ignore[attr-defined]
        .where(PurchaseOrder.__table__.c.id == sa.bindparam("po_id"))  # type: ignore[attr-defined]
        .values(supplier_order_id=sa.bindparam("supplier_order_id")),
        [{"po_id": r.po.id, "supplier_order_id": r.order.order_id} for r in sent],  # type: ignore[union-attr]
    )
    for result in sent:
        outcome.submitted.append(result.po.po_number)
        outcome.found_at_supplier += bool(result.order and result.order.found_existing)
    outcome.purchased.extend(r.po.po_number for r in purchased)
    outcome.awaiting_purchase.extend(r.po.po_number for rs in waiting.values() for r in rs)


def _still_waiting(
    session: Session, result: SendResult, outcome: SendOutcome, *, actor: str
) -> None:
    error = result.error or "unknown error"
    if result.po.attempts >= get_settings().po_max_send_attempts:
        reason = (
            f"not sent after {result.po.attempts} runs (last: {error}); retry with "
            f"supplyline orders retry {result.po.po_number}"
        )
        if move_pos(
            session,
            [(result.po.id, "awaiting_sync")],
            "failed",
            actor=actor,
            reason=reason,
            values={"send_lease_until": None, "last_error": error},
        ):
            outcome.failed.append((result.po.po_number, reason))
        return
    session.execute(
        sa.update(PurchaseOrder)
        .where(PurchaseOrder.id == result.po.id, PurchaseOrder.state == "awaiting_sync")  # type: ignore[arg-type]
        .values(send_lease_until=None, last_error=error, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    outcome.waiting.append((result.po.po_number, error))
