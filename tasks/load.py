"""Loading a file's valid rows into the catalog: bulk upsert, retirements, the retire guard.

Everything here runs inside the caller's transaction, so that a file's rows, its retirements
and its history row commit together or not at all. Rows go through a temporary staging table
(COPY on PostgreSQL, executemany on SQLite, in chunks); the upsert and the retirements are then
one set-based statement each. Never an ORM object per row.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from models.catalog import PRODUCT_DATA_COLUMNS, RETIRED_STATUS, Product

PRODUCT = Product.__table__  # type: ignore[attr-defined]
CHUNK_ROWS = 50_000
DEFAULT_PRODUCT_STATUS = "active"
_LOCK_SPACE = 0x5375  # advisory lock space of product loads (the key is the supplier id)


@dataclass(frozen=True)
class LoadResult:
    """What loading one file did (or, when ``held_reason`` is set, would have done)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    active_before: int = 0
    held_reason: str | None = None


def product_rows(valid_rows: pd.DataFrame) -> pd.DataFrame:
    """The product table's data columns from a validated frame, plus each row's ``row_hash``.

    Columns the contract lacks are empty; whole-number columns become nullable integers.
    """
    frame = pd.DataFrame(index=valid_rows.index)
    for column in PRODUCT_DATA_COLUMNS:
        values = (
            valid_rows[column]
            if column in valid_rows.columns
            else pd.Series(None, index=valid_rows.index, dtype=object)
        )
        if isinstance(PRODUCT.c[column].type, sa.Integer):
            values = pd.to_numeric(values).round().astype("Int64")
        frame[column] = values
    frame["status"] = frame["status"].fillna(DEFAULT_PRODUCT_STATUS)
    frame["row_hash"] = pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class CatalogLoad:
    """One file's rows to load, and how.

    ``rows`` come from :func:`product_rows`. ``seen_skus`` are all SKUs of the file, valid rows
    or not: a product whose row was rejected is left as it was, not retired. With
    ``retire_guard_share`` set, a full feed that would retire more than that share of the
    supplier's active products changes nothing and comes back with ``held_reason``.
    """

    supplier_id: int
    file_id: int
    source: str
    rows: pd.DataFrame
    seen_skus: pd.Series
    retire_missing: bool
    retire_guard_share: float | None
    now: datetime


def load_catalog_rows(connection: sa.Connection, load: CatalogLoad) -> LoadResult:
    """Upsert the rows and, for a full feed, retire the supplier's products the file lacks."""
    staging, seen = _staging_tables()
    staging.create(connection)
    seen.create(connection)
    result = _load_staged(connection, staging, seen, load)
    # Only on success: after an error the transaction is rolled back, and the tables with it.
    seen.drop(connection)
    staging.drop(connection)
    return result


def _load_staged(
    connection: sa.Connection, staging: sa.Table, seen: sa.Table, load: CatalogLoad
) -> LoadResult:
    supplier_id, file_id, source, rows, now = (
        load.supplier_id,
        load.file_id,
        load.source,
        load.rows,
        load.now,
    )
    retire_missing, retire_guard_share = load.retire_missing, load.retire_guard_share
    _lock_supplier(connection, supplier_id)
    _fill(connection, staging, rows)
    _fill(connection, seen, pd.DataFrame({"sku": load.seen_skus.dropna().unique()}))

    of_supplier = PRODUCT.c.supplier_id == supplier_id
    active = sa.and_(of_supplier, PRODUCT.c.status != RETIRED_STATUS)
    missing = ~sa.exists().where(seen.c.sku == PRODUCT.c.sku)
    active_before = _count(connection, sa.select(sa.func.count()).where(active))
    to_retire = (
        _count(connection, sa.select(sa.func.count()).where(active, missing))
        if retire_missing
        else 0
    )
    if (
        retire_guard_share is not None
        and active_before
        and to_retire > retire_guard_share * active_before
    ):
        return LoadResult(
            retired=to_retire,
            active_before=active_before,
            held_reason=(
                f"held: this full feed would retire {to_retire:,} of the supplier's "
                f"{active_before:,} active products ({to_retire / active_before:.0%}), more "
                f"than the {retire_guard_share:.0%} allowed; a truncated export looks like "
                f"this. Nothing was applied. If the products really are gone, release the "
                f"file: supplyline catalog release {file_id}"
            ),
        )

    updated, inserted = _upsert(connection, staging, load)
    retired = 0
    if retire_missing:
        retired = connection.execute(
            PRODUCT.update()
            .where(active, missing)
            .values(
                status=RETIRED_STATUS,
                row_hash=None,
                changed_at=now,
                changed_by_file_id=file_id,
                changed_by_source=source,
            )
        ).rowcount
    return LoadResult(
        inserted=inserted,
        updated=updated,
        unchanged=len(rows) - inserted - updated,
        retired=retired,
        active_before=active_before,
    )


def _staging_tables() -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    staging = sa.Table(
        "_stage_product",
        metadata,
        *(sa.Column(c, PRODUCT.c[c].type) for c in PRODUCT_DATA_COLUMNS),
        sa.Column("row_hash", sa.BigInteger),
        prefixes=["TEMPORARY"],
    )
    seen = sa.Table(
        "_stage_seen_sku",
        metadata,
        sa.Column("sku", sa.Text),
        sa.Index("_stage_seen_sku_sku", "sku"),
        prefixes=["TEMPORARY"],
    )
    return staging, seen


def _upsert(connection: sa.Connection, staging: sa.Table, load: CatalogLoad) -> tuple[int, int]:
    """Update the products whose content changed, then insert the new ones: (updated, inserted).

    Two set-based statements rather than INSERT … ON CONFLICT, whose per-row speculative
    insertion costs more; loads of one supplier take turns (``_lock_supplier``), so no other
    run can insert the same SKU in between.
    """
    data = [*PRODUCT_DATA_COLUMNS, "row_hash"]
    provenance = {
        "changed_at": sa.literal(load.now, PRODUCT.c.changed_at.type),
        "changed_by_file_id": sa.literal(load.file_id, sa.BigInteger),
        "changed_by_source": sa.literal(load.source, sa.String),
    }
    of_supplier = PRODUCT.c.supplier_id == load.supplier_id
    updated = connection.execute(
        PRODUCT.update()
        .where(of_supplier, PRODUCT.c.sku == staging.c.sku)
        .where(PRODUCT.c.row_hash.is_distinct_from(staging.c.row_hash))
        .values({**{c: staging.c[c] for c in data}, **provenance})
    ).rowcount
    inserted_columns = {
        "supplier_id": sa.literal(load.supplier_id, sa.BigInteger),
        "created_at": sa.literal(load.now, PRODUCT.c.created_at.type),
        **provenance,
        **{c: staging.c[c] for c in data},
    }
    exists = sa.exists().where(of_supplier, PRODUCT.c.sku == staging.c.sku)
    inserted = connection.execute(
        PRODUCT.insert()
        .from_select(list(inserted_columns), sa.select(*inserted_columns.values()).where(~exists))
        .execution_options(preserve_rowcount=True)  # not kept for an INSERT unless asked
    ).rowcount
    return updated, inserted


def _lock_supplier(connection: sa.Connection, supplier_id: int) -> None:
    """Loads of one supplier take turns (SQLite has one writer at a time anyway)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:space, :supplier)"),
            {"space": _LOCK_SPACE, "supplier": supplier_id},
        )


def _count(connection: sa.Connection, query: sa.Select) -> int:
    return int(connection.execute(query).scalar_one())


def _fill(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    columns = [c.name for c in table.columns]
    frame = frame[columns]
    if connection.dialect.name == "postgresql":
        _copy(connection, table.name, columns, frame)
        return
    placeholders = ", ".join("?" * len(columns))
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for chunk in _chunks(frame):
            cursor.executemany(
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})",
                chunk.astype(object).where(chunk.notna(), None).itertuples(index=False, name=None),
            )
    finally:
        cursor.close()


def _copy(connection: sa.Connection, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """COPY in CSV chunks: an unquoted empty field is NULL, a quoted one an empty string."""
    driver = connection.connection.driver_connection  # a psycopg 3 connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    options = pa_csv.WriteOptions(include_header=False)
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for chunk in _chunks(frame):
            buffer = io.BytesIO()
            pa_csv.write_csv(pa.Table.from_pandas(chunk, preserve_index=False), buffer, options)
            copy.write(buffer.getbuffer())


def _chunks(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), CHUNK_ROWS):
        yield frame.iloc[start : start + CHUNK_ROWS]
