"""Fulfillment: what suppliers report per order line (acknowledged, backordered, rejected,
cancelled, shipped, delivered quantities), shipments with tracking, and the log of every
update a supplier sent with what became of it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LINE_QUANTITIES = (
    "accepted_quantity",
    "backordered_quantity",
    "rejected_quantity",
    "cancelled_quantity",
    "shipped_quantity",
    "delivered_quantity",
)


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite need not rebuild a table that others reference.
    for name in LINE_QUANTITIES:
        op.add_column(
            "order_line", sa.Column(name, sa.Integer(), server_default="0", nullable=False)
        )
    op.add_column("order_line", sa.Column("backorder_date", sa.Date(), nullable=True))
    op.add_column("order_line", sa.Column("rejection_reason", sa.Text(), nullable=True))
    op.add_column("order_line", sa.Column("cancellation_reason", sa.Text(), nullable=True))
    op.add_column(
        "order_line", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True)
    )

    op.create_table(
        "shipment",
        sa.Column("id", BigId, nullable=False),
        sa.Column("po_id", sa.BigInteger(), nullable=False),
        sa.Column("supplier_shipment_id", sa.String(length=128), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("tracking_number", sa.String(length=128), nullable=False),
        sa.Column("tracking_url", sa.Text(), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["po_id"], ["purchase_order.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("po_id", "supplier_shipment_id", name="uq_shipment_supplier_id"),
    )
    op.create_table(
        "shipment_line",
        sa.Column("id", BigId, nullable=False),
        sa.Column("shipment_id", sa.BigInteger(), nullable=False),
        sa.Column("order_line_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_shipment_line_quantity"),
        sa.ForeignKeyConstraint(["order_line_id"], ["order_line.id"]),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shipment_id", "order_line_id", name="uq_shipment_line"),
    )
    op.create_table(
        "supplier_update",
        sa.Column("id", BigId, nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("po_id", sa.BigInteger(), nullable=True),
        sa.Column("po_number", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('acknowledgement', 'shipment', 'cancellation', 'delivery')",
            name="ck_supplier_update_kind",
        ),
        sa.CheckConstraint(
            "outcome IN ('applied', 'duplicate', 'stale', 'conflict')",
            name="ck_supplier_update_outcome",
        ),
        sa.ForeignKeyConstraint(["po_id"], ["purchase_order.id"]),
        sa.ForeignKeyConstraint(["supplier_id"], ["supplier.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supplier_update", schema=None) as batch_op:
        batch_op.create_index(
            "ix_supplier_update_dedupe", ["supplier_id", "dedupe_key"], unique=False
        )
        batch_op.create_index("ix_supplier_update_po", ["po_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("supplier_update", schema=None) as batch_op:
        batch_op.drop_index("ix_supplier_update_po")
        batch_op.drop_index("ix_supplier_update_dedupe")
    op.drop_table("supplier_update")
    op.drop_table("shipment_line")
    op.drop_table("shipment")
    with op.batch_alter_table("order_line", schema=None) as batch_op:
        for name in (
            "acknowledged_at",
            "cancellation_reason",
            "rejection_reason",
            "backorder_date",
            *reversed(LINE_QUANTITIES),
        ):
            batch_op.drop_column(name)
