"""The outbox's delivery log: each PO event per destination of a retailer's connector
(webhook, SFTP status files), with attempts, backoff and the last answer; and an index on the
events not pushed yet.

Events recorded before this migration are marked pushed (at the time they happened): nothing
was promised to retailers for them, and a first push of a database's whole history would flood
their receivers. Retailers get every change from the upgrade on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE po_event SET pushed_at = at WHERE pushed_at IS NULL")
    op.create_table(
        "po_event_delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("connector_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('webhook', 'sftp')", name="ck_delivery_channel"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_delivery_status"
        ),
        sa.ForeignKeyConstraint(["connector_id"], ["retailer_connector.id"]),
        sa.ForeignKeyConstraint(["event_id"], ["po_event.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["retail_order.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "connector_id", "channel", name="uq_delivery_destination"),
    )
    op.create_index(
        "ix_delivery_connector_status",
        "po_event_delivery",
        ["connector_id", "status", "event_id"],
        unique=False,
    )
    op.create_index(
        "ix_delivery_order_queue",
        "po_event_delivery",
        ["order_id", "connector_id", "channel", "event_id"],
        unique=False,
    )
    op.create_index(
        "ix_po_event_unpushed",
        "po_event",
        ["id"],
        unique=False,
        sqlite_where=sa.text("pushed_at IS NULL"),
        postgresql_where=sa.text("pushed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_po_event_unpushed",
        table_name="po_event",
        sqlite_where=sa.text("pushed_at IS NULL"),
        postgresql_where=sa.text("pushed_at IS NULL"),
    )
    op.drop_index("ix_delivery_order_queue", table_name="po_event_delivery")
    op.drop_index("ix_delivery_connector_status", table_name="po_event_delivery")
    op.drop_table("po_event_delivery")
