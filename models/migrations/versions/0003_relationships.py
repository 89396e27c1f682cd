"""Retailers, supplier ordering rules, connections and the funds ledger, credentials,
connectors, lookups and the audit trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:14:21.105934

It only creates tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_audit_event_entity", "audit_event", ["entity_type", "entity_id"], unique=False
    )

    op.create_table(
        "retailer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("registration_number", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "lookup_table",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("retailer_id", sa.BigInteger(), nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("default_value", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            ["retailer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_lookup_table_retailer",
        "lookup_table",
        ["retailer_id", "name"],
        unique=True,
        sqlite_where=sa.text("supplier_id IS NULL"),
        postgresql_where=sa.text("supplier_id IS NULL"),
    )
    op.create_index(
        "uq_lookup_table_supplier",
        "lookup_table",
        ["retailer_id", "supplier_id", "name"],
        unique=True,
        sqlite_where=sa.text("supplier_id IS NOT NULL"),
        postgresql_where=sa.text("supplier_id IS NOT NULL"),
    )

    op.create_table(
        "retailer_connection",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("retailer_id", sa.BigInteger(), nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_ref", sa.String(length=255), nullable=True),
        sa.Column("terms_url_accepted", sa.String(length=2048), nullable=True),
        sa.Column("terms_accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_sync", sa.Boolean(), nullable=False),
        sa.Column("auto_purchase", sa.Boolean(), nullable=False),
        sa.Column("payment_method", sa.String(length=16), nullable=True),
        sa.Column("available_funds", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("funds_source", sa.String(length=16), nullable=True),
        sa.Column("funds_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "funds_source IN ('operator', 'supplier')", name="ck_connection_funds_source"
        ),
        sa.CheckConstraint(
            "payment_method IN ('ach', 'line_of_credit', 'credit_card')",
            name="ck_connection_payment",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'rejected', 'disconnected')",
            name="ck_connection_status",
        ),
        sa.CheckConstraint("available_funds >= 0", name="ck_connection_funds_not_negative"),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            ["retailer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_connection_supplier_status",
        "retailer_connection",
        ["supplier_id", "status"],
        unique=False,
    )
    op.create_index(
        "uq_connection_live",
        "retailer_connection",
        ["retailer_id", "supplier_id"],
        unique=True,
        sqlite_where=sa.text("status IN ('pending', 'active')"),
        postgresql_where=sa.text("status IN ('pending', 'active')"),
    )

    op.create_table(
        "retailer_connector",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("retailer_id", sa.BigInteger(), nullable=False),
        sa.Column("connector_type", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "connector_type IN ('native_api', 'siteflow_api', 'sftp')", name="ck_connector_type"
        ),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            ["retailer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "supplier_ordering",
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("ordering_mode", sa.String(length=8), nullable=False),
        sa.Column("terms_url", sa.String(length=2048), nullable=True),
        sa.Column("order_connector_type", sa.String(length=16), nullable=True),
        sa.Column("order_connector_settings", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "order_connector_type IN ('rest_api', 'sftp')", name="ck_supplier_ordering_connector"
        ),
        sa.CheckConstraint(
            "ordering_mode IN ('instant', 'review')", name="ck_supplier_ordering_mode"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
        ),
        sa.PrimaryKeyConstraint("supplier_id"),
    )
    op.create_table(
        "credential",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("retailer_id", sa.BigInteger(), nullable=True),
        sa.Column("supplier_id", sa.BigInteger(), nullable=True),
        sa.Column("connector_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(owner_kind = 'retailer' AND retailer_id IS NOT NULL AND supplier_id IS NULL"
            " AND connector_id IS NULL)"
            " OR (owner_kind = 'supplier' AND supplier_id IS NOT NULL AND retailer_id IS NULL"
            " AND connector_id IS NULL)"
            " OR (owner_kind = 'connector' AND connector_id IS NOT NULL AND retailer_id IS NOT NULL"
            " AND supplier_id IS NULL)",
            name="ck_credential_one_owner",
        ),
        sa.CheckConstraint(
            "owner_kind IN ('retailer', 'supplier', 'connector')", name="ck_credential_owner"
        ),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["retailer_connector.id"],
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
        sa.UniqueConstraint("client_id"),
    )
    op.create_table(
        "funds_movement",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('purchase', 'release')", name="ck_funds_movement_kind"),
        sa.CheckConstraint("amount > 0", name="ck_funds_movement_positive"),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["retailer_connection.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connection_id", "reference", "kind", name="uq_funds_movement_once"),
    )
    op.create_table(
        "lookup_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("table_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["table_id"],
            ["lookup_table.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("table_id", "key", name="uq_lookup_entry_key"),
    )
    op.create_table(
        "credential_secret",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("credential_id", sa.BigInteger(), nullable=False),
        sa.Column("hash_scheme", sa.String(length=32), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credential.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_credential_secret_credential_id", "credential_secret", ["credential_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("credential_secret")
    op.drop_table("lookup_entry")
    op.drop_table("funds_movement")
    op.drop_table("credential")
    op.drop_table("supplier_ordering")
    op.drop_table("retailer_connector")
    op.drop_table("retailer_connection")
    op.drop_table("lookup_table")
    op.drop_table("retailer")
    op.drop_table("audit_event")
