"""Lookups: a retailer's key → value tables, with an optional default, that map its values onto
the platform's: ``sku`` (retailer SKU → supplier SKU), ``shipping_method`` (the retailer's
shipping-method names → carrier service codes), and free-form tables of any other name.

A table belongs to a retailer, or to a retailer for one supplier (its connection): order sync
looks in the supplier's table first, then in the retailer's. Keys match exactly (after
trimming spaces).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from models.catalog import Supplier
from models.relationships import LookupEntry, LookupTable, Retailer
from supplyline.errors import RelationshipError
from tasks.audit import record_event
from tasks.connections import supplier_by_code
from tasks.retailers import get_retailer

WELL_KNOWN_TABLES = ("sku", "shipping_method")
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_TEXT = 512
CSV_HEADER = ("key", "value")


class MissingLookupValue(LookupError):
    """An order line uses a value its retailer's lookup does not map, and there is no default."""

    def __init__(self, table: str, key: str, retailer: str, supplier: str | None) -> None:
        self.table, self.key, self.retailer, self.supplier = table, key, retailer, supplier
        scope = f" --supplier {supplier}" if supplier else ""
        super().__init__(
            f"lookup {table!r} of retailer {retailer!r} has no value for {key!r} and no "
            f"default; add it with: supplyline lookup set {retailer} {table} {key!r} VALUE"
            f"{scope} (or give the table a default: supplyline lookup set {retailer} {table} "
            f"--default VALUE{scope})"
        )


@dataclass(frozen=True)
class ImportCounts:
    added: int
    changed: int
    unchanged: int


def set_lookup_value(
    session: Session,
    retailer_code: str,
    table_name: str,
    key: str,
    value: str,
    *,
    supplier_code: str | None = None,
    actor: str,
) -> None:
    table = _table(session, retailer_code, table_name, supplier_code, create=True)
    key, value = _text(key, "key"), _text(value, "value")
    entry = _entry(session, table, key)
    before = {"key": key, "value": entry.value} if entry else None
    if entry is None:
        entry = LookupEntry(table_id=table.id, key=key, value=value)  # type: ignore[arg-type]
    entry.value = value
    session.add(entry)
    session.flush()
    _audit(session, table, "lookup.set", actor, before, {"key": key, "value": value})


def set_lookup_default(
    session: Session,
    retailer_code: str,
    table_name: str,
    default: str | None,
    *,
    supplier_code: str | None = None,
    actor: str,
) -> None:
    """The value for keys the table does not hold (None: no default, a missing key is an error)."""
    table = _table(session, retailer_code, table_name, supplier_code, create=True)
    before = {"default": table.default_value}
    table.default_value = None if default is None else _text(default, "default")
    session.add(table)
    session.flush()
    _audit(session, table, "lookup.default", actor, before, {"default": table.default_value})


def remove_lookup_value(
    session: Session,
    retailer_code: str,
    table_name: str,
    key: str,
    *,
    supplier_code: str | None = None,
    actor: str,
) -> None:
    table = _table(session, retailer_code, table_name, supplier_code)
    entry = _entry(session, table, key.strip())
    if entry is None:
        raise RelationshipError(f"lookup {table_name!r} has no key {key!r}")
    session.delete(entry)
    session.flush()
    _audit(session, table, "lookup.remove", actor, {"key": entry.key, "value": entry.value}, None)


def resolve_lookup(
    session: Session,
    retailer_code: str,
    table_name: str,
    key: str,
    *,
    supplier_code: str | None = None,
) -> str:
    """The value of ``key``: the supplier's table, then the retailer's; their defaults after
    the entries. A key no table maps and no default covers is a MissingLookupValue."""
    retailer = get_retailer(session, retailer_code)
    tables = []
    if supplier_code:
        supplier = supplier_by_code(session, supplier_code)
        tables.append(_find_table(session, retailer, table_name, supplier.id))
    tables.append(_find_table(session, retailer, table_name, None))
    present = [t for t in tables if t is not None]
    for table in present:
        entry = _entry(session, table, key.strip())
        if entry is not None:
            return entry.value
    for table in present:
        if table.default_value is not None:
            return table.default_value
    raise MissingLookupValue(table_name, key, retailer.code, supplier_code)


@dataclass(frozen=True)
class LookupView:
    table: LookupTable
    supplier: str | None
    entries: list[LookupEntry]

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table.name,
            "supplier": self.supplier,
            "default": self.table.default_value,
            "entries": {e.key: e.value for e in self.entries},
        }


def list_lookups(
    session: Session,
    retailer_code: str,
    *,
    table_name: str | None = None,
    supplier_code: str | None = None,
) -> list[LookupView]:
    retailer = get_retailer(session, retailer_code)
    query = (
        select(LookupTable)
        .where(LookupTable.retailer_id == retailer.id)
        .order_by(LookupTable.name, sa.nulls_first(LookupTable.supplier_id))  # type: ignore[arg-type]
    )
    if table_name:
        query = query.where(LookupTable.name == table_name)
    if supplier_code:
        query = query.where(LookupTable.supplier_id == supplier_by_code(session, supplier_code).id)
    views = []
    for table in session.exec(query):
        supplier = session.get(Supplier, table.supplier_id) if table.supplier_id else None
        code = supplier.code if supplier else None
        views.append(LookupView(table, code, _entries(session, table)))
    return views


def import_lookup_csv(
    session: Session,
    retailer_code: str,
    table_name: str,
    path: Path,
    *,
    supplier_code: str | None = None,
    actor: str,
) -> ImportCounts:
    """Add or change the rows of a ``key,value`` CSV file; all or nothing."""
    rows = _read_csv(path)
    table = _table(session, retailer_code, table_name, supplier_code, create=True)
    existing = {e.key: e for e in _entries(session, table)}
    added = changed = 0
    for key, value in rows.items():
        entry = existing.get(key)
        if entry is None:
            session.add(LookupEntry(table_id=table.id, key=key, value=value))  # type: ignore[arg-type]
            added += 1
        elif entry.value != value:
            entry.value = value
            session.add(entry)
            changed += 1
    session.flush()
    counts = ImportCounts(added, changed, len(rows) - added - changed)
    _audit(
        session,
        table,
        "lookup.import",
        actor,
        None,
        {"file": path.name, "added": added, "changed": changed, "unchanged": counts.unchanged},
    )
    return counts


def export_lookup_csv(
    session: Session,
    retailer_code: str,
    table_name: str,
    path: Path,
    *,
    supplier_code: str | None = None,
) -> int:
    """Write the table as a ``key,value`` CSV file (what import reads); returns the row count."""
    table = _table(session, retailer_code, table_name, supplier_code)
    entries = sorted(_entries(session, table), key=lambda e: e.key)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        writer.writerows((e.key, e.value) for e in entries)
    return len(entries)


# --- helpers ---------------------------------------------------------------------------------


def _read_csv(path: Path) -> dict[str, str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise RelationshipError(f"{path.name}: cannot be read as UTF-8 CSV ({exc})") from exc
    if not lines or tuple(h.strip().lower() for h in lines[0]) != CSV_HEADER:
        raise RelationshipError(f"{path.name}: the first row must be the header key,value")
    rows: dict[str, str] = {}
    problems = []
    for number, line in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in line):
            continue
        if len(line) != 2:
            problems.append(f"row {number}: {len(line)} columns, expected 2 (key,value)")
            continue
        try:
            key, value = _text(line[0], "key"), _text(line[1], "value")
        except RelationshipError as exc:
            problems.append(f"row {number}: {exc}")
            continue
        if key in rows:
            problems.append(f"row {number}: key {key!r} appears twice")
        rows[key] = value
    if problems:
        raise RelationshipError(f"{path.name}: nothing imported; " + "; ".join(problems[:20]))
    return rows


def _text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise RelationshipError(f"the {what} is empty")
    if len(text) > MAX_TEXT:
        raise RelationshipError(f"the {what} is longer than {MAX_TEXT} characters")
    return text


def _table(
    session: Session,
    retailer_code: str,
    table_name: str,
    supplier_code: str | None,
    *,
    create: bool = False,
) -> LookupTable:
    retailer = get_retailer(session, retailer_code)
    name = table_name.strip().lower()
    if not TABLE_NAME.match(name):
        raise RelationshipError(
            f"lookup table name {table_name!r} is not valid: a letter, then letters, digits or "
            f"_ (for example {' or '.join(WELL_KNOWN_TABLES)})"
        )
    supplier_id = supplier_by_code(session, supplier_code).id if supplier_code else None
    table = _find_table(session, retailer, name, supplier_id)
    if table is None:
        if not create:
            raise RelationshipError(
                f"retailer {retailer.code!r} has no lookup {name!r}"
                + (f" for supplier {supplier_code!r}" if supplier_code else "")
                + "; see: supplyline lookup list "
                + retailer.code
            )
        table = LookupTable(retailer_id=retailer.id, supplier_id=supplier_id, name=name)  # type: ignore[arg-type]
        session.add(table)
        session.flush()
    return table


def _find_table(
    session: Session, retailer: Retailer, name: str, supplier_id: int | None
) -> LookupTable | None:
    query = select(LookupTable).where(
        LookupTable.retailer_id == retailer.id, LookupTable.name == name
    )
    if supplier_id is None:
        query = query.where(LookupTable.supplier_id.is_(None))  # type: ignore[union-attr]
    else:
        query = query.where(LookupTable.supplier_id == supplier_id)
    return session.exec(query).first()


def _entry(session: Session, table: LookupTable, key: str) -> LookupEntry | None:
    return session.exec(
        select(LookupEntry).where(LookupEntry.table_id == table.id, LookupEntry.key == key)
    ).first()


def _entries(session: Session, table: LookupTable) -> list[LookupEntry]:
    return list(
        session.exec(
            select(LookupEntry).where(LookupEntry.table_id == table.id).order_by(LookupEntry.key)
        )
    )


def _audit(
    session: Session,
    table: LookupTable,
    action: str,
    actor: str,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
) -> None:
    scope = {"table": table.name, "supplier_id": table.supplier_id}
    record_event(
        session,
        actor=actor,
        action=action,
        entity_type="lookup",
        entity_id=table.id,
        before=None if before is None else scope | before,
        after=None if after is None else scope | after,
    )
