"""Catalog store: suppliers, their products, and the history of every catalog file received.

Enumerations are stored as short strings with CHECK constraints rather than native enum types,
so that adding a value is a one-line migration on every database.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

FEED_MODES = ("full", "delta")
FILE_SOURCES = ("sftp", "manual", "api")
FILE_STATUSES = (
    "processing",
    "accepted",
    "partially_accepted",
    "rejected",
    "held",
    "failed",
    "duplicate",
)
# A file in one of these states holds its content: the same bytes again are a duplicate of it.
CLAIMING_STATUSES = tuple(s for s in FILE_STATUSES if s not in ("failed", "duplicate"))
APPLIED_STATUSES = ("accepted", "partially_accepted")
PRODUCT_STATUSES = ("active", "discontinued")
RETIRED_STATUS = "discontinued"

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = sa.Numeric(12, 2, asdecimal=False)
Measure = sa.Numeric(10, 3, asdecimal=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


def in_values(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp with its zone, written in UTC: SQLite keeps no zone, so a time with another
    offset (a supplier's ``2026-12-09T09:00:00+01:00``) would otherwise be stored as its wall
    time and read back an hour off. Naive times are taken to be UTC already."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)


def timestamp_column(nullable: bool = False) -> sa.Column:
    return sa.Column(UtcDateTime(), nullable=nullable)


class Supplier(SQLModel, table=True):
    __tablename__ = "supplier"
    __table_args__ = (
        sa.CheckConstraint(in_values("feed_mode", FEED_MODES), name="ck_supplier_feed"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    code: str = Field(sa_type=sa.String(64), unique=True)
    name: str = Field(sa_type=sa.String(255))
    contract: str = Field(default="catalog_item", sa_type=sa.String(255))
    mapping: str | None = Field(default=None, sa_type=sa.String(255))
    feed_mode: str = Field(default="full", sa_type=sa.String(8))
    retire_guard_share: float | None = Field(
        default=None,
        description="Largest share of active products a full feed may retire; None: the default.",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class CatalogFile(SQLModel, table=True):
    """One received catalog file: the upload history."""

    __tablename__ = "catalog_file"
    __table_args__ = (
        sa.CheckConstraint(in_values("status", FILE_STATUSES), name="ck_catalog_file_status"),
        sa.CheckConstraint(in_values("source", FILE_SOURCES), name="ck_catalog_file_source"),
        # The ledger: one claiming file per supplier and content. A second one is a duplicate.
        sa.Index(
            "uq_catalog_file_content",
            "supplier_id",
            "sha256",
            unique=True,
            sqlite_where=sa.text(in_values("status", CLAIMING_STATUSES)),
            postgresql_where=sa.text(in_values("status", CLAIMING_STATUSES)),
        ),
        sa.Index("ix_catalog_file_supplier_received", "supplier_id", "received_at"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id")
    original_name: str = Field(sa_type=sa.String(512))
    source: str = Field(sa_type=sa.String(16))
    sha256: str = Field(sa_type=sa.String(64))
    size_bytes: int = Field(sa_type=sa.BigInteger)
    received_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    finished_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    status: str = Field(default="processing", sa_type=sa.String(24))
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_retired: int = 0
    contract_name: str = Field(sa_type=sa.String(255))
    contract_version: str | None = Field(default=None, sa_type=sa.String(64))
    mapping_name: str | None = Field(default=None, sa_type=sa.String(255))
    stored_path: str | None = Field(default=None, sa_type=sa.Text)
    error_file: str | None = Field(default=None, sa_type=sa.Text)
    summary_file: str | None = Field(default=None, sa_type=sa.Text)
    flow_run_id: str | None = Field(default=None, sa_type=sa.String(36))
    duplicate_of_id: int | None = Field(
        default=None, sa_type=sa.BigInteger, foreign_key="catalog_file.id"
    )
    message: str | None = Field(default=None, sa_type=sa.Text)
    released_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Product(SQLModel, table=True):
    """A supplier's product: the columns of the ``catalog_item`` contract, plus provenance.

    ``row_hash`` is a hash of the contract columns as last loaded, so that a re-sent row that
    did not change is not rewritten (and keeps when and from which file it last changed).

    No foreign keys: products are written only by the bulk loader, with the id of a supplier it
    has locked and of the history row it records in the same transaction (history rows are
    never deleted). Per-row foreign-key checks cost about 40% of a bulk load on PostgreSQL.
    """

    __tablename__ = "product"
    __table_args__ = (
        sa.UniqueConstraint("supplier_id", "sku", name="uq_product_supplier_sku"),
        sa.CheckConstraint(in_values("status", PRODUCT_STATUSES), name="ck_product_status"),
        sa.Index("ix_product_supplier_status", "supplier_id", "status"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    supplier_id: int = Field(sa_type=sa.BigInteger)
    sku: str = Field(sa_type=sa.String(64))
    title: str = Field(sa_type=sa.String(255))
    brand: str = Field(sa_type=sa.String(255))
    description: str | None = Field(default=None, sa_type=sa.Text)
    gtin: str | None = Field(default=None, sa_type=sa.String(14))
    category: str | None = Field(default=None, sa_type=sa.String(255))
    cost: float = Field(sa_type=Money)
    map_price: float | None = Field(default=None, sa_type=Money)
    msrp: float | None = Field(default=None, sa_type=Money)
    quantity: int = Field(sa_type=sa.BigInteger)
    weight_lb: float | None = Field(default=None, sa_type=Measure)
    length_in: float | None = Field(default=None, sa_type=Measure)
    width_in: float | None = Field(default=None, sa_type=Measure)
    height_in: float | None = Field(default=None, sa_type=Measure)
    image_urls: str | None = Field(default=None, sa_type=sa.Text)
    status: str = Field(default="active", sa_type=sa.String(16))
    row_hash: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    changed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    changed_by_file_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    changed_by_source: str | None = Field(default=None, sa_type=sa.String(16))


# The columns a catalog file sets; everything else on Product is provenance.
PRODUCT_DATA_COLUMNS: tuple[str, ...] = tuple(
    c.name
    for c in Product.__table__.columns  # type: ignore[attr-defined]
    if c.name
    not in (
        "id",
        "supplier_id",
        "row_hash",
        "created_at",
        "changed_at",
        "changed_by_file_id",
        "changed_by_source",
    )
)
