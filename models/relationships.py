"""Retailers and their relationships: connections to suppliers, the funds ledger, credentials,
connectors, lookups and the audit trail.

Money is ``Numeric(14, 2)`` read back as ``Decimal``; arithmetic on it happens in SQL (see
tasks.funds), rounded to cents so that SQLite, which keeps numerics as doubles, stays exact.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.catalog import BigId, in_values, timestamp_column, utcnow

# instant: a retailer's connection request is active at once; review: it waits for approval.
ORDERING_MODES = ("instant", "review")
DEFAULT_ORDERING_MODE = "review"
# How purchase orders reach a supplier (the order-sync issue builds the connectors).
ORDER_CONNECTOR_TYPES = ("rest_api", "sftp")
CONNECTION_STATUSES = ("pending", "active", "rejected", "disconnected")
# A retailer has at most one connection per supplier in these states; others are history.
LIVE_CONNECTION_STATUSES = ("pending", "active")
PAYMENT_METHODS = ("ach", "line_of_credit", "credit_card")
# Payment methods that can be charged without a person: the only ones auto purchase uses.
UNATTENDED_PAYMENT_METHODS = ("ach", "line_of_credit")
FUNDS_SOURCES = ("operator", "supplier")
FUNDS_MOVEMENT_KINDS = ("purchase", "release")
CONNECTOR_TYPES = ("native_api", "siteflow_api", "sftp")
API_CONNECTOR_TYPES = ("native_api", "siteflow_api")
CREDENTIAL_OWNER_KINDS = ("retailer", "supplier", "connector")

MoneyAmount = sa.Numeric(14, 2)


class SupplierOrdering(SQLModel, table=True):
    """A supplier's ordering rules; a supplier without a row uses the defaults.

    A table of its own rather than columns on ``supplier``: adding CHECKed columns there would
    make SQLite rebuild a table that ``catalog_file`` references.
    """

    __tablename__ = "supplier_ordering"
    __table_args__ = (
        sa.CheckConstraint(
            in_values("ordering_mode", ORDERING_MODES), name="ck_supplier_ordering_mode"
        ),
        sa.CheckConstraint(
            in_values("order_connector_type", ORDER_CONNECTOR_TYPES),
            name="ck_supplier_ordering_connector",
        ),
    )

    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id", primary_key=True)
    ordering_mode: str = Field(default=DEFAULT_ORDERING_MODE, sa_type=sa.String(8))
    terms_url: str | None = Field(
        default=None,
        sa_type=sa.String(2048),
        description="When set, a connection request must accept exactly this URL.",
    )
    order_connector_type: str | None = Field(default=None, sa_type=sa.String(16))
    order_connector_settings: dict | None = Field(default=None, sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Retailer(SQLModel, table=True):
    """A customer of the operator: it sends orders that become POs to suppliers."""

    __tablename__ = "retailer"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    code: str = Field(sa_type=sa.String(64), unique=True)
    name: str = Field(sa_type=sa.String(255))
    registration_number: str | None = Field(
        default=None,
        sa_type=sa.String(128),
        description="The operator's own id for this customer.",
    )
    all_or_nothing: bool = Field(
        default=False,
        sa_column_kwargs={"server_default": sa.false()},
        description="Reject a whole order when one of its lines cannot be routed.",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class RetailerConnection(SQLModel, table=True):
    """A retailer's account bound to a supplier's (account binding).

    Status changes are conditional UPDATEs on the current status (tasks.connections), so two
    operators acting at once cannot overwrite each other. Reconnecting is a new row.
    """

    __tablename__ = "retailer_connection"
    __table_args__ = (
        sa.CheckConstraint(in_values("status", CONNECTION_STATUSES), name="ck_connection_status"),
        sa.CheckConstraint(
            in_values("payment_method", PAYMENT_METHODS), name="ck_connection_payment"
        ),
        sa.CheckConstraint(
            in_values("funds_source", FUNDS_SOURCES), name="ck_connection_funds_source"
        ),
        sa.CheckConstraint("available_funds >= 0", name="ck_connection_funds_not_negative"),
        sa.Index(
            "uq_connection_live",
            "retailer_id",
            "supplier_id",
            unique=True,
            sqlite_where=sa.text(in_values("status", LIVE_CONNECTION_STATUSES)),
            postgresql_where=sa.text(in_values("status", LIVE_CONNECTION_STATUSES)),
        ),
        sa.Index("ix_connection_supplier_status", "supplier_id", "status"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    retailer_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer.id")
    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id")
    status: str = Field(default="pending", sa_type=sa.String(16))
    account_ref: str | None = Field(
        default=None,
        sa_type=sa.String(255),
        description="The retailer's account at the supplier, shown as the linked account name.",
    )
    terms_url_accepted: str | None = Field(default=None, sa_type=sa.String(2048))
    terms_accepted_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    auto_sync: bool = False
    auto_purchase: bool = False
    payment_method: str | None = Field(default=None, sa_type=sa.String(16))
    available_funds: Decimal | None = Field(
        default=None,
        sa_type=MoneyAmount,
        description="Funds or remaining credit; purchases take from it, cancellations give back.",
    )
    funds_source: str | None = Field(default=None, sa_type=sa.String(16))
    funds_updated_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    requested_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    decided_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    disconnected_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )


class FundsMovement(SQLModel, table=True):
    """The funds ledger: one purchase and at most one release per PO reference."""

    __tablename__ = "funds_movement"
    __table_args__ = (
        sa.CheckConstraint(in_values("kind", FUNDS_MOVEMENT_KINDS), name="ck_funds_movement_kind"),
        sa.CheckConstraint("amount > 0", name="ck_funds_movement_positive"),
        sa.UniqueConstraint("connection_id", "reference", "kind", name="uq_funds_movement_once"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    connection_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer_connection.id")
    reference: str = Field(sa_type=sa.String(128), description="The PO number.")
    kind: str = Field(sa_type=sa.String(16))
    amount: Decimal = Field(sa_type=MoneyAmount)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class RetailerConnector(SQLModel, table=True):
    """How a retailer's orders arrive: an order API (native or SiteFlow style) or SFTP files."""

    __tablename__ = "retailer_connector"
    __table_args__ = (
        sa.CheckConstraint(in_values("connector_type", CONNECTOR_TYPES), name="ck_connector_type"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    code: str = Field(sa_type=sa.String(64), unique=True, description="Names its endpoints.")
    retailer_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer.id")
    connector_type: str = Field(sa_type=sa.String(16))
    settings: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    removed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Credential(SQLModel, table=True):
    """A client ID owned by a retailer, a supplier or a retailer's API connector."""

    __tablename__ = "credential"
    __table_args__ = (
        sa.CheckConstraint(
            in_values("owner_kind", CREDENTIAL_OWNER_KINDS), name="ck_credential_owner"
        ),
        sa.CheckConstraint(
            "(owner_kind = 'retailer' AND retailer_id IS NOT NULL AND supplier_id IS NULL"
            " AND connector_id IS NULL)"
            " OR (owner_kind = 'supplier' AND supplier_id IS NOT NULL AND retailer_id IS NULL"
            " AND connector_id IS NULL)"
            " OR (owner_kind = 'connector' AND connector_id IS NOT NULL AND retailer_id IS NOT NULL"
            " AND supplier_id IS NULL)",
            name="ck_credential_one_owner",
        ),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    client_id: str = Field(sa_type=sa.String(64), unique=True)
    label: str | None = Field(default=None, sa_type=sa.String(255))
    owner_kind: str = Field(sa_type=sa.String(16))
    retailer_id: int | None = Field(default=None, sa_type=sa.BigInteger, foreign_key="retailer.id")
    supplier_id: int | None = Field(default=None, sa_type=sa.BigInteger, foreign_key="supplier.id")
    connector_id: int | None = Field(
        default=None, sa_type=sa.BigInteger, foreign_key="retailer_connector.id"
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class CredentialSecret(SQLModel, table=True):
    """A secret of a credential, as a salted hash only. Rotation adds one and lets the old one
    expire after a grace period."""

    __tablename__ = "credential_secret"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    credential_id: int = Field(sa_type=sa.BigInteger, foreign_key="credential.id", index=True)
    hash_scheme: str = Field(sa_type=sa.String(32))
    salt: str = Field(sa_type=sa.String(64))
    secret_hash: str = Field(sa_type=sa.String(128))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class LookupTable(SQLModel, table=True):
    """A key → value table of a retailer, optionally for one supplier (its connection)."""

    __tablename__ = "lookup_table"
    __table_args__ = (
        sa.Index(
            "uq_lookup_table_retailer",
            "retailer_id",
            "name",
            unique=True,
            sqlite_where=sa.text("supplier_id IS NULL"),
            postgresql_where=sa.text("supplier_id IS NULL"),
        ),
        sa.Index(
            "uq_lookup_table_supplier",
            "retailer_id",
            "supplier_id",
            "name",
            unique=True,
            sqlite_where=sa.text("supplier_id IS NOT NULL"),
            postgresql_where=sa.text("supplier_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    retailer_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer.id")
    supplier_id: int | None = Field(default=None, sa_type=sa.BigInteger, foreign_key="supplier.id")
    name: str = Field(sa_type=sa.String(64))
    default_value: str | None = Field(default=None, sa_type=sa.String(512))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class LookupEntry(SQLModel, table=True):
    __tablename__ = "lookup_entry"
    __table_args__ = (sa.UniqueConstraint("table_id", "key", name="uq_lookup_entry_key"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    table_id: int = Field(sa_type=sa.BigInteger, foreign_key="lookup_table.id")
    key: str = Field(sa_type=sa.String(512))
    value: str = Field(sa_type=sa.String(512))


class AuditEvent(SQLModel, table=True):
    """Who changed a connection, credential, connector, lookup or supplier setting, and how.

    ``before`` and ``after`` never hold a secret or a hash (tasks.audit strips them).
    """

    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_entity", "entity_type", "entity_id"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    actor: str = Field(sa_type=sa.String(255))
    action: str = Field(sa_type=sa.String(64))
    entity_type: str = Field(sa_type=sa.String(32))
    entity_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    before: dict | None = Field(default=None, sa_type=sa.JSON)
    after: dict | None = Field(default=None, sa_type=sa.JSON)
