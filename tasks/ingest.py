"""The steps of ingesting one catalog file, each a Prefect task the flows compose.

claim (history row, by content) → validate (read, map, check the contract) → write the error
file → apply (load the valid rows and record the outcome, in one transaction). The SFTP flow
reuses these steps; a manual upload and a release run through the same ones.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlmodel import select

from data_contracts.contract import load_contract
from data_contracts.mapping import load_mapping
from data_contracts.suite import compile_contract
from models.catalog import APPLIED_STATUSES, CatalogFile, Supplier, utcnow
from models.db import get_engine, session_scope
from supplyline.settings import get_settings
from tasks.error_files import error_file_paths, write_error_files
from tasks.history import ReceivedFile, claim_catalog_file, history_entry, mark_failed
from tasks.load import CatalogLoad, LoadResult, load_catalog_rows, product_rows
from tasks.suppliers import KEY_COLUMN, get_supplier
from tasks.validate import FileValidation, file_sha256, validate_file


class ReleaseError(ValueError):
    """A file that cannot be released (not held, or overtaken by a newer feed)."""


@dataclass(frozen=True)
class SupplierSettings:
    """What the steps need of a supplier, detached from any database session."""

    id: int
    code: str
    contract: str
    mapping: str | None
    feed_mode: str
    retire_guard_share: float

    @classmethod
    def of(cls, supplier: Supplier) -> SupplierSettings:
        share = supplier.retire_guard_share
        return cls(
            id=supplier.id or 0,
            code=supplier.code,
            contract=supplier.contract,
            mapping=supplier.mapping,
            feed_mode=supplier.feed_mode,
            retire_guard_share=get_settings().retire_guard_share if share is None else share,
        )


@dataclass(frozen=True)
class ClaimedFile:
    """A file with its history row: new (``processing``) or a ``duplicate`` of an earlier one."""

    file_id: int
    supplier: SupplierSettings
    name: str
    source: str
    path: Path
    status: str
    message: str | None = None

    @property
    def is_duplicate(self) -> bool:
        return self.status == "duplicate"


@task(name="claim-catalog-file", cache_policy=NO_CACHE, task_run_name="claim-{name}")
def claim_file(
    supplier_code: str,
    path: Path,
    *,
    name: str,
    source: str,
    flow_run_id: str | None = None,
) -> ClaimedFile:
    """Record the file in the history by its content, and keep a copy in the archive."""
    with session_scope() as session:
        supplier = SupplierSettings.of(get_supplier(session, supplier_code))
    contract = load_contract(supplier.contract)
    received = ReceivedFile(
        name=name, source=source, sha256=file_sha256(path), size_bytes=path.stat().st_size
    )
    with session_scope() as session:
        row = claim_catalog_file(
            session,
            session.get(Supplier, supplier.id),  # type: ignore[arg-type]
            received,
            contract_name=contract.name,
            contract_version=contract.version,
            mapping_name=supplier.mapping,
            flow_run_id=flow_run_id,
            stale_after=timedelta(minutes=get_settings().stale_processing_minutes),
        )
        claimed = ClaimedFile(
            file_id=row.id or 0,
            supplier=supplier,
            name=name,
            source=source,
            path=path,
            status=row.status,
            message=row.message,
        )
        if claimed.is_duplicate:
            return claimed
        stored = get_settings().archive_dir / supplier.code / f"{row.id}-{Path(name).name}"
        stored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, stored)
        row.stored_path = str(stored)
        session.add(row)
    return replace(claimed, path=stored)


@task(name="validate-catalog-file", cache_policy=NO_CACHE, task_run_name="validate-{claim.name}")
def validate_claimed_file(claim: ClaimedFile) -> FileValidation:
    """Read, map and validate the file against the supplier's contract and mapping."""
    mapping = load_mapping(claim.supplier.mapping) if claim.supplier.mapping else None
    compiled = compile_contract(load_contract(claim.supplier.contract))
    return validate_file(claim.path, compiled, mapping, file_name=claim.name)


@task(name="write-error-file", cache_policy=NO_CACHE, task_run_name="errors-{claim.name}")
def write_claimed_error_files(
    claim: ClaimedFile, validation: FileValidation
) -> tuple[Path | None, Path]:
    """The error file and JSON summary, under SUPPLYLINE_HOME/errors/<supplier>/<id>-<name>."""
    folder = get_settings().errors_dir / claim.supplier.code
    csv_path, json_path = error_file_paths(f"{claim.file_id}-{claim.name}", folder)
    return write_error_files(validation, csv_path, json_path)


def without_source_rows(validation: FileValidation) -> FileValidation:
    """``validation`` without what only the error file needs: the rows as read, and the mapped
    columns but the key. Loading a large file, that frees about twice the file's size first."""
    raw, mapped = validation.raw, validation.mapped
    return replace(
        validation,
        # A fresh empty frame: a zero-row slice would still hold the Arrow buffers.
        raw=raw and replace(raw, frame=pd.DataFrame(columns=raw.frame.columns)),
        mapped=mapped and replace(mapped, frame=mapped.frame[[KEY_COLUMN]]),
    )


@task(name="apply-catalog-file", cache_policy=NO_CACHE, task_run_name="apply-{claim.name}")
def apply_file(
    claim: ClaimedFile,
    validation: FileValidation,
    error_files: tuple[Path | None, Path],
    *,
    release: bool = False,
) -> dict[str, object]:
    """Load the valid rows and record the file's outcome: one transaction, all or nothing.

    A rejected file loads nothing. A full feed that trips the retire guard is ``held`` and
    loads nothing; ``release`` applies it regardless.
    """
    # Arrow's allocator keeps the pages of freed arrays (such as the source rows the flow has
    # just dropped) for reuse; the load's NumPy and Python objects cannot reuse them.
    pa.default_memory_pool().release_unused()
    status = validation.status
    load = LoadResult()
    message = "; ".join(validation.file_errors) or None
    now = utcnow()
    with get_engine().begin() as connection:
        if status != "rejected" and validation.result is not None:
            load = load_catalog_rows(
                connection,
                CatalogLoad(
                    supplier_id=claim.supplier.id,
                    file_id=claim.file_id,
                    source=claim.source,
                    rows=product_rows(validation.result.valid_rows),
                    seen_skus=validation.mapped.frame[KEY_COLUMN]  # type: ignore[union-attr]
                    if validation.mapped is not None
                    else validation.result.valid_rows[KEY_COLUMN],
                    retire_missing=claim.supplier.feed_mode == "full",
                    retire_guard_share=None if release else claim.supplier.retire_guard_share,
                    now=now,
                ),
            )
            if load.held_reason:
                status, message = "held", load.held_reason
        elif status == "rejected" and not message:
            message = "every row was rejected; nothing was loaded"
        result = validation.result
        applied = status in APPLIED_STATUSES
        values = {
            "status": status,
            "finished_at": now,
            "rows_total": result.rows_total if result else 0,
            "rows_valid": result.rows_valid if result and not result.table_errors else 0,
            "rows_invalid": result.rows_invalid if result else 0,
            "rows_inserted": load.inserted if applied else 0,
            "rows_updated": load.updated if applied else 0,
            "rows_retired": load.retired if applied else 0,
            "error_file": str(error_files[0]) if error_files[0] else None,
            "summary_file": str(error_files[1]),
            "message": message,
        }
        if release:
            values["released_at"] = now
        table = CatalogFile.__table__  # type: ignore[attr-defined]
        connection.execute(table.update().where(table.c.id == claim.file_id).values(**values))
    return file_entry(claim.file_id)


@task(name="record-failure", cache_policy=NO_CACHE, task_run_name="failed-{claim.name}")
def fail_file(claim: ClaimedFile, reason: str) -> dict[str, object]:
    """The file could not be processed: nothing of it was loaded; the history says why."""
    with session_scope() as session:
        mark_failed(session, claim.file_id, reason)
    return file_entry(claim.file_id)


def file_entry(file_id: int) -> dict[str, object]:
    with session_scope() as session:
        row = session.get(CatalogFile, file_id)
        if row is None:
            raise LookupError(f"no catalog file #{file_id}")
        supplier = session.get(Supplier, row.supplier_id)
        return history_entry(row, supplier.code if supplier else "?")


def claim_for_release(file_id: int) -> ClaimedFile:
    """The held file, as a claim to run through validate and apply again."""
    with session_scope() as session:
        row = session.get(CatalogFile, file_id)
        if row is None:
            raise ReleaseError(f"no catalog file #{file_id}; see: supplyline catalog history")
        if row.status != "held":
            raise ReleaseError(
                f"file #{file_id} is {row.status.replace('_', ' ')}, not held: "
                f"only a held file can be released"
            )
        newer = session.exec(
            select(CatalogFile).where(
                CatalogFile.supplier_id == row.supplier_id,
                CatalogFile.id > file_id,  # type: ignore[operator]
                CatalogFile.status.in_(APPLIED_STATUSES),  # type: ignore[attr-defined]
            )
        ).first()
        if newer is not None:
            raise ReleaseError(
                f"file #{newer.id} ({newer.original_name}) was applied after file #{file_id}; "
                f"releasing the older feed now would undo it. Send the catalog again instead"
            )
        if not row.stored_path or not Path(row.stored_path).is_file():
            raise ReleaseError(
                f"the archived copy of file #{file_id} is gone ({row.stored_path}); "
                f"send the catalog again instead"
            )
        supplier = session.get(Supplier, row.supplier_id)
        return ClaimedFile(
            file_id=file_id,
            supplier=SupplierSettings.of(supplier),  # type: ignore[arg-type]
            name=row.original_name,
            source=row.source,
            path=Path(row.stored_path),
            status=row.status,
        )
