"""Routing received orders to suppliers: lookups, the catalog, one PO per supplier per order.

A batch of orders is claimed first (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a first write on
SQLite), so two syncs at once take different orders, and
everything the batch decides (POs, lines, orders, the POs' first events) commits together.
Everything is read in a few queries per batch: no query per order or line.

For each line: the retailer's SKU goes through the ``sku`` lookup (the supplier's table, then
the retailer's, their defaults after the entries; no table or no entry: the SKU as sent); it
goes to a supplier the retailer is connected to whose catalog carries it as active with
enough stock, preferring an active connection, then the lowest cost, then the supplier code.
A line no supplier can take is rejected with the reason; with all-or-nothing, so is the order.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from models.catalog import Product, Supplier, utcnow
from models.db import chunked
from models.orders import OrderLine, PurchaseOrder, RetailOrder
from models.relationships import LookupEntry, LookupTable, Retailer, RetailerConnection
from tasks.lookups import MissingLookupValue
from tasks.po_states import record_created

SKU_TABLE = "sku"
SHIPPING_TABLE = "shipping_method"
# Connections a PO can be routed on; a rejected request is as good as none.
ROUTABLE_CONNECTION_STATUSES = ("active", "pending", "disconnected")


@dataclass
class RoutingOutcome:
    orders: int = 0
    routed: int = 0
    partially_routed: int = 0
    rejected: int = 0
    lines_rejected: int = 0
    pos_created: list[int] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: RoutingOutcome) -> None:
        self.orders += other.orders
        self.routed += other.routed
        self.partially_routed += other.partially_routed
        self.rejected += other.rejected
        self.lines_rejected += other.lines_rejected
        self.pos_created.extend(other.pos_created)
        self.rejections.extend(other.rejections)
        self.seconds += other.seconds


def po_number(supplier_code: str, order_id: int) -> str:
    """Deterministic: one order has at most one PO per supplier."""
    return f"PO-{supplier_code.upper()}-{order_id:08d}"


def idempotency_key(retailer_code: str, source_order_id: str, supplier_code: str) -> str:
    """Deterministic from the business keys: the same order and supplier give the same key."""
    text = f"supplyline:{retailer_code}:{source_order_id}:{supplier_code}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def hold_reason(connection: RetailerConnection | None, supplier: Supplier) -> str | None:
    """Why a PO to ``supplier`` must wait, or None when it may go out."""
    if connection is None:
        return (
            f"no connection to supplier {supplier.code}: request one with supplyline connect "
            f"RETAILER {supplier.code}"
        )
    if connection.status == "pending":
        return f"connection #{connection.id} to {supplier.code} waits for the supplier's approval"
    if connection.status != "active":
        return (
            f"connection #{connection.id} to {supplier.code} is {connection.status}: no new PO "
            f"goes out until the retailer reconnects"
        )
    return None


def route_received_orders(
    session: Session, *, limit: int = 500, actor: str = "order-sync"
) -> RoutingOutcome:
    """Route up to ``limit`` received orders; the caller commits."""
    order_ids = _claim(session, limit)
    outcome = RoutingOutcome(orders=len(order_ids))
    if not order_ids:
        return outcome
    orders = list(
        session.exec(
            select(RetailOrder).where(RetailOrder.id.in_(order_ids)).order_by(RetailOrder.id)
        )  # type: ignore[union-attr,arg-type]
    )
    lines_by_order: dict[int, list[OrderLine]] = defaultdict(list)
    for line in session.exec(
        select(OrderLine)
        .where(OrderLine.order_id.in_(order_ids))
        .order_by(OrderLine.order_id, OrderLine.line_no)  # type: ignore[attr-defined,arg-type]
    ):
        lines_by_order[line.order_id].append(line)
    retailer_ids = {o.retailer_id for o in orders}
    retailers = {
        r.id: r for r in session.exec(select(Retailer).where(Retailer.id.in_(retailer_ids)))
    }  # type: ignore[union-attr]
    connections = _connections(session, retailer_ids)
    supplier_ids = {supplier_id for (_, supplier_id) in connections}
    suppliers = {
        s.id: s for s in session.exec(select(Supplier).where(Supplier.id.in_(supplier_ids)))
    }  # type: ignore[union-attr]
    lookups = _Lookups.load(session, retailer_ids)
    wanted: set[tuple[int, str]] = set()
    for order in orders:
        for supplier_id in _suppliers_of(connections, order.retailer_id):
            for line in lines_by_order[order.id]:  # type: ignore[index]
                wanted.add((supplier_id, lookups.sku(order.retailer_id, supplier_id, line.sku)))
    products = _products(session, wanted)

    now = utcnow()
    po_rows: list[dict] = []
    line_updates: list[dict] = []
    order_updates: list[dict] = []
    lines_of_po: dict[str, list[int]] = {}
    for order in orders:
        retailer = retailers[order.retailer_id]
        choices: dict[int, tuple[int, str, Decimal]] = {}  # line id → supplier, sku, cost
        reasons: dict[int, str] = {}
        for line in lines_by_order[order.id]:  # type: ignore[index]
            choice = _choose(order, line, connections, suppliers, lookups, products)
            if isinstance(choice, str):
                reasons[line.id] = choice  # type: ignore[index]
            else:
                choices[line.id] = choice  # type: ignore[index]
        carrier_by_supplier: dict[int, str | None] = {}
        for supplier_id in {c[0] for c in choices.values()}:
            try:
                carrier_by_supplier[supplier_id] = lookups.shipping(
                    order, retailer, suppliers[supplier_id]
                )
            except MissingLookupValue as exc:
                for line_id, choice in list(choices.items()):
                    if choice[0] == supplier_id:
                        reasons[line_id] = str(exc)
                        del choices[line_id]
        if reasons and order.all_or_nothing and choices:
            first = min(reasons)
            why = f"the order is all-or-nothing and another line was rejected: {reasons[first]}"
            for line_id in choices:
                reasons[line_id] = why
            choices = {}
        for line_id, reason in reasons.items():
            line_updates.append({"id": line_id, "status": "rejected", "reason": reason})
        by_supplier: dict[int, list[int]] = defaultdict(list)
        for line_id, (supplier_id, sku, cost) in choices.items():
            by_supplier[supplier_id].append(line_id)
            line_updates.append(
                {
                    "id": line_id,
                    "status": "routed",
                    "reason": None,
                    "supplier_id": supplier_id,
                    "supplier_sku": sku,
                    "supplier_unit_cost": cost,
                }
            )
        quantities = {line.id: line.quantity for line in lines_by_order[order.id]}  # type: ignore[index]
        for supplier_id, line_ids in by_supplier.items():
            supplier = suppliers[supplier_id]
            connection = connections.get((order.retailer_id, supplier_id))
            held = hold_reason(connection, supplier)
            number = po_number(supplier.code, order.id)  # type: ignore[arg-type]
            lines_of_po[number] = line_ids
            po_rows.append(
                {
                    "po_number": number,
                    "idempotency_key": idempotency_key(
                        retailer.code, order.source_order_id, supplier.code
                    ),
                    "order_id": order.id,
                    "retailer_id": order.retailer_id,
                    "supplier_id": supplier_id,
                    "connection_id": connection.id if connection else None,
                    "state": "on_hold" if held else "awaiting_sync",
                    "reason": held,
                    "total": sum(
                        (choices[i][2] * quantities[i] for i in line_ids), Decimal("0.00")
                    ),
                    "carrier_service": carrier_by_supplier.get(supplier_id),
                    "send_attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        summary = "; ".join(
            f"line {_line_no(lines_by_order[order.id], i)}: {r}"  # type: ignore[index]
            for i, r in sorted(reasons.items())
        )
        if not choices:
            status = "rejected"
            outcome.rejected += 1
            outcome.rejections.append(f"order {retailer.code}:{order.source_order_id}: {summary}")
        elif reasons:
            status = "partially_routed"
            outcome.partially_routed += 1
        else:
            status = "routed"
            outcome.routed += 1
        outcome.lines_rejected += len(reasons)
        order_updates.append(
            {
                "id": order.id,
                "status": status,
                "reason": summary or None,
                "routed_at": now,
                "updated_at": now,
            }
        )

    if po_rows:
        session.execute(sa.insert(PurchaseOrder), po_rows)
        created = session.execute(
            sa.select(
                PurchaseOrder.id, PurchaseOrder.po_number, PurchaseOrder.state, PurchaseOrder.reason
            ).where(
                PurchaseOrder.po_number.in_(list(lines_of_po))  # type: ignore[attr-defined]
            )
        ).all()
        po_id_of = {row.po_number: row.id for row in created}
        po_of_line = {i: po_id_of[number] for number, ids in lines_of_po.items() for i in ids}
        for update in line_updates:
            if update["id"] in po_of_line:
                update["po_id"] = po_of_line[update["id"]]
        record_created(session, [(row.id, row.state, row.reason) for row in created], actor=actor)
        outcome.pos_created.extend(po_id_of.values())
    routed = [u for u in line_updates if u["status"] == "routed"]
    rejected = [u for u in line_updates if u["status"] == "rejected"]
    if routed:
        session.execute(sa.update(OrderLine), routed)
    if rejected:
        session.execute(sa.update(OrderLine), rejected)
    session.execute(sa.update(RetailOrder), order_updates)
    return outcome


def _claim(session: Session, limit: int) -> list[int]:
    """Take up to ``limit`` received orders, so that a concurrent run takes others.

    PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` locks them (a concurrent run skips them).
    SQLite: one UPDATE, so the transaction starts with a write and holds the database's
    write lock (a transaction that reads first could not wait for that lock later).
    """
    pick = (
        sa.select(RetailOrder.id)
        .where(RetailOrder.status == "received")
        .order_by(RetailOrder.id)  # type: ignore[arg-type]
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        return list(session.execute(pick.with_for_update(skip_locked=True)).scalars())
    result = session.execute(
        sa.update(RetailOrder)
        .where(RetailOrder.status == "received", RetailOrder.id.in_(pick.scalar_subquery()))  # type: ignore[union-attr]
        .values(updated_at=utcnow())
        .returning(RetailOrder.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars())


def _connections(
    session: Session, retailer_ids: set[int]
) -> dict[tuple[int, int], RetailerConnection]:
    """The newest routable connection per (retailer, supplier): live ones over disconnected."""
    found: dict[tuple[int, int], RetailerConnection] = {}
    rows = session.exec(
        select(RetailerConnection)
        .where(
            RetailerConnection.retailer_id.in_(retailer_ids),  # type: ignore[attr-defined]
            RetailerConnection.status.in_(ROUTABLE_CONNECTION_STATUSES),  # type: ignore[attr-defined]
        )
        .order_by(RetailerConnection.id)  # type: ignore[arg-type]
    )
    for connection in rows:
        key = (connection.retailer_id, connection.supplier_id)
        if key not in found or found[key].status == "disconnected":
            found[key] = connection
    return found


def _suppliers_of(
    connections: dict[tuple[int, int], RetailerConnection], retailer_id: int
) -> list[int]:
    return sorted(supplier_id for (r, supplier_id) in connections if r == retailer_id)


def _products(
    session: Session, wanted: set[tuple[int, str]]
) -> dict[tuple[int, str], tuple[str, int, Decimal]]:
    """(supplier, sku) → (status, quantity, cost) for the products asked for."""
    by_supplier: dict[int, set[str]] = defaultdict(set)
    for supplier_id, sku in wanted:
        by_supplier[supplier_id].add(sku)
    found: dict[tuple[int, str], tuple[str, int, Decimal]] = {}
    for supplier_id, skus in by_supplier.items():
        ordered = sorted(skus)
        for chunk in chunked(ordered, 900):
            rows = session.execute(
                sa.select(Product.sku, Product.status, Product.quantity, Product.cost).where(
                    Product.supplier_id == supplier_id,
                    Product.sku.in_(chunk),  # type: ignore[attr-defined]
                )
            )
            for sku, status, quantity, cost in rows:
                found[(supplier_id, sku)] = (
                    status,
                    quantity,
                    Decimal(str(cost)).quantize(Decimal("0.01")),
                )
    return found


def _choose(
    order: RetailOrder,
    line: OrderLine,
    connections: dict[tuple[int, int], RetailerConnection],
    suppliers: dict[int, Supplier],
    lookups: _Lookups,
    products: dict[tuple[int, str], tuple[str, int, Decimal]],
) -> tuple[int, str, Decimal] | str:
    """(supplier, its SKU, its cost) for the line, or why there is none."""
    carried = []
    for supplier_id in _suppliers_of(connections, order.retailer_id):
        sku = lookups.sku(order.retailer_id, supplier_id, line.sku)
        product = products.get((supplier_id, sku))
        if product is not None:
            carried.append((supplier_id, sku, *product))
    if not carried:
        return (
            f"SKU {line.sku} is in the catalog of no supplier this retailer is connected to "
            f"(map it with: supplyline lookup set RETAILER sku {line.sku} SUPPLIER_SKU)"
        )
    active = [c for c in carried if c[2] == "active"]
    if not active:
        names = ", ".join(f"{suppliers[c[0]].code} ({c[1]})" for c in carried)
        return f"SKU {line.sku} is discontinued at {names}"
    stocked = [c for c in active if c[3] >= line.quantity]
    if not stocked:
        names = ", ".join(f"{suppliers[c[0]].code} has {c[3]}" for c in active)
        return f"quantity {line.quantity} of SKU {line.sku} is above the stock ({names})"

    def preference(candidate: tuple) -> tuple:
        connection = connections[(order.retailer_id, candidate[0])]
        return (connection.status != "active", candidate[4], suppliers[candidate[0]].code)

    supplier_id, sku, _status, _quantity, cost = min(stocked, key=preference)
    return supplier_id, sku, cost


def _line_no(lines: list[OrderLine], line_id: int) -> int:
    return next(line.line_no for line in lines if line.id == line_id)


@dataclass
class _Lookups:
    """The ``sku`` and ``shipping_method`` lookups of a batch's retailers, read once."""

    tables: dict[tuple[int, int | None, str], tuple[dict[str, str], str | None]]

    @classmethod
    def load(cls, session: Session, retailer_ids: set[int]) -> _Lookups:
        tables: dict[int, tuple[int, int | None, str, str | None]] = {
            t.id: (t.retailer_id, t.supplier_id, t.name, t.default_value)  # type: ignore[misc]
            for t in session.exec(
                select(LookupTable).where(
                    LookupTable.retailer_id.in_(retailer_ids),  # type: ignore[attr-defined]
                    LookupTable.name.in_((SKU_TABLE, SHIPPING_TABLE)),  # type: ignore[attr-defined]
                )
            )
        }
        entries: dict[int, dict[str, str]] = defaultdict(dict)
        if tables:
            for entry in session.exec(
                select(LookupEntry).where(LookupEntry.table_id.in_(list(tables)))
            ):  # type: ignore[attr-defined]
                entries[entry.table_id][entry.key] = entry.value
        return cls(
            {
                (r, s, name): (entries[table_id], default)
                for table_id, (r, s, name, default) in tables.items()
            }
        )

    def _resolve(self, retailer_id: int, supplier_id: int, name: str, key: str) -> str | None:
        scoped = [
            self.tables.get((retailer_id, supplier_id, name)),
            self.tables.get((retailer_id, None, name)),
        ]
        present = [t for t in scoped if t is not None]
        for entries, _default in present:
            if key.strip() in entries:
                return entries[key.strip()]
        for _entries, default in present:
            if default is not None:
                return default
        return None

    def has_table(self, retailer_id: int, supplier_id: int, name: str) -> bool:
        return (retailer_id, supplier_id, name) in self.tables or (
            retailer_id,
            None,
            name,
        ) in self.tables

    def sku(self, retailer_id: int, supplier_id: int, sku: str) -> str:
        return self._resolve(retailer_id, supplier_id, SKU_TABLE, sku) or sku

    def shipping(self, order: RetailOrder, retailer: Retailer, supplier: Supplier) -> str | None:
        """The carrier service for the order's shipping method; as sent when no table maps it."""
        method = order.shipping_method
        if method is None:
            return None
        value = self._resolve(order.retailer_id, supplier.id, SHIPPING_TABLE, method)  # type: ignore[arg-type]
        if value is not None:
            return value
        if self.has_table(order.retailer_id, supplier.id, SHIPPING_TABLE):  # type: ignore[arg-type]
            raise MissingLookupValue(SHIPPING_TABLE, method, retailer.code, supplier.code)
        return method
