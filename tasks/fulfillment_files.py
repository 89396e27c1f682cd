"""Suppliers' fulfillment files (acknowledgements, shipments, deliveries, cancellations):
validated against their contracts, turned into updates, applied, and answered with an error
file.

The file's name says what it holds: ``ack*`` (or ``acknowledgement*``) an acknowledgement,
``ship*`` a shipment, ``deliver*`` deliveries, ``cancel*`` a cancellation; CSV, JSON (an array
of row objects) or JSON Lines, one row per PO line (per shipment, for deliveries), the columns
of ``data_contracts/po_<kind>.odcs.yaml``. The rows of one PO (of one shipment, for shipments
and deliveries) are one update, taken whole or not at all: when one of its rows breaks a rule,
every row of it goes into the error file, the others saying so. An
update that contradicts what is known (a conflict) or comes too late (stale) is kept in the
update log and its rows are in the error file too, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session

from data_contracts.contract import load_contract
from data_contracts.suite import compile_contract
from tasks.error_files import error_file_paths, write_refusals, write_summary
from tasks.fulfillment import FulfillmentOutcome, UpdateIn, apply_updates
from tasks.validate import validate_file

# File name prefix → (update kind, contract).
FILE_KINDS = {
    "acknowledgement": ("acknowledgement", "po_acknowledgement"),
    "ack": ("acknowledgement", "po_acknowledgement"),
    "shipment": ("shipment", "po_shipment"),
    "ship": ("shipment", "po_shipment"),
    "deliver": ("delivery", "po_delivery"),
    "cancellation": ("cancellation", "po_cancellation"),
    "cancel": ("cancellation", "po_cancellation"),
}
FULFILLMENT_FILE_SUFFIXES = (".csv", ".json", ".jsonl")
# Files listed at the same moment are taken in this order, so that a delivery file dropped with
# the shipment file it follows finds its shipment.
KIND_ORDER = {"acknowledgement": 0, "shipment": 1, "delivery": 2, "cancellation": 3}
# Per kind: the columns naming one update, the ones that may be empty (one update for the whole
# PO), and the columns every row of one update must agree on.
UPDATE_KEYS = {
    "acknowledgement": ("po_number",),
    "shipment": ("po_number", "shipment_id"),
    "delivery": ("po_number", "shipment_id"),
    "cancellation": ("po_number",),
}
OPTIONAL_KEYS = {"delivery": ("shipment_id",)}
AGREEING_COLUMNS = {
    "shipment": ("carrier", "service", "tracking_number", "tracking_url", "shipped_at"),
    "delivery": ("delivered_at",),
}


def file_kind(name: str) -> str | None:
    """The update kind a file's name says it holds, or None if it is no fulfillment file."""
    lowered = name.lower()
    if not lowered.endswith(FULFILLMENT_FILE_SUFFIXES):
        return None
    for prefix, (kind, _) in FILE_KINDS.items():
        if lowered.startswith(prefix):
            return kind
    return None


def not_a_fulfillment_file(name: str) -> str:
    return (
        f"{name}: not a fulfillment file; name it ack*, ship*, deliver* or cancel* with the type "
        f"{', '.join(FULFILLMENT_FILE_SUFFIXES)} (e.g. ship-20261206.csv); left in place"
    )


@dataclass
class FulfillmentFile:
    """What one file held: its updates (each with its row numbers) and the rows refused."""

    file_name: str
    kind: str
    status: str = "accepted"
    updates: list[tuple[UpdateIn, list[int]]] = field(default_factory=list)
    rows_total: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    file_error: str | None = None
    summary: dict[str, object] = field(default_factory=dict)
    raw: pd.DataFrame | None = None


@dataclass
class FulfillmentFileOutcome:
    file_name: str
    kind: str
    status: str
    rows_total: int
    rows_refused: int
    applied: int
    duplicate: int
    stale: int
    conflict: int
    error_file: str | None
    summary_file: str
    file_error: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def read_fulfillment_file(path: Path, *, file_name: str, kind: str) -> FulfillmentFile:
    """Validate the file against its contract and group its rows into updates; nothing is
    stored."""
    contract = next(c for k, c in FILE_KINDS.values() if k == kind)
    compiled = compile_contract(load_contract(contract))
    validation = validate_file(path, compiled, None, file_name=file_name)
    if validation.status == "rejected" and validation.file_errors:
        return FulfillmentFile(
            file_name, kind, "rejected", file_error="; ".join(validation.file_errors)
        )
    assert validation.result is not None and validation.mapped is not None
    frame = validation.mapped.frame
    found = FulfillmentFile(file_name, kind, rows_total=validation.result.rows_total)
    found.errors = {int(k): str(v) for k, v in validation.result.errors.items()}
    found.summary = validation.summary()
    found.raw = validation.raw.frame if validation.raw else None
    group_by = list(UPDATE_KEYS[kind])
    needed = [i for i, c in enumerate(group_by) if c not in OPTIONAL_KEYS.get(kind, ())]
    keys = frame.reindex(columns=group_by).astype("string").fillna("")
    keys = keys.apply(lambda column: column.str.strip())
    for key, rows in frame.groupby([keys[c] for c in group_by], sort=False):
        numbers = [int(n) for n in rows.index]
        values = key if isinstance(key, tuple) else (key,)
        po_number = values[0]
        if not all(values[i] for i in needed):
            continue  # every such row already says what is missing
        _check_rows(kind, rows, found.errors)
        broken = [n for n in numbers if n in found.errors]
        if broken:
            why = (
                f"po_number: the {kind} of PO {po_number} is refused whole: row(s) "
                f"{', '.join(map(str, broken))} have errors; fix them and send it again"
            )
            for number in numbers:
                found.errors.setdefault(number, why)
            continue
        found.updates.append((UpdateIn(po_number, kind, _PAYLOADS[kind](rows), "sftp"), numbers))
    found.errors = dict(sorted(found.errors.items()))
    if found.errors:
        found.status = "partially_accepted" if found.updates else "rejected"
    return found


def take_in_fulfillment_file(
    session: Session,
    supplier_id: int,
    found: FulfillmentFile,
    *,
    errors_dir: Path,
    actor: str,
) -> tuple[FulfillmentFileOutcome, FulfillmentOutcome]:
    """Apply the file's updates (in the caller's transaction) and write its error file and
    summary: rows refused by the contract, and rows of updates that conflict or come late."""
    updates = [
        UpdateIn(u.po_number, u.kind, u.payload, f"sftp:{found.file_name}")
        for u, _ in found.updates
    ]
    applied = apply_updates(session, supplier_id, updates, actor=actor)
    for (_, numbers), (outcome, detail) in zip(found.updates, applied.results, strict=True):
        if outcome in ("conflict", "stale"):
            for number in numbers:
                found.errors[number] = f"{outcome}: {detail}"
    found.errors = dict(sorted(found.errors.items()))
    status = found.status
    if applied.conflict or applied.stale:
        status = "partially_accepted" if applied.applied or applied.duplicate else "rejected"
    csv_path, json_path = error_file_paths(found.file_name, errors_dir)
    error_file = write_refusals(found.file_error, found.raw, found.errors, csv_path)
    outcome = FulfillmentFileOutcome(
        file_name=found.file_name,
        kind=found.kind,
        status=status,
        rows_total=found.rows_total,
        rows_refused=len(found.errors),
        applied=applied.applied,
        duplicate=applied.duplicate,
        stale=applied.stale,
        conflict=applied.conflict,
        error_file=str(error_file) if error_file else None,
        summary_file=str(json_path),
        file_error=found.file_error,
        problems=applied.problems,
    )
    write_summary(found.summary | outcome.as_dict(), json_path)
    return outcome, applied


# --- rows → payloads --------------------------------------------------------------------------


def _check_rows(kind: str, rows: pd.DataFrame, errors: dict[int, str]) -> None:
    """Rules across columns and rows, which the contract cannot say."""
    for number, row in rows.iterrows():
        if kind == "acknowledgement":
            status = _value(row, "status")
            if status == "backordered" and not _value(row, "backorder_date"):
                errors.setdefault(
                    int(number),  # type: ignore[arg-type]
                    "backorder_date: required for a backordered row (a date like 2026-12-24)",
                )
            if status == "rejected" and not _value(row, "reason"):
                errors.setdefault(
                    int(number),  # type: ignore[arg-type]
                    "reason: required for a rejected row: say why the line is rejected",
                )
        if kind == "cancellation" and _value(row, "line_no") and not _value(row, "quantity"):
            errors.setdefault(
                int(number),  # type: ignore[arg-type]
                "quantity: required with line_no (the line's cancelled units in all); leave "
                "line_no empty to cancel the whole PO",
            )
    agreeing = AGREEING_COLUMNS.get(kind, ())
    differing = [c for c in agreeing if c in rows and rows[c].fillna("").nunique() > 1]
    if differing:
        what = (
            f"shipment {_value(rows.iloc[0], 'shipment_id')}"
            if _value(rows.iloc[0], "shipment_id")
            else f"PO {_value(rows.iloc[0], 'po_number')}"
        )
        for number in rows.index:
            errors[int(number)] = "; ".join(
                f"{column}: differs between the rows of the {kind} of {what}; every row of it "
                f"has the same {column}"
                for column in differing
            )


def _acknowledgement(rows: pd.DataFrame) -> dict[str, Any]:
    return {
        "lines": [
            {
                "line_no": _integer(row, "line_no"),
                "sku": _value(row, "sku"),
                "status": _value(row, "status"),
                "quantity": _integer(row, "quantity"),
                "backorder_date": _value(row, "backorder_date"),
                "reason": _value(row, "reason"),
            }
            for _, row in rows.iterrows()
        ]
    }


def _shipment(rows: pd.DataFrame) -> dict[str, Any]:
    first = rows.iloc[0]
    return {
        "shipment_id": _value(first, "shipment_id"),
        "carrier": _value(first, "carrier"),
        "service": _value(first, "service"),
        "tracking_number": _value(first, "tracking_number"),
        "tracking_url": _value(first, "tracking_url"),
        "shipped_at": _value(first, "shipped_at"),
        "lines": [
            {
                "line_no": _integer(row, "line_no"),
                "sku": _value(row, "sku"),
                "quantity": _integer(row, "quantity"),
            }
            for _, row in rows.iterrows()
        ],
    }


def _delivery(rows: pd.DataFrame) -> dict[str, Any]:
    first = rows.iloc[0]
    return {
        "shipment_id": _value(first, "shipment_id"),
        "delivered_at": _value(first, "delivered_at"),
    }


def _cancellation(rows: pd.DataFrame) -> dict[str, Any]:
    whole = [row for _, row in rows.iterrows() if not _value(row, "line_no")]
    return {
        "whole_po": bool(whole),
        "reason": _value(whole[0], "reason") if whole else None,
        "lines": [
            {
                "line_no": _integer(row, "line_no"),
                "sku": _value(row, "sku"),
                "quantity": _integer(row, "quantity"),
                "reason": _value(row, "reason"),
            }
            for _, row in rows.iterrows()
            if _value(row, "line_no")
        ],
    }


_PAYLOADS: dict[str, Callable[[pd.DataFrame], dict[str, Any]]] = {
    "acknowledgement": _acknowledgement,
    "shipment": _shipment,
    "delivery": _delivery,
    "cancellation": _cancellation,
}


def _value(row: pd.Series, column: str) -> str | None:
    if column not in row.index:
        return None
    value = row[column]
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _integer(row: pd.Series, column: str) -> int | None:
    text = _value(row, column)
    return None if text is None else int(float(text))
