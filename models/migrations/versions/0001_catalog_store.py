"""Catalog store: suppliers, catalog files (upload history) and products.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 08:04:40.570798
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supplier",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("contract", sa.String(length=255), nullable=False),
        sa.Column("mapping", sa.String(length=255), nullable=True),
        sa.Column("feed_mode", sa.String(length=8), nullable=False),
        sa.Column("retire_guard_share", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("feed_mode IN ('full', 'delta')", name="ck_supplier_feed"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "catalog_file",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("original_name", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_valid", sa.Integer(), nullable=False),
        sa.Column("rows_invalid", sa.Integer(), nullable=False),
        sa.Column("rows_inserted", sa.Integer(), nullable=False),
        sa.Column("rows_updated", sa.Integer(), nullable=False),
        sa.Column("rows_retired", sa.Integer(), nullable=False),
        sa.Column("contract_name", sa.String(length=255), nullable=False),
        sa.Column("contract_version", sa.String(length=64), nullable=True),
        sa.Column("mapping_name", sa.String(length=255), nullable=True),
        sa.Column("stored_path", sa.Text(), nullable=True),
        sa.Column("error_file", sa.Text(), nullable=True),
        sa.Column("summary_file", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("duplicate_of_id", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("source IN ('sftp', 'manual', 'api')", name="ck_catalog_file_source"),
        sa.CheckConstraint(
            "status IN ('processing', 'accepted', 'partially_accepted', 'rejected', 'held',"
            " 'failed', 'duplicate')",
            name="ck_catalog_file_status",
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["catalog_file.id"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_catalog_file_supplier_received",
        "catalog_file",
        ["supplier_id", "received_at"],
        unique=False,
    )
    op.create_index(
        "uq_catalog_file_content",
        "catalog_file",
        ["supplier_id", "sha256"],
        unique=True,
        sqlite_where=sa.text(
            "status IN ('processing', 'accepted', 'partially_accepted', 'rejected', 'held')"
        ),
        postgresql_where=sa.text(
            "status IN ('processing', 'accepted', 'partially_accepted', 'rejected', 'held')"
        ),
    )

    op.create_table(
        "product",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("brand", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("cost", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
        sa.Column("map_price", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=True),
        sa.Column("msrp", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("weight_lb", sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=True),
        sa.Column("length_in", sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=True),
        sa.Column("width_in", sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=True),
        sa.Column("height_in", sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=True),
        sa.Column("image_urls", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("row_hash", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by_file_id", sa.BigInteger(), nullable=True),
        sa.Column("changed_by_source", sa.String(length=16), nullable=True),
        sa.CheckConstraint("status IN ('active', 'discontinued')", name="ck_product_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("supplier_id", "sku", name="uq_product_supplier_sku"),
    )
    op.create_index(
        "ix_product_supplier_status", "product", ["supplier_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_table("product")
    op.drop_table("catalog_file")
    op.drop_table("supplier")
