"""Orders: retailers' orders and their lines, purchase orders, the PO event log (outbox),
and the retailer's all-or-nothing setting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 11:00:27.952004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retail_order",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("retailer_id", sa.BigInteger(), nullable=False),
        sa.Column("connector_id", sa.BigInteger(), nullable=True),
        sa.Column("source_order_id", sa.String(length=128), nullable=False),
        sa.Column("dialect", sa.String(length=16), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("all_or_nothing", sa.Boolean(), nullable=False),
        sa.Column("ship_to", sa.JSON(), nullable=False),
        sa.Column("shipping_method", sa.String(length=128), nullable=True),
        sa.Column("carrier_code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "dialect IN ('native', 'siteflow', 'file')", name="ck_retail_order_dialect"
        ),
        sa.CheckConstraint(
            "status IN ('received', 'routed', 'partially_routed', 'rejected', 'cancelled')",
            name="ck_retail_order_status",
        ),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["retailer_connector.id"],
        ),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            ["retailer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("retailer_id", "source_order_id", name="uq_retail_order_source"),
    )
    with op.batch_alter_table("retail_order", schema=None) as batch_op:
        batch_op.create_index("ix_retail_order_status", ["status"], unique=False)

    op.create_table(
        "purchase_order",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("po_number", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("retailer_id", sa.BigInteger(), nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("carrier_service", sa.String(length=128), nullable=True),
        sa.Column("supplier_order_id", sa.String(length=128), nullable=True),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("send_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("purchase_kind", sa.String(length=8), nullable=True),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "purchase_kind IN ('auto', 'manual')", name="ck_purchase_order_purchase_kind"
        ),
        sa.CheckConstraint(
            "state IN ('on_hold', 'awaiting_sync', 'awaiting_purchase', 'submitted', "
            "'acknowledged', 'partially_shipped', 'shipped', 'delivered', 'rejected', "
            "'cancel_requested', 'cancelled', 'failed')",
            name="ck_purchase_order_state",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["retailer_connection.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["retail_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            ["retailer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("order_id", "supplier_id", name="uq_purchase_order_per_supplier"),
        sa.UniqueConstraint("po_number"),
    )
    with op.batch_alter_table("purchase_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_purchase_order_state_supplier", ["state", "supplier_id"], unique=False
        )

    op.create_table(
        "order_line",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("source_item_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("supplier_id", sa.BigInteger(), nullable=True),
        sa.Column("supplier_sku", sa.String(length=64), nullable=True),
        sa.Column("supplier_unit_cost", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("po_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'routed', 'rejected', 'cancelled')", name="ck_order_line_status"
        ),
        sa.CheckConstraint("quantity > 0", name="ck_order_line_quantity"),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["retail_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["po_id"],
            ["purchase_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "line_no", name="uq_order_line_no"),
    )
    with op.batch_alter_table("order_line", schema=None) as batch_op:
        batch_op.create_index("ix_order_line_po", ["po_id"], unique=False)

    op.create_table(
        "po_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("po_id", sa.BigInteger(), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["po_id"],
            ["purchase_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("po_event", schema=None) as batch_op:
        batch_op.create_index("ix_po_event_po", ["po_id"], unique=False)

    # A plain ADD COLUMN: SQLite need not rebuild a table that others reference.
    op.add_column(
        "retailer",
        sa.Column("all_or_nothing", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("retailer", schema=None) as batch_op:
        batch_op.drop_column("all_or_nothing")

    with op.batch_alter_table("po_event", schema=None) as batch_op:
        batch_op.drop_index("ix_po_event_po")

    op.drop_table("po_event")
    with op.batch_alter_table("order_line", schema=None) as batch_op:
        batch_op.drop_index("ix_order_line_po")

    op.drop_table("order_line")
    with op.batch_alter_table("purchase_order", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_order_state_supplier")

    op.drop_table("purchase_order")
    with op.batch_alter_table("retail_order", schema=None) as batch_op:
        batch_op.drop_index("ix_retail_order_status")

    op.drop_table("retail_order")
