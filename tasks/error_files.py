"""Error files: what a supplier reads to fix a file, and can send back once fixed.

``<stem>.errors.csv`` (UTF-8 with a BOM, so that Excel opens it right): ``_row`` (the row
number in the supplier's spreadsheet), ``_errors`` (every problem of the row), then the row's
original columns and values. Beside it, ``<stem>.errors.json``: the summary.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.parse import neutralise_formula
from tasks.validate import FileValidation

ERROR_SUFFIX = ".errors.csv"
SUMMARY_SUFFIX = ".errors.json"
_DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".json", ".jsonl", ".ndjson")
_COMPRESSED_SUFFIXES = (".gz", ".zip")


def original_stem(file_name: str) -> str:
    """``acme.csv.gz`` -> ``acme``; ``acme.errors.csv`` -> ``acme`` (a fixed file sent back)."""
    name = Path(file_name).name
    for suffixes in (_COMPRESSED_SUFFIXES, _DATA_SUFFIXES):
        for suffix in suffixes:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
    return name.removesuffix(".errors") or "file"


def error_file_paths(file_name: str, folder: Path) -> tuple[Path, Path]:
    stem = original_stem(file_name)
    return folder / f"{stem}{ERROR_SUFFIX}", folder / f"{stem}{SUMMARY_SUFFIX}"


def write_row_errors(raw: pd.DataFrame, errors: pd.Series, path: Path) -> Path:
    """Write the failing rows of ``raw`` (index = row number) with their messages."""
    rows = raw.loc[errors.index]
    table = pd.DataFrame(
        {"_row": errors.index.astype(str), "_errors": errors.map(neutralise_formula).to_numpy()}
    )
    for header in raw.columns:
        table[header] = rows[header].astype(str).map(neutralise_formula).to_numpy()
    return _atomic_write(path, lambda f: table.to_csv(f, index=False, lineterminator="\r\n"))


def write_file_error(message: str, path: Path, *, row: int | None = None) -> Path:
    """The error file of a file rejected as a whole: one line that explains it."""

    def write(f: Any) -> None:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(["_row", "_errors"])
        writer.writerow(["" if row is None else str(row), neutralise_formula(f"file: {message}")])

    return _atomic_write(path, write)


def write_refusals(
    file_error: str | None, raw: pd.DataFrame | None, errors: dict[int, str], path: Path
) -> Path | None:
    """The error file of a file whose rows are refused one by one (order and fulfillment
    files): the file-level error, else the refused rows; a file with neither has none (an
    earlier run's is removed). ``errors`` maps row numbers to what is wrong."""
    if file_error:
        return write_file_error(file_error, path)
    if errors and raw is not None:
        return write_row_errors(raw, pd.Series(errors), path)
    path.unlink(missing_ok=True)
    return None


def write_summary(summary: dict[str, Any], path: Path) -> Path:
    def write(f: Any) -> None:
        json.dump(summary, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")

    return _atomic_write(path, write, encoding="utf-8")


def _atomic_write(path: Path, write: Any, *, encoding: str = "utf-8-sig") -> Path:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding=encoding, newline="") as f:
        write(f)
    os.replace(temporary, path)
    return path


def write_error_files(
    validation: FileValidation, csv_path: Path, json_path: Path
) -> tuple[Path | None, Path]:
    """Write the error CSV (when there is something to fix) and the JSON summary.

    Returns (error file or None for a clean file, summary file). See error_file_paths().
    """
    error_file: Path | None = None
    if validation.rejection is not None:
        error_file = write_file_error(
            validation.rejection.message, csv_path, row=validation.rejection.row
        )
    elif validation.result and validation.result.table_errors:
        error_file = write_file_error("; ".join(validation.result.table_errors), csv_path)
    elif validation.result and validation.result.rows_invalid and validation.raw:
        error_file = write_row_errors(validation.raw.frame, validation.result.errors, csv_path)
    else:
        csv_path.unlink(missing_ok=True)
    summary = validation.summary() | {"error_file": str(error_file) if error_file else None}
    return error_file, write_summary(summary, json_path)
