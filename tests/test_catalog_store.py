"""The catalog store on SQLite and PostgreSQL: loading rules, the retire guard, duplicates,
precedence and failures. The steps run as plain functions (``.fn``); the flow has its own tests.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel, select

import models.orders
import models.relationships  # noqa: F401  (their tables are compared with the migrations too)
import tasks.load
from data_contracts.contract import ContractError
from models.catalog import PRODUCT_DATA_COLUMNS, CatalogFile, Product
from models.db import current_revision, get_engine, head_revision, session_scope
from tasks.ingest import (
    ReleaseError,
    apply_file,
    claim_file,
    claim_for_release,
    fail_file,
    file_entry,
    validate_claimed_file,
    without_source_rows,
    write_claimed_error_files,
)
from tasks.suppliers import SupplierError, add_supplier, get_supplier, products_of

pytestmark = pytest.mark.usefixtures("database")

HEADER = ["sku", "title", "brand", "cost", "quantity", "status"]


def catalog(path: Path, rows: list[tuple[str, ...]]) -> Path:
    """A catalog file with canonical headers; each row: sku, title, cost[, quantity, status]."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for sku, title, cost, *rest in rows:
            quantity = rest[0] if rest else "1"
            status = rest[1] if len(rest) > 1 else "active"
            writer.writerow([sku, title, "ACME", cost, quantity, status])
    return path


def ingest(path: Path, *, code: str = "acme", source: str = "sftp", release_of: int | None = None):
    """One file through the flow's steps: claim, validate, error file, apply."""
    claim = (
        claim_for_release(release_of)
        if release_of
        else claim_file.fn(code, path, name=path.name, source=source)
    )
    if claim.is_duplicate:
        return file_entry(claim.file_id)
    validation = validate_claimed_file.fn(claim)
    return apply_file.fn(
        claim, validation, write_claimed_error_files.fn(claim, validation), release=bool(release_of)
    )


def supplier(code: str = "acme", feed: str = "full", **settings: object) -> None:
    with session_scope() as session:
        add_supplier(session, code, code.upper(), feed_mode=feed, **settings)  # type: ignore[arg-type]


def products(code: str = "acme") -> dict[str, Product]:
    with session_scope() as session:
        return {p.sku: p for p in products_of(session, get_supplier(session, code))}


def numbered(start: int, count: int, cost: str = "5.00") -> list[tuple[str, ...]]:
    return [(f"SKU-{n}", f"Item {n}", cost) for n in range(start, start + count)]


# --- schema ---------------------------------------------------------------------------------


def test_commands_bring_an_empty_database_up_to_date() -> None:
    engine = get_engine()
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], "the models and the migrations disagree: write a migration"


def test_same_content_cannot_be_claimed_twice_in_the_database(tmp_path: Path) -> None:
    supplier()
    first = ingest(catalog(tmp_path / "a.csv", numbered(1, 2)))
    with pytest.raises(sa.exc.IntegrityError), session_scope() as session:
        row = session.get(CatalogFile, first["id"])
        session.add(CatalogFile(**row.model_dump(exclude={"id"}) | {"status": "processing"}))


# --- loading --------------------------------------------------------------------------------


def test_full_feed_upserts_and_retires_what_is_missing(tmp_path: Path) -> None:
    supplier(feed="full", retire_guard_share=0.5)
    first = ingest(catalog(tmp_path / "day1.csv", numbered(1, 4)))
    assert (first["status"], first["rows_inserted"], first["rows_retired"]) == ("accepted", 4, 0)
    before = products()

    second = ingest(
        catalog(
            tmp_path / "day2.csv",
            [
                ("SKU-1", "Item 1", "5.00"),
                ("SKU-2", "Item 2 v2", "6.00"),
                ("SKU-3", "Item 3", "5.00"),
                ("SKU-9", "New", "1.50"),
            ],
        )
    )
    assert second["status"] == "accepted"
    assert (second["rows_inserted"], second["rows_updated"], second["rows_retired"]) == (1, 1, 1)
    after = products()
    assert after["SKU-2"].title == "Item 2 v2" and after["SKU-2"].cost == pytest.approx(6.0)
    assert after["SKU-2"].changed_by_file_id == second["id"]
    assert after["SKU-4"].status == "discontinued"
    assert after["SKU-4"].changed_by_file_id == second["id"]
    # a row that did not change keeps when and from which file it last changed
    assert after["SKU-1"].changed_by_file_id == first["id"]
    assert after["SKU-1"].changed_at == before["SKU-1"].changed_at
    assert after["SKU-9"].cost == pytest.approx(1.5) and after["SKU-9"].changed_by_source == "sftp"


def test_delta_feed_only_upserts(tmp_path: Path) -> None:
    supplier(feed="delta")
    ingest(catalog(tmp_path / "all.csv", numbered(1, 4)))
    entry = ingest(catalog(tmp_path / "change.csv", [("SKU-2", "Item 2", "7.25")]))
    assert (entry["rows_updated"], entry["rows_retired"]) == (1, 0)
    assert {p.status for p in products().values()} == {"active"}
    assert products()["SKU-2"].cost == pytest.approx(7.25)


def test_rejected_rows_leave_their_product_as_it_was(tmp_path: Path) -> None:
    supplier(feed="full")
    ingest(catalog(tmp_path / "day1.csv", numbered(1, 3)))
    entry = ingest(
        catalog(tmp_path / "day2.csv", [*numbered(1, 2), ("SKU-3", "Item 3", "not a price")])
    )
    assert entry["status"] == "partially_accepted"
    assert (entry["rows_valid"], entry["rows_invalid"], entry["rows_retired"]) == (2, 1, 0)
    sku3 = products()["SKU-3"]
    assert (sku3.status, sku3.cost) == ("active", pytest.approx(5.0))
    assert "Unit" not in Path(str(entry["error_file"])).read_text(encoding="utf-8-sig")
    assert "not a price" in Path(str(entry["error_file"])).read_text(encoding="utf-8-sig")


def test_a_rejected_file_loads_and_retires_nothing(tmp_path: Path) -> None:
    supplier(feed="full")
    ingest(catalog(tmp_path / "day1.csv", numbered(1, 3)))
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,title\nSKU-1,Hammer\n", encoding="utf-8")
    entry = ingest(bad)
    assert entry["status"] == "rejected"
    assert "brand" in str(entry["message"])
    assert {p.status for p in products().values()} == {"active"}


def test_a_discontinued_product_that_returns_is_active_again(tmp_path: Path) -> None:
    supplier(feed="full", retire_guard_share=1.0)
    ingest(catalog(tmp_path / "day1.csv", numbered(1, 2)))
    ingest(catalog(tmp_path / "day2.csv", numbered(1, 1)))
    assert products()["SKU-2"].status == "discontinued"
    entry = ingest(catalog(tmp_path / "day3.csv", [*numbered(1, 2), ("SKU-3", "New", "1.00")]))
    assert (entry["status"], entry["rows_updated"], entry["rows_inserted"]) == ("accepted", 1, 1)
    assert products()["SKU-2"].status == "active"


RICH_HEADER = [
    "sku",
    "title",
    "brand",
    "description",
    "gtin",
    "cost",
    "map_price",
    "quantity",
    "weight_lb",
    "image_urls",
    "status",
]


def rich_rows(version: int) -> list[list[str]]:
    """Rows out of SKU order, with empty optional values, quotes and non-ASCII letters."""
    return [
        ["Z-9", "Zed", "ACME", 'Says "hi", twice', "", f"{5 + version}.00", "", "3", "1.250",
         "https://img.example.com/z.jpg", "active"],
        ["A-1", "Äpfel", "ACME", "", "036000291452", "1.10", "", str(version), "", "",
         "discontinued"],
        ["M-5", f"Mid v{version}", "Ü Tools", "line one\nline two", "", "2.00", "2.50", "7", "",
         "", ""],
        *([f"N-{n:02}", f"Item {n} v{version}", "ACME", "", "", "3.00", "", "1", "0.5", "",
           "active"] for n in (40, 12, 31, 3, 27)),
    ]  # fmt: skip


def test_inserted_and_updated_products_are_stored_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New rows go in SKU order and in chunks, changed ones through a staging table: a supplier
    loaded at once and one whose every row was updated end up with the same products."""
    monkeypatch.setattr(tasks.load, "CHUNK_ROWS", 3)

    def write(name: str, rows: list[list[str]]) -> Path:
        with (tmp_path / name).open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([RICH_HEADER, *rows])
        return tmp_path / name

    supplier("fresh")
    supplier("older")
    first = ingest(write("fresh.csv", rich_rows(1)), code="fresh")
    assert (first["status"], first["rows_inserted"]) == ("accepted", 8)
    assert ingest(write("older.csv", rich_rows(0)), code="older")["rows_inserted"] == 8
    updated = ingest(write("fresh-again.csv", rich_rows(1)), code="older")
    assert (updated["rows_inserted"], updated["rows_updated"]) == (0, 8)

    columns = [*PRODUCT_DATA_COLUMNS, "row_hash"]
    fresh, older = products("fresh"), products("older")
    assert sorted(fresh) == sorted(older) == sorted(row[0] for row in rich_rows(1))
    for sku, product in fresh.items():
        assert product.model_dump(include=set(columns)) == older[sku].model_dump(
            include=set(columns)
        ), sku
    assert fresh["Z-9"].description == 'Says "hi", twice' and fresh["Z-9"].gtin is None
    assert (fresh["A-1"].title, fresh["A-1"].map_price, fresh["A-1"].weight_lb) == (
        "Äpfel",
        None,
        None,
    )
    assert fresh["M-5"].description == "line one\nline two" and fresh["M-5"].status == "active"
    # unchanged rows are still recognised after either path
    again = ingest(write("older-again.csv", rich_rows(1)[::-1]), code="older")
    assert (again["rows_inserted"], again["rows_updated"]) == (0, 0)


def test_loading_frees_the_source_rows_first(tmp_path: Path) -> None:
    supplier()
    claim = claim_file.fn("acme", catalog(tmp_path / "a.csv", [*numbered(1, 3), ("B", "x", "?")]),
                          name="a.csv", source="sftp")  # fmt: skip
    validation = validate_claimed_file.fn(claim)
    slim = without_source_rows(validation)
    assert slim.raw is not None and slim.raw.frame.empty
    assert slim.mapped is not None and list(slim.mapped.frame.columns) == ["sku"]
    assert len(slim.mapped.frame) == len(validation.mapped.frame) == 4  # type: ignore[union-attr]
    assert slim.summary() == validation.summary()
    entry = apply_file.fn(claim, slim, write_claimed_error_files.fn(claim, validation))
    assert (entry["status"], entry["rows_inserted"]) == ("partially_accepted", 3)


# --- the retire guard -----------------------------------------------------------------------


def test_a_feed_that_would_retire_too_much_is_held_then_released(tmp_path: Path) -> None:
    supplier(feed="full")
    ingest(catalog(tmp_path / "full.csv", numbered(1, 4)))
    truncated = ingest(catalog(tmp_path / "truncated.csv", [("SKU-1", "Item 1 new", "9.99")]))
    assert truncated["status"] == "held"
    assert "would retire 3 of the supplier's 4 active products (75%)" in str(truncated["message"])
    assert f"supplyline catalog release {truncated['id']}" in str(truncated["message"])
    # nothing was applied: not the retirements, not the one valid row either
    assert {p.status for p in products().values()} == {"active"}
    assert products()["SKU-1"].title == "Item 1"

    again = ingest(catalog(tmp_path / "truncated-again.csv", [("SKU-1", "Item 1 new", "9.99")]))
    assert again["status"] == "duplicate" and again["duplicate_of"] == truncated["id"]
    assert f"supplyline catalog release {truncated['id']}" in str(again["message"])

    released = ingest(Path(), release_of=int(truncated["id"]))  # type: ignore[arg-type]
    assert (released["id"], released["status"], released["rows_retired"]) == (
        truncated["id"],
        "accepted",
        3,
    )
    assert products()["SKU-1"].title == "Item 1 new"
    assert sorted(p.sku for p in products().values() if p.status == "discontinued") == [
        "SKU-2",
        "SKU-3",
        "SKU-4",
    ]
    with pytest.raises(ReleaseError, match="not held"):
        claim_for_release(int(truncated["id"]))  # type: ignore[arg-type]


def test_a_held_feed_overtaken_by_a_newer_one_cannot_be_released(tmp_path: Path) -> None:
    supplier(feed="full")
    ingest(catalog(tmp_path / "full.csv", numbered(1, 4)))
    held = ingest(catalog(tmp_path / "truncated.csv", numbered(1, 1)))
    assert held["status"] == "held"
    ingest(catalog(tmp_path / "next.csv", numbered(1, 4, cost="6.00")))
    with pytest.raises(ReleaseError, match="was applied after"):
        claim_for_release(int(held["id"]))  # type: ignore[arg-type]


def test_the_guard_is_a_setting_per_supplier(tmp_path: Path) -> None:
    supplier(feed="full", retire_guard_share=0.8)
    ingest(catalog(tmp_path / "full.csv", numbered(1, 4)))
    entry = ingest(catalog(tmp_path / "smaller.csv", numbered(1, 1)))
    assert (entry["status"], entry["rows_retired"]) == ("accepted", 3)


# --- duplicates, precedence, failures -------------------------------------------------------


def test_the_same_content_is_recorded_as_a_duplicate_of_the_first(tmp_path: Path) -> None:
    supplier()
    first = ingest(catalog(tmp_path / "monday.csv", numbered(1, 3)))
    copy = tmp_path / "tuesday.csv"
    copy.write_bytes((tmp_path / "monday.csv").read_bytes())
    second = ingest(copy)
    assert second["status"] == "duplicate"
    assert second["duplicate_of"] == first["id"]
    assert "same content as file" in str(second["message"]) and "monday.csv" in str(
        second["message"]
    )
    assert all(p.changed_by_file_id == first["id"] for p in products().values())
    with session_scope() as session:
        assert len(session.exec(select(CatalogFile)).all()) == 2


def test_other_suppliers_may_send_the_same_content(tmp_path: Path) -> None:
    supplier("acme")
    supplier("globex")
    path = catalog(tmp_path / "same.csv", numbered(1, 2))
    assert ingest(path, code="acme")["status"] == "accepted"
    assert ingest(path, code="globex")["status"] == "accepted"
    assert set(products("globex")) == {"SKU-1", "SKU-2"}


def test_a_manual_upload_applies_until_the_next_regular_sync(tmp_path: Path) -> None:
    supplier(feed="full")
    sync = ingest(catalog(tmp_path / "sync1.csv", numbered(1, 3)), source="sftp")
    manual = ingest(
        catalog(tmp_path / "fix.csv", [*numbered(1, 2), ("SKU-3", "Item 3", "4.00")]),
        source="manual",
    )
    assert manual["rows_updated"] == 1
    assert (products()["SKU-3"].cost, products()["SKU-3"].changed_by_source) == (
        pytest.approx(4.0),
        "manual",
    )
    # the next regular feed carries the supplier's own values again: they win
    later = ingest(catalog(tmp_path / "sync2.csv", [*numbered(1, 3), ("SKU-4", "New", "2.00")]))
    assert later["rows_updated"] == 1
    sku3 = products()["SKU-3"]
    assert (sku3.cost, sku3.changed_by_source, sku3.changed_by_file_id) == (
        pytest.approx(5.0),
        "sftp",
        later["id"],
    )
    assert sync["id"] < manual["id"] < later["id"]


def test_a_failed_load_leaves_nothing_behind(tmp_path: Path) -> None:
    """A database error mid-load (a trigger refusing one row): no rows, history says why."""
    supplier()
    engine = get_engine()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                sa.text(
                    "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.sku = 'BOOM' THEN RAISE EXCEPTION 'disk full (test)'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_boom BEFORE INSERT ON product "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
                )
            )
        else:
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_boom BEFORE INSERT ON product "
                    "WHEN NEW.sku = 'BOOM' BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END"
                )
            )
    path = catalog(tmp_path / "boom.csv", [*numbered(1, 5), ("BOOM", "Bang", "1.00")])
    claim = claim_file.fn("acme", path, name=path.name, source="sftp")
    validation = validate_claimed_file.fn(claim)
    # raised by the driver itself: the bulk paths (COPY, executemany) bypass SQLAlchemy
    with pytest.raises((sa.exc.DBAPIError, sqlite3.Error, psycopg.Error), match="disk full"):
        apply_file.fn(claim, validation, write_claimed_error_files.fn(claim, validation))
    entry = fail_file.fn(claim, "failed, nothing of it was loaded: disk full (test)")
    assert products() == {}
    assert entry["status"] == "failed"
    assert "disk full" in str(entry["message"])
    assert (entry["rows_inserted"], entry["rows_updated"]) == (0, 0)
    # a failed file does not hold its content: sent again, it is processed again
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "DROP TRIGGER refuse_boom"
                + (" ON product" if engine.dialect.name == "postgresql" else "")
            )
        )
    again = ingest(path)
    assert (again["status"], again["rows_inserted"]) == ("accepted", 6)


def test_an_abandoned_claim_does_not_block_the_content_forever(tmp_path: Path) -> None:
    supplier()
    path = catalog(tmp_path / "a.csv", numbered(1, 2))
    stuck = claim_file.fn("acme", path, name=path.name, source="sftp")
    with session_scope() as session:
        row = session.get(CatalogFile, stuck.file_id)
        row.received_at = row.received_at.replace(year=row.received_at.year - 1)
        session.add(row)
    entry = ingest(path)
    assert entry["status"] == "accepted"
    assert file_entry(stuck.file_id)["status"] == "failed"
    assert "abandoned" in str(file_entry(stuck.file_id)["message"])


# --- suppliers ------------------------------------------------------------------------------


def test_supplier_settings_are_checked_when_added() -> None:
    with pytest.raises(SupplierError, match="not valid"):
        supplier("Acme Tools!")
    with pytest.raises(SupplierError, match="feed mode"):
        supplier("acme", feed="sometimes")
    with pytest.raises(ContractError, match="mapping"):
        supplier("acme", mapping="nope")
    supplier("ACME")
    with pytest.raises(SupplierError, match="already exists"):
        supplier("acme")
