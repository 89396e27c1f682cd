"""The upload history: claiming a received file by its content, and recording what became of it.

A file is claimed before it is read: a row in ``catalog_file`` with status ``processing``. The
partial unique index on (supplier, sha256) admits one claiming row per content, so the same
bytes sent twice (even by two runs at once) are recorded as a ``duplicate`` of the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.catalog import CLAIMING_STATUSES, CatalogFile, Supplier, utcnow
from models.db import as_utc


@dataclass(frozen=True)
class ReceivedFile:
    """What is known of a file before it is read."""

    name: str
    source: str
    sha256: str
    size_bytes: int


def claim_catalog_file(
    session: Session,
    supplier: Supplier,
    received: ReceivedFile,
    *,
    contract_name: str,
    contract_version: str | None,
    mapping_name: str | None,
    flow_run_id: str | None,
    stale_after: timedelta,
) -> CatalogFile:
    """A new ``processing`` row for the file, or a ``duplicate`` row pointing to the first.

    Commits: the claim must be visible to other runs before the file is processed.
    """
    for attempt in range(2):
        first = _claiming_file(session, supplier, received.sha256)
        if first is not None and first.status == "processing" and _is_stale(first, stale_after):
            first.status = "failed"
            first.finished_at = utcnow()
            first.message = (
                f"abandoned: still processing after {stale_after}; the run that claimed it "
                f"stopped before it finished"
            )
            session.add(first)
            first = None
        row = CatalogFile(
            supplier_id=supplier.id,
            original_name=received.name,
            source=received.source,
            sha256=received.sha256,
            size_bytes=received.size_bytes,
            contract_name=contract_name,
            contract_version=contract_version,
            mapping_name=mapping_name,
            flow_run_id=flow_run_id,
        )
        if first is not None:
            row.status = "duplicate"
            row.duplicate_of_id = first.id
            row.finished_at = utcnow()
            row.message = duplicate_message(first)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt:
                raise
            continue
        return row
    raise AssertionError("unreachable")


def _claiming_file(session: Session, supplier: Supplier, sha256: str) -> CatalogFile | None:
    return session.exec(
        select(CatalogFile).where(
            CatalogFile.supplier_id == supplier.id,
            CatalogFile.sha256 == sha256,
            CatalogFile.status.in_(CLAIMING_STATUSES),  # type: ignore[attr-defined]
        )
    ).first()


def _is_stale(row: CatalogFile, stale_after: timedelta) -> bool:
    received = as_utc(row.received_at)
    return received is not None and utcnow() - received > stale_after


def duplicate_message(first: CatalogFile) -> str:
    received = as_utc(first.received_at)
    when = received.strftime("%Y-%m-%d %H:%M UTC") if received else "earlier"
    message = (
        f"same content as file #{first.id} ({first.original_name}, received {when}, "
        f"{first.status.replace('_', ' ')}); not loaded again"
    )
    if first.status == "held":
        message += f"; to apply it, release file #{first.id}: supplyline catalog release {first.id}"
    return message


def mark_failed(session: Session, file_id: int, reason: str) -> None:
    """Record that a file's processing failed; whatever it loaded was rolled back."""
    row = session.get(CatalogFile, file_id)
    if row is None:
        return
    row.status = "failed"
    row.finished_at = utcnow()
    row.message = reason
    row.rows_inserted = row.rows_updated = row.rows_retired = 0
    session.add(row)
    session.commit()


def history(
    session: Session, *, supplier: Supplier | None = None, limit: int = 50
) -> list[tuple[CatalogFile, str]]:
    """The newest files first, each with its supplier's code."""
    query = (
        select(CatalogFile, Supplier.code)
        .join(Supplier, Supplier.id == CatalogFile.supplier_id)  # type: ignore[arg-type]
        .order_by(sa.desc(CatalogFile.id))
        .limit(limit)
    )
    if supplier is not None:
        query = query.where(CatalogFile.supplier_id == supplier.id)
    return [(row, code) for row, code in session.exec(query).all()]


def history_entry(row: CatalogFile, supplier_code: str) -> dict[str, object]:
    """One history row as the CLI's JSON and the artifacts show it."""
    received, finished = as_utc(row.received_at), as_utc(row.finished_at)
    return {
        "id": row.id,
        "supplier": supplier_code,
        "file": row.original_name,
        "source": row.source,
        "status": row.status,
        "rows_total": row.rows_total,
        "rows_valid": row.rows_valid,
        "rows_invalid": row.rows_invalid,
        "rows_inserted": row.rows_inserted,
        "rows_updated": row.rows_updated,
        "rows_retired": row.rows_retired,
        "received_at": received.isoformat() if received else None,
        "finished_at": finished.isoformat() if finished else None,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "contract": {"name": row.contract_name, "version": row.contract_version},
        "mapping": row.mapping_name,
        "error_file": row.error_file,
        "summary_file": row.summary_file,
        "duplicate_of": row.duplicate_of_id,
        "flow_run_id": row.flow_run_id,
        "message": row.message,
    }
