"""Loading a file's valid rows into the catalog: bulk upsert, retirements, the retire guard.

Everything here runs inside the caller's transaction, so that a file's rows, its retirements
and its history row commit together or not at all. The supplier's current keys and row hashes
are read once and compared with the file's in memory; then only what differs is written: new
products in bulk (COPY on PostgreSQL, executemany on SQLite, in chunks), changed products and
retirements through a temporary staging table and one set-based UPDATE each. Never an ORM
object per row. Loads of one supplier take turns, so nothing changes between read and write.
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
    """Insert new products, update changed ones and, for a full feed, retire the missing."""
    _lock_supplier(connection, load.supplier_id)
    existing = _current_products(connection, load.supplier_id)
    active = existing["status"] != RETIRED_STATUS
    active_before = int(active.sum())
    retiring = (
        existing.loc[active & ~existing["sku"].isin(load.seen_skus.dropna()), "sku"]
        if load.retire_missing
        else existing["sku"].iloc[:0]
    )
    share = load.retire_guard_share
    if share is not None and active_before and len(retiring) > share * active_before:
        return LoadResult(
            retired=len(retiring),
            active_before=active_before,
            held_reason=(
                f"held: this full feed would retire {len(retiring):,} of the supplier's "
                f"{active_before:,} active products ({len(retiring) / active_before:.0%}), more "
                f"than the {share:.0%} allowed; a truncated export looks like this. Nothing was "
                f"applied. If the products really are gone, release the file: "
                f"supplyline catalog release {load.file_id}"
            ),
        )

    rows = load.rows
    known_hash = rows["sku"].map(existing.set_index("sku")["row_hash"])
    is_new = ~rows["sku"].isin(existing["sku"])
    # A retired product has no hash: coming back, it always counts as changed.
    is_changed = (~is_new & (known_hash.isna() | (known_hash != rows["row_hash"]))).fillna(False)
    provenance = {
        "changed_at": load.now,
        "changed_by_file_id": load.file_id,
        "changed_by_source": load.source,
    }
    _insert(
        connection,
        rows[is_new],
        {"supplier_id": load.supplier_id, "created_at": load.now, **provenance},
    )
    _update_changed(connection, rows[is_changed], load.supplier_id, provenance)
    _retire(connection, retiring, load.supplier_id, provenance)
    updated = int(is_changed.sum())
    inserted = int(is_new.sum())
    return LoadResult(
        inserted=inserted,
        updated=updated,
        unchanged=len(rows) - inserted - updated,
        retired=len(retiring),
        active_before=active_before,
    )


def _lock_supplier(connection: sa.Connection, supplier_id: int) -> None:
    """Loads of one supplier take turns (SQLite has one writer at a time anyway)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:space, :supplier)"),
            {"space": _LOCK_SPACE, "supplier": supplier_id},
        )


def _current_products(connection: sa.Connection, supplier_id: int) -> pd.DataFrame:
    """The supplier's SKUs, row hashes and statuses, in one read."""
    result = connection.execute(
        sa.select(PRODUCT.c.sku, PRODUCT.c.row_hash, PRODUCT.c.status).where(
            PRODUCT.c.supplier_id == supplier_id
        )
    )
    skus, hashes, statuses = list(zip(*result.all(), strict=True)) or [(), (), ()]
    # Built column by column: through a float column, a 64-bit hash next to a NULL loses bits.
    return pd.DataFrame(
        {
            "sku": pd.Series(skus, dtype=object),
            "row_hash": pd.array(hashes, dtype="Int64"),
            "status": pd.Series(statuses, dtype=object),
        }
    )


def _insert(connection: sa.Connection, rows: pd.DataFrame, constants: dict[str, object]) -> None:
    if rows.empty:
        return
    frame = rows.assign(**{k: _db_value(connection, k, v) for k, v in constants.items()})
    _fill(connection, PRODUCT.name, list(frame.columns), frame)


def _update_changed(
    connection: sa.Connection,
    rows: pd.DataFrame,
    supplier_id: int,
    provenance: dict[str, object],
) -> None:
    """Stage the changed rows, then one UPDATE … FROM the staging table."""
    if rows.empty:
        return
    data = [*PRODUCT_DATA_COLUMNS, "row_hash"]
    staging = _temporary_table("_stage_product", *(sa.Column(c, PRODUCT.c[c].type) for c in data))
    staging.create(connection)
    _fill(connection, staging.name, data, rows[data])
    connection.execute(
        PRODUCT.update()
        .where(PRODUCT.c.supplier_id == supplier_id, PRODUCT.c.sku == staging.c.sku)
        .values({**{c: staging.c[c] for c in data}, **provenance})
    )
    staging.drop(connection)


def _retire(
    connection: sa.Connection,
    skus: pd.Series,
    supplier_id: int,
    provenance: dict[str, object],
) -> None:
    if skus.empty:
        return
    staging = _temporary_table("_stage_retired_sku", sa.Column("sku", PRODUCT.c.sku.type))
    staging.create(connection)
    _fill(connection, staging.name, ["sku"], skus.to_frame("sku"))
    connection.execute(
        PRODUCT.update()
        .where(
            PRODUCT.c.supplier_id == supplier_id,
            PRODUCT.c.sku.in_(sa.select(staging.c.sku)),
        )
        .values(status=RETIRED_STATUS, row_hash=None, **provenance)
    )
    staging.drop(connection)


def _temporary_table(name: str, *columns: sa.Column) -> sa.Table:
    """A temporary table; after an error it goes with the rolled-back transaction."""
    return sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])


def _db_value(connection: sa.Connection, column: str, value: object) -> object:
    """``value`` as the database driver should receive it for ``column`` (SQLite keeps
    timestamps as text in SQLAlchemy's format; COPY takes ISO 8601)."""
    if isinstance(value, datetime):
        if connection.dialect.name == "postgresql":
            return value.isoformat()
        dialect = connection.dialect
        process = PRODUCT.c[column].type.dialect_impl(dialect).bind_processor(dialect)
        return process(value) if process else value
    return value


def _fill(connection: sa.Connection, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """Bulk-insert ``frame``'s ``columns`` into ``table``: COPY or executemany, in chunks."""
    frame = frame[columns]
    if connection.dialect.name == "postgresql":
        _copy(connection, table, columns, frame)
        return
    placeholders = ", ".join("?" * len(columns))
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for chunk in _chunks(frame):
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
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
