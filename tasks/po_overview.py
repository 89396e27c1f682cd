"""POs per retailer-supplier connection: how many are open, by state, and the oldest unsent one.

*Open*: not yet at the supplier (``on_hold``, ``awaiting_sync``, ``failed``) or at the supplier
and not finished (``awaiting_purchase`` … ``cancel_requested``). *Unsent*: the first three. A
connection is listed while it is live (pending or active) or has open POs (a disconnected
connection's POs still receive their updates).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from models.catalog import Supplier
from models.db import as_utc
from models.orders import OPEN_SENT_PO_STATES, UNSENT_PO_STATES, PurchaseOrder
from models.relationships import LIVE_CONNECTION_STATUSES, Retailer, RetailerConnection

OPEN_PO_STATES = UNSENT_PO_STATES + OPEN_SENT_PO_STATES


@dataclass
class ConnectionPos:
    retailer: str
    supplier: str
    connection_status: str
    open_pos: int = 0
    pos_by_state: dict[str, int] = field(default_factory=dict)
    oldest_unsent_po: str | None = None
    oldest_unsent_state: str | None = None
    oldest_unsent_at: datetime | None = None

    @property
    def key(self) -> str:
        """The connection's artifact key (lower-case codes with dashes)."""
        return f"pos-{self.retailer}-{self.supplier}"

    def as_dict(self) -> dict[str, object]:
        found = asdict(self)
        found["oldest_unsent_at"] = (
            self.oldest_unsent_at.isoformat() if self.oldest_unsent_at else None
        )
        return found


def pos_by_supplier_and_state(
    session: Session, *, at_supplier_only: bool = False
) -> list[dict[str, object]]:
    """Rows of the run artifacts' table: POs per supplier and state (``at_supplier_only``: the
    ones the supplier holds); one placeholder row when there are none."""
    query = (
        sa.select(Supplier.code, PurchaseOrder.state, sa.func.count())
        .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)  # type: ignore[arg-type]
        .group_by(Supplier.code, PurchaseOrder.state)
        .order_by(Supplier.code, PurchaseOrder.state)
    )
    if at_supplier_only:
        query = query.where(PurchaseOrder.supplier_order_id.is_not(None))  # type: ignore[union-attr]
    rows = session.execute(query).all()
    return [{"supplier": code, "state": state, "pos": count} for code, state, count in rows] or [
        {"supplier": "(none)", "state": "", "pos": 0}
    ]


def connection_pos(
    session: Session, pairs: Iterable[tuple[str, str]] | None = None
) -> list[ConnectionPos]:
    """Every live connection and every pair with open POs, or just the ``(retailer, supplier)``
    ``pairs``, ordered by retailer and supplier."""
    wanted = set(pairs) if pairs is not None else None
    found: dict[tuple[str, str], ConnectionPos] = {}

    live = session.execute(
        sa.select(Retailer.code, Supplier.code, RetailerConnection.status)
        .join(Retailer, Retailer.id == RetailerConnection.retailer_id)  # type: ignore[arg-type]
        .join(Supplier, Supplier.id == RetailerConnection.supplier_id)  # type: ignore[arg-type]
        .where(RetailerConnection.status.in_(LIVE_CONNECTION_STATUSES))  # type: ignore[attr-defined]
    ).all()
    for retailer, supplier, status in live:
        found[(retailer, supplier)] = ConnectionPos(retailer, supplier, status)

    by_state = session.execute(
        sa.select(Retailer.code, Supplier.code, PurchaseOrder.state, sa.func.count())
        .join(Retailer, Retailer.id == PurchaseOrder.retailer_id)  # type: ignore[arg-type]
        .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)  # type: ignore[arg-type]
        .group_by(Retailer.code, Supplier.code, PurchaseOrder.state)
    ).all()
    for retailer, supplier, state, count in by_state:
        pair = (retailer, supplier)
        if pair not in found:
            if state not in OPEN_PO_STATES and wanted is None:
                continue
            found[pair] = ConnectionPos(retailer, supplier, _ended_status(session, pair))
        found[pair].pos_by_state[state] = count
        if state in OPEN_PO_STATES:
            found[pair].open_pos += count

    for entry in _oldest_unsent(session):
        pair = (entry.retailer, entry.supplier)
        if pair in found:
            found[pair].oldest_unsent_po = entry.po_number
            found[pair].oldest_unsent_state = entry.state
            found[pair].oldest_unsent_at = as_utc(entry.created_at)

    listed = [
        c
        for pair, c in sorted(found.items())
        if (wanted is None and (c.connection_status in LIVE_CONNECTION_STATUSES or c.open_pos))
        or (wanted is not None and pair in wanted)
    ]
    return listed


def _ended_status(session: Session, pair: tuple[str, str]) -> str:
    """The status of a pair's newest connection when none is live (or ``none``)."""
    retailer, supplier = pair
    status = session.execute(
        sa.select(RetailerConnection.status)
        .join(Retailer, Retailer.id == RetailerConnection.retailer_id)  # type: ignore[arg-type]
        .join(Supplier, Supplier.id == RetailerConnection.supplier_id)  # type: ignore[arg-type]
        .where(Retailer.code == retailer, Supplier.code == supplier)
        .order_by(RetailerConnection.id.desc())  # type: ignore[union-attr]
        .limit(1)
    ).scalar()
    return status or "none"


def _oldest_unsent(session: Session) -> list[sa.Row]:
    """Per pair, the unsent PO created first."""
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(PurchaseOrder.retailer_id, PurchaseOrder.supplier_id),
            order_by=(PurchaseOrder.created_at, PurchaseOrder.id),
        )
        .label("position")
    )
    ranked = (
        sa.select(
            Retailer.code.label("retailer"),  # type: ignore[attr-defined]
            Supplier.code.label("supplier"),  # type: ignore[attr-defined]
            PurchaseOrder.po_number,
            PurchaseOrder.state,
            PurchaseOrder.created_at,
            rank,
        )
        .join(Retailer, Retailer.id == PurchaseOrder.retailer_id)  # type: ignore[arg-type]
        .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)  # type: ignore[arg-type]
        .where(PurchaseOrder.state.in_(UNSENT_PO_STATES))  # type: ignore[attr-defined]
        .subquery()
    )
    return list(session.execute(sa.select(ranked).where(ranked.c.position == 1)).all())
