"""Retailers' orders, their lines, and the purchase orders (POs) they become at suppliers.

An order is stored once per (retailer, the retailer's order id). Routing gives every line a
supplier or a reason; each order becomes at most one PO per supplier (a unique key), with a
deterministic PO number and idempotency key. A PO moves through ``PO_STATES`` only along
``PO_TRANSITIONS``, and each move is written to ``po_event`` in the same transaction: the event
log is also the outbox that pushes to retailers read.

Sending a PO is guarded by a lease (``send_lease_until``) taken by a conditional UPDATE: one
sender at a time, whatever the number of workers. ``send_attempts`` counts the leases taken:
a PO with an earlier attempt may already be at the supplier, so it is looked up there by its
number before it is sent again.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.catalog import BigId, in_values, timestamp_column, utcnow
from models.relationships import MoneyAmount

ORDER_DIALECTS = ("native", "siteflow", "file")
ORDER_STATUSES = (
    "received",  # stored, not routed yet
    "routed",  # every line has a PO
    "partially_routed",  # some lines were rejected, the others have POs
    "rejected",  # no line could be routed (or all-or-nothing and one could not)
    "cancelled",
)
LINE_STATUSES = ("pending", "routed", "rejected", "cancelled")

PO_STATES = (
    "on_hold",
    "awaiting_sync",
    "awaiting_purchase",
    "submitted",
    "acknowledged",
    "partially_shipped",
    "shipped",
    "delivered",
    "rejected",
    "cancel_requested",
    "cancelled",
    "failed",
)
# Not yet at the supplier: these may be sent (or cancelled without asking the supplier).
UNSENT_PO_STATES = ("on_hold", "awaiting_sync", "failed")
# At the supplier and still open.
OPEN_SENT_PO_STATES = (
    "awaiting_purchase",
    "submitted",
    "acknowledged",
    "partially_shipped",
    "cancel_requested",
)
FINAL_PO_STATES = ("delivered", "rejected", "cancelled")

_FULFILLMENT = ("acknowledged", "partially_shipped", "shipped", "delivered")
# Where each state may go. A status never goes backwards: shipped never returns to submitted.
PO_TRANSITIONS: dict[str, frozenset[str]] = {
    "on_hold": frozenset({"awaiting_sync", "submitted", "awaiting_purchase", "rejected"})
    | frozenset({"failed", "cancelled"}),
    "awaiting_sync": frozenset({"submitted", "awaiting_purchase", "on_hold", "rejected"})
    | frozenset({"failed", "cancelled"}),
    "failed": frozenset({"awaiting_sync", "on_hold", "cancelled"}),
    # Sent, not paid: a person purchases it (→ submitted), or the supplier moves on anyway.
    "awaiting_purchase": frozenset({"submitted", "rejected", "cancel_requested", "cancelled"})
    | frozenset(_FULFILLMENT),
    "submitted": frozenset({"rejected", "cancel_requested", "cancelled"}) | frozenset(_FULFILLMENT),
    "acknowledged": frozenset({"partially_shipped", "shipped", "delivered", "rejected"})
    | frozenset({"cancel_requested", "cancelled"}),
    "partially_shipped": frozenset({"shipped", "delivered", "cancel_requested", "cancelled"}),
    "shipped": frozenset({"delivered"}),
    # The supplier may refuse a cancellation: the PO goes on to what it reports.
    "cancel_requested": frozenset({"cancelled"}) | frozenset(_FULFILLMENT),
    "delivered": frozenset(),
    "rejected": frozenset(),
    "cancelled": frozenset(),
}
PURCHASE_KINDS = ("auto", "manual")


class RetailOrder(SQLModel, table=True):
    """A retailer's order as it arrived (API or file), normalised."""

    __tablename__ = "retail_order"
    __table_args__ = (
        sa.CheckConstraint(in_values("status", ORDER_STATUSES), name="ck_retail_order_status"),
        sa.CheckConstraint(in_values("dialect", ORDER_DIALECTS), name="ck_retail_order_dialect"),
        # Idempotency: a retailer's order id is stored once.
        sa.UniqueConstraint("retailer_id", "source_order_id", name="uq_retail_order_source"),
        sa.Index("ix_retail_order_status", "status"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    retailer_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer.id")
    connector_id: int | None = Field(
        default=None, sa_type=sa.BigInteger, foreign_key="retailer_connector.id"
    )
    source_order_id: str = Field(sa_type=sa.String(128), description="The retailer's order id.")
    dialect: str = Field(sa_type=sa.String(16))
    payload_sha256: str = Field(
        sa_type=sa.String(64),
        description="Of the normalised order: the same id with other content is refused.",
    )
    status: str = Field(default="received", sa_type=sa.String(24))
    all_or_nothing: bool = False
    ship_to: dict = Field(default_factory=dict, sa_type=sa.JSON)
    shipping_method: str | None = Field(default=None, sa_type=sa.String(128))
    carrier_code: str | None = Field(default=None, sa_type=sa.String(64))
    reason: str | None = Field(default=None, sa_type=sa.Text)
    received_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    routed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class OrderLine(SQLModel, table=True):
    """A line of an order: the retailer's SKU and, once routed, the supplier's and its PO."""

    __tablename__ = "order_line"
    __table_args__ = (
        sa.CheckConstraint(in_values("status", LINE_STATUSES), name="ck_order_line_status"),
        sa.CheckConstraint("quantity > 0", name="ck_order_line_quantity"),
        sa.UniqueConstraint("order_id", "line_no", name="uq_order_line_no"),
        sa.Index("ix_order_line_po", "po_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    order_id: int = Field(sa_type=sa.BigInteger, foreign_key="retail_order.id")
    line_no: int
    source_item_id: str = Field(sa_type=sa.String(128))
    sku: str = Field(sa_type=sa.String(128), description="The retailer's SKU.")
    quantity: int
    unit_cost: Decimal | None = Field(
        default=None, sa_type=MoneyAmount, description="The retailer's price, as sent."
    )
    status: str = Field(default="pending", sa_type=sa.String(16))
    reason: str | None = Field(default=None, sa_type=sa.Text)
    supplier_id: int | None = Field(default=None, sa_type=sa.BigInteger, foreign_key="supplier.id")
    supplier_sku: str | None = Field(default=None, sa_type=sa.String(64))
    supplier_unit_cost: Decimal | None = Field(
        default=None, sa_type=MoneyAmount, description="The supplier's cost, from its catalog."
    )
    po_id: int | None = Field(default=None, sa_type=sa.BigInteger, foreign_key="purchase_order.id")
    # Fulfillment, as the supplier reports it (tasks.fulfillment); quantities only grow.
    accepted_quantity: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    backordered_quantity: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    backorder_date: date | None = None
    rejected_quantity: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    rejection_reason: str | None = Field(default=None, sa_type=sa.Text)
    cancelled_quantity: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    cancellation_reason: str | None = Field(default=None, sa_type=sa.Text)
    shipped_quantity: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    delivered_quantity: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    acknowledged_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )


class PurchaseOrder(SQLModel, table=True):
    """What one supplier is asked to ship for one order."""

    __tablename__ = "purchase_order"
    __table_args__ = (
        sa.CheckConstraint(in_values("state", PO_STATES), name="ck_purchase_order_state"),
        sa.CheckConstraint(
            in_values("purchase_kind", PURCHASE_KINDS), name="ck_purchase_order_purchase_kind"
        ),
        sa.UniqueConstraint("order_id", "supplier_id", name="uq_purchase_order_per_supplier"),
        sa.Index("ix_purchase_order_state_supplier", "state", "supplier_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    po_number: str = Field(sa_type=sa.String(64), unique=True)
    idempotency_key: str = Field(sa_type=sa.String(64), unique=True)
    order_id: int = Field(sa_type=sa.BigInteger, foreign_key="retail_order.id")
    retailer_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer.id")
    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id")
    connection_id: int | None = Field(
        default=None, sa_type=sa.BigInteger, foreign_key="retailer_connection.id"
    )
    state: str = Field(sa_type=sa.String(24))
    reason: str | None = Field(default=None, sa_type=sa.Text)
    total: Decimal = Field(sa_type=MoneyAmount)
    carrier_service: str | None = Field(default=None, sa_type=sa.String(128))
    supplier_order_id: str | None = Field(
        default=None, sa_type=sa.String(128), description="The supplier's own reference."
    )
    send_attempts: int = 0
    send_lease_until: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    purchase_kind: str | None = Field(default=None, sa_type=sa.String(8))
    purchased_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    submitted_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


PO_EVENT_KINDS = ("state", "acknowledgement", "shipment", "cancellation", "delivery")


class PoEvent(SQLModel, table=True):
    """A PO's change, written with the change: its history and the outbox of pushes.

    ``kind`` is ``state`` for a move between PO states; fulfillment adds line-level kinds whose
    details (lines, quantities, tracking) are in ``payload``.
    """

    __tablename__ = "po_event"
    __table_args__ = (sa.Index("ix_po_event_po", "po_id"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    po_id: int = Field(sa_type=sa.BigInteger, foreign_key="purchase_order.id")
    from_state: str | None = Field(default=None, sa_type=sa.String(24))
    to_state: str = Field(sa_type=sa.String(24))
    kind: str = Field(
        default="state", sa_type=sa.String(32), sa_column_kwargs={"server_default": "state"}
    )
    payload: dict | None = Field(default=None, sa_type=sa.JSON)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    actor: str = Field(sa_type=sa.String(255))
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    pushed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Shipment(SQLModel, table=True):
    """A parcel (or pallet) the supplier sent for a PO, with its tracking."""

    __tablename__ = "shipment"
    __table_args__ = (
        sa.UniqueConstraint("po_id", "supplier_shipment_id", name="uq_shipment_supplier_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    po_id: int = Field(sa_type=sa.BigInteger, foreign_key="purchase_order.id")
    supplier_shipment_id: str = Field(sa_type=sa.String(128))
    carrier: str = Field(sa_type=sa.String(64))
    service: str | None = Field(default=None, sa_type=sa.String(128))
    tracking_number: str = Field(sa_type=sa.String(128))
    tracking_url: str | None = Field(default=None, sa_type=sa.Text)
    shipped_at: datetime = Field(sa_column=timestamp_column())
    delivered_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ShipmentLine(SQLModel, table=True):
    """How many of one order line a shipment holds."""

    __tablename__ = "shipment_line"
    __table_args__ = (
        sa.UniqueConstraint("shipment_id", "order_line_id", name="uq_shipment_line"),
        sa.CheckConstraint("quantity > 0", name="ck_shipment_line_quantity"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    shipment_id: int = Field(sa_type=sa.BigInteger, foreign_key="shipment.id")
    order_line_id: int = Field(sa_type=sa.BigInteger, foreign_key="order_line.id")
    line_no: int
    quantity: int


SUPPLIER_UPDATE_KINDS = ("acknowledgement", "shipment", "cancellation", "delivery")
SUPPLIER_UPDATE_OUTCOMES = ("applied", "duplicate", "stale", "conflict")


class SupplierUpdate(SQLModel, table=True):
    """Every update a supplier sent (API or file), kept with what became of it.

    ``applied`` changed something; ``duplicate`` said again what was known; ``stale`` came out
    of order and would have moved something backwards; ``conflict`` contradicts what is known
    (a shipment id with another tracking number, more shipped than ordered) and was not
    applied: ``detail`` says why.
    """

    __tablename__ = "supplier_update"
    __table_args__ = (
        sa.CheckConstraint(
            in_values("kind", SUPPLIER_UPDATE_KINDS), name="ck_supplier_update_kind"
        ),
        sa.CheckConstraint(
            in_values("outcome", SUPPLIER_UPDATE_OUTCOMES), name="ck_supplier_update_outcome"
        ),
        sa.Index("ix_supplier_update_dedupe", "supplier_id", "dedupe_key"),
        sa.Index("ix_supplier_update_po", "po_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id")
    po_id: int | None = Field(default=None, sa_type=sa.BigInteger, foreign_key="purchase_order.id")
    po_number: str = Field(sa_type=sa.String(128), description="As the supplier sent it.")
    source: str = Field(
        sa_type=sa.String(512), description="'api', or 'sftp:<file name>' for a file."
    )
    kind: str = Field(sa_type=sa.String(32))
    dedupe_key: str = Field(sa_type=sa.String(64), description="sha256 of what it says.")
    payload: dict = Field(default_factory=dict, sa_type=sa.JSON)
    outcome: str = Field(sa_type=sa.String(16))
    detail: str | None = Field(default=None, sa_type=sa.Text)
    received_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
