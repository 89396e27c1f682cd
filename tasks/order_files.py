"""Retailers' order files: validated against the ``order`` contract, taken in as orders, and
answered with an error file, as catalog files are.

A row is one order line; the rows of an order share its ``order_id``. An order is taken in
whole or not at all: when one of its rows breaks a rule, or its rows disagree on where or how
it ships, every row of that order goes into the error file (the broken ones with what is wrong,
the others saying so), so the retailer can fix the error file and send it back as it is.
Orders are stored once per order id (tasks.orders), so a file sent twice adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlmodel import Session

from data_contracts.contract import load_contract
from data_contracts.suite import compile_contract
from models.relationships import Retailer
from tasks.error_files import error_file_paths, write_refusals, write_summary
from tasks.orders import LineIn, OrderConflict, OrderIn, place_order
from tasks.validate import validate_file

ORDER_CONTRACT = "order"
SHIP_TO_COLUMNS = {
    "ship_to_name": "name",
    "ship_to_company": "company",
    "ship_to_address1": "address1",
    "ship_to_address2": "address2",
    "ship_to_city": "city",
    "ship_to_region": "region",
    "ship_to_postal_code": "postal_code",
    "ship_to_country": "country",
    "ship_to_phone": "phone",
    "ship_to_email": "email",
}
# Columns every row of one order must agree on.
ORDER_COLUMNS = ("shipping_method", *SHIP_TO_COLUMNS)


@dataclass
class OrderFile:
    """What one order file held: the orders to take in, and the rows that were refused."""

    file_name: str
    status: str
    orders: list[tuple[OrderIn, list[int]]] = field(default_factory=list)
    rows_total: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    file_error: str | None = None
    summary: dict[str, object] = field(default_factory=dict)
    raw: pd.DataFrame | None = None


@dataclass
class OrderFileOutcome:
    file_name: str
    status: str
    rows_total: int
    rows_refused: int
    orders_new: list[str]
    orders_again: list[str]
    orders_refused: list[str]
    error_file: str | None
    summary_file: str
    file_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def read_order_file(path: Path, *, file_name: str | None = None) -> OrderFile:
    """Validate the file and group its rows into orders; nothing is stored."""
    compiled = compile_contract(load_contract(ORDER_CONTRACT))
    validation = validate_file(path, compiled, None, file_name=file_name)
    name = file_name or path.name
    if validation.status == "rejected" and validation.file_errors:
        return OrderFile(name, "rejected", file_error="; ".join(validation.file_errors))
    assert validation.result is not None and validation.mapped is not None
    frame = validation.mapped.frame
    errors: dict[int, str] = {int(k): str(v) for k, v in validation.result.errors.items()}
    found = OrderFile(name, "accepted", rows_total=validation.result.rows_total)
    found.summary = validation.summary()
    found.raw = validation.raw.frame if validation.raw else None
    order_ids = frame["order_id"].fillna("").astype(str).str.strip()
    for order_id, rows in frame.groupby(order_ids, sort=False):
        numbers = [int(n) for n in rows.index]
        broken = [n for n in numbers if n in errors]
        if not order_id:
            continue  # every such row already says order_id is required
        if broken:
            why = (
                f"order_id: order {order_id} is refused whole: row(s) "
                f"{', '.join(map(str, broken))} have errors; fix them and send the order again"
            )
            for number in numbers:
                errors.setdefault(number, why)
            found.refused.append(order_id)
            continue
        differing = [c for c in ORDER_COLUMNS if c in rows and rows[c].fillna("").nunique() > 1]
        if differing:
            why = "; ".join(
                f"{column}: differs between the rows of order {order_id}; every row of an order "
                f"ships to one place the same way"
                for column in differing
            )
            for number in numbers:
                errors[number] = why
            found.refused.append(order_id)
            continue
        found.orders.append((_order_in(order_id, rows), numbers))
    found.errors = dict(sorted(errors.items()))
    if found.errors:
        found.status = "partially_accepted" if found.orders else "rejected"
    return found


def take_in_order_file(
    session: Session,
    retailer: Retailer,
    order_file: OrderFile,
    *,
    connector_id: int | None,
    errors_dir: Path,
) -> OrderFileOutcome:
    """Store the file's orders (once per order id) and write its error file and summary."""
    new, again, refused = [], [], []
    for order_in, numbers in order_file.orders:
        savepoint = session.begin_nested()
        try:
            intake = place_order(
                session,
                retailer.id,  # type: ignore[arg-type]
                order_in,
                dialect="file",
                connector_id=connector_id,
                retailer_all_or_nothing=retailer.all_or_nothing,
            )
        except OrderConflict as exc:
            savepoint.rollback()
            refused.append(order_in.source_order_id)
            for number in numbers:
                order_file.errors[number] = f"order_id: {exc}"
            continue
        savepoint.commit()
        (new if intake.created else again).append(order_in.source_order_id)
    order_file.errors = dict(sorted(order_file.errors.items()))
    status = order_file.status
    if refused:
        status = "partially_accepted" if new or again else "rejected"
    csv_path, json_path = error_file_paths(order_file.file_name, errors_dir)
    error_file = write_refusals(order_file.file_error, order_file.raw, order_file.errors, csv_path)
    outcome = OrderFileOutcome(
        file_name=order_file.file_name,
        status=status,
        rows_total=order_file.rows_total,
        rows_refused=len(order_file.errors),
        orders_new=new,
        orders_again=again,
        orders_refused=order_file.refused + refused,
        error_file=str(error_file) if error_file else None,
        summary_file=str(json_path),
        file_error=order_file.file_error,
    )
    write_summary(order_file.summary | outcome.as_dict(), json_path)
    return outcome


def _order_in(order_id: str, rows: pd.DataFrame) -> OrderIn:
    first = rows.iloc[0]
    ship_to = {
        key: str(first[column]).strip()
        for column, key in SHIP_TO_COLUMNS.items()
        if column in rows and pd.notna(first[column]) and str(first[column]).strip()
    }
    lines = []
    for position, (_, row) in enumerate(rows.iterrows(), start=1):
        line_id = row.get("line_id")
        cost = row.get("unit_cost")
        lines.append(
            LineIn(
                source_item_id=str(line_id).strip()
                if pd.notna(line_id) and line_id
                else str(position),
                sku=str(row["sku"]).strip(),
                quantity=int(Decimal(str(row["quantity"]).strip())),
                unit_cost=Decimal(str(cost).strip()).quantize(Decimal("0.01"))
                if pd.notna(cost) and str(cost).strip()
                else None,
            )
        )
    method = first.get("shipping_method")
    return OrderIn(
        source_order_id=order_id,
        lines=tuple(lines),
        ship_to=ship_to,
        shipping_method=str(method).strip() if pd.notna(method) and str(method).strip() else None,
    )
